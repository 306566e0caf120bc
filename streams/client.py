"""What an upstream app does: put audio in the object store, then produce the event (claim check)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime, timedelta
from pathlib import PurePath

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from infra.objectstore import ObjectStore
from processors.trust.consent import sign_consent, sign_revocation
from schemas.envelope import utc_now
from schemas.events import ConsentGranted, ConsentRevoked, SampleUploaded
from streams.handlers.consent import consent_document
from streams.publisher import EventPublisher


def upload_key(tenant_id: str, voice_id: str, sample_id: uuid.UUID, filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()[:8] or ".bin"
    return f"uploads/{tenant_id}/{voice_id}/{sample_id}{suffix}"


async def upload_sample(
    store: ObjectStore, publisher: EventPublisher, *, data: bytes, filename: str, tenant_id: str, voice_id: str,
    correlation_id: uuid.UUID | None = None,
) -> SampleUploaded:
    """Store the audio first, then announce it: the event never points at a missing object."""
    sample_id = uuid.uuid4()
    key = upload_key(tenant_id, voice_id, sample_id, filename)
    await store.put(key, data)
    event = SampleUploaded(
        tenant_id=tenant_id, voice_id=voice_id, sample_id=sample_id, object_key=key,
        filename=PurePath(filename).name, size_bytes=len(data), correlation_id=correlation_id or uuid.uuid4(),
    )
    await publisher.publish(event)
    return event


def public_key_base64(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def signed_consent(
    private_key: Ed25519PrivateKey, *, tenant_id: str, voice_id: str, owner_id: str, purposes: list[str],
    languages: list[str], statement_text: str, valid_for: timedelta = timedelta(days=365),
    max_uses: int | None = None, issued_at: datetime | None = None, correlation_id: uuid.UUID | None = None,
    statement_audio_key: str | None = None, statement_audio: bytes | None = None,
) -> ConsentGranted:
    """A consent.granted event signed by the voice owner's key (and, if given, their spoken statement's digest)."""
    issued_at = (issued_at or utc_now()).replace(microsecond=0)
    unsigned = ConsentGranted(
        tenant_id=tenant_id, voice_id=voice_id, owner_id=owner_id, owner_public_key=public_key_base64(private_key),
        purposes=purposes, languages=languages, issued_at=issued_at, expires_at=issued_at + valid_for,
        max_uses=max_uses, statement_text=statement_text, signature="", correlation_id=correlation_id or uuid.uuid4(),
        statement_audio_key=statement_audio_key,
        statement_audio_sha256=hashlib.sha256(statement_audio).hexdigest() if statement_audio is not None else None,
    )
    signature = sign_consent(consent_document(unsigned), private_key)
    return unsigned.model_copy(update={"signature": base64.b64encode(signature).decode()})


def signed_revocation(private_key: Ed25519PrivateKey, *, tenant_id: str, voice_id: str,
                      consent_id: uuid.UUID) -> ConsentRevoked:
    revoked_at = utc_now().replace(microsecond=0)
    signature = sign_revocation(str(consent_id), revoked_at, private_key)
    return ConsentRevoked(tenant_id=tenant_id, voice_id=voice_id, consent_id=consent_id, revoked_at=revoked_at,
                          signature=base64.b64encode(signature).decode())
