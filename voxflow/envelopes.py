"""The events an upstream app produces, built and signed exactly as the pipeline checks them (no I/O here)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime, timedelta
from pathlib import PurePath

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.trust.consent import ConsentDocument, raw_public_key, sign_consent, sign_revocation
from processors.trust.erasure import sign_erasure
from schemas.envelope import Event, utc_now
from schemas.events import (AdaptationRequested, AnalysisRequested, ConsentGranted, ConsentRevoked, DubRequested,
                            ErasureRequested, SampleUploaded, SynthesisRequested)

# The topic each upstream event travels on (streams/topics.py has the pipeline's whole map).
TOPIC_OF: dict[type[Event], str] = {
    SampleUploaded: "voxflow.ingest",
    ConsentGranted: "voxflow.consent",
    ConsentRevoked: "voxflow.consent",
    AdaptationRequested: "voxflow.adaptation",
    SynthesisRequested: "voxflow.synthesis",
    ErasureRequested: "voxflow.erasure",
    DubRequested: "voxflow.dubbing",
    AnalysisRequested: "voxflow.analysis",
}
RESULTS_TOPIC = "voxflow.results"
DEAD_LETTER_TOPIC = "voxflow.deadletter"
MAX_SUFFIX_CHARS = 8


def upload_key(tenant_id: str, voice_id: str, sample_id: uuid.UUID, filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()[:MAX_SUFFIX_CHARS] or ".bin"
    return f"uploads/{tenant_id}/{voice_id}/{sample_id}{suffix}"


def analysis_object_key(tenant_id: str, analysis_id: uuid.UUID, name: str) -> str:
    """Where a recording to analyse goes: the tenant's checks area, beside the analysis's report."""
    return f"checks/{tenant_id}/analyses/{analysis_id}/{PurePath(name).name or 'recording'}"


def statement_audio_key(tenant_id: str, voice_id: str) -> str:
    return f"consents/{tenant_id}/{voice_id}/{uuid.uuid4()}.wav"


def sample_uploaded(*, tenant_id: str, voice_id: str, filename: str | None, size_bytes: int,
                    correlation_id: uuid.UUID | None = None) -> SampleUploaded:
    """The claim check for audio about to be put at the event's ``object_key`` (its suffix from ``filename``)."""
    sample_id = uuid.uuid4()
    return SampleUploaded(tenant_id=tenant_id, voice_id=voice_id, sample_id=sample_id,
                          object_key=upload_key(tenant_id, voice_id, sample_id, filename or ""),
                          filename=PurePath(filename).name if filename else None, size_bytes=size_bytes,
                          correlation_id=correlation_id or uuid.uuid4())


def consent_document(event: ConsentGranted) -> ConsentDocument:
    return ConsentDocument(
        consent_id=str(event.consent_id), voice_id=event.voice_id, owner_id=event.owner_id,
        purposes=tuple(event.purposes), languages=tuple(event.languages), issued_at=event.issued_at,
        expires_at=event.expires_at, max_uses=event.max_uses, statement_text=event.statement_text,
        statement_audio_sha256=event.statement_audio_sha256,
    )


def signed_consent(owner_key: Ed25519PrivateKey, *, tenant_id: str, voice_id: str, owner_id: str,
                   purposes: list[str], languages: list[str], statement_text: str,
                   valid_for: timedelta = timedelta(days=365),
                   max_uses: int | None = None, statement_audio_key: str | None = None,
                   statement_audio: bytes | None = None, correlation_id: uuid.UUID | None = None,
                   issued_at: datetime | None = None) -> ConsentGranted:
    """consent.granted signed by the owner over its canonical document (and the spoken statement's sha256)."""
    issued_at = (issued_at or utc_now()).replace(microsecond=0)
    unsigned = ConsentGranted(
        tenant_id=tenant_id, voice_id=voice_id, owner_id=owner_id,
        owner_public_key=base64.b64encode(raw_public_key(owner_key)).decode(), purposes=purposes,
        languages=languages, issued_at=issued_at, expires_at=issued_at + valid_for, max_uses=max_uses,
        statement_text=statement_text, statement_audio_key=statement_audio_key,
        statement_audio_sha256=hashlib.sha256(statement_audio).hexdigest() if statement_audio is not None else None,
        signature="", correlation_id=correlation_id or uuid.uuid4(),
    )
    signature = sign_consent(consent_document(unsigned), owner_key)
    return unsigned.model_copy(update={"signature": base64.b64encode(signature).decode()})


def signed_revocation(owner_key: Ed25519PrivateKey, *, tenant_id: str, voice_id: str, consent_id: uuid.UUID,
                      correlation_id: uuid.UUID | None = None) -> ConsentRevoked:
    revoked_at = utc_now().replace(microsecond=0)
    signature = sign_revocation(str(consent_id), revoked_at, owner_key)
    return ConsentRevoked(tenant_id=tenant_id, voice_id=voice_id, consent_id=consent_id, revoked_at=revoked_at,
                          signature=base64.b64encode(signature).decode(), correlation_id=correlation_id or uuid.uuid4())


def signed_erasure(owner_key: Ed25519PrivateKey, *, tenant_id: str, voice_id: str,
                   correlation_id: uuid.UUID | None = None) -> ErasureRequested:
    """erasure.requested signed by the owner (with the key one of the voice's consents was signed with)."""
    erasure_id = uuid.uuid4()
    requested_at = utc_now().replace(microsecond=0)
    signature = sign_erasure(owner_key, erasure_id=str(erasure_id), tenant_id=tenant_id, voice_id=voice_id,
                             requested_at=requested_at)
    return ErasureRequested(tenant_id=tenant_id, voice_id=voice_id, erasure_id=erasure_id, requested_by="owner",
                            requested_at=requested_at, owner_signature=base64.b64encode(signature).decode(),
                            correlation_id=correlation_id or uuid.uuid4())
