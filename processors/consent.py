"""Ed25519-signed consent of a voice owner.

Canonical consent bytes (what the owner signs), reproducible in any language: UTF-8 JSON with keys
sorted, no whitespace (separators "," and ":"), non-ASCII kept as is, of the object
  {"consent_id", "voice_id", "owner_id", "purposes": sorted list, "languages": sorted list,
   "issued_at", "expires_at", "max_uses": int or null, "statement_text",
   "statement_audio_sha256": lowercase hex or null}
with times in UTC as "YYYY-MM-DDTHH:MM:SSZ" (whole seconds). A revocation signs
  {"action": "revoke", "consent_id", "revoked_at"} in the same form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from processors.errors import ConsentSignatureError

ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class ConsentDocument:
    consent_id: str
    voice_id: str
    owner_id: str
    purposes: tuple[str, ...]
    languages: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    max_uses: int | None
    statement_text: str
    statement_audio_sha256: str | None = None


def utc_timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_consent_bytes(document: ConsentDocument) -> bytes:
    return _canonical({
        "consent_id": document.consent_id,
        "voice_id": document.voice_id,
        "owner_id": document.owner_id,
        "purposes": sorted(document.purposes),
        "languages": sorted(document.languages),
        "issued_at": utc_timestamp(document.issued_at),
        "expires_at": utc_timestamp(document.expires_at),
        "max_uses": document.max_uses,
        "statement_text": document.statement_text,
        "statement_audio_sha256": document.statement_audio_sha256,
    })


def canonical_revocation_bytes(consent_id: str, revoked_at: datetime) -> bytes:
    return _canonical({"action": "revoke", "consent_id": consent_id, "revoked_at": utc_timestamp(revoked_at)})


def sign_consent(document: ConsentDocument, private_key: Ed25519PrivateKey) -> bytes:
    return private_key.sign(canonical_consent_bytes(document))


def sign_revocation(consent_id: str, revoked_at: datetime, private_key: Ed25519PrivateKey) -> bytes:
    return private_key.sign(canonical_revocation_bytes(consent_id, revoked_at))


def verify_consent_signature(document: ConsentDocument, signature: bytes, public_key_bytes: bytes) -> None:
    _verify(canonical_consent_bytes(document), signature, public_key_bytes)


def verify_revocation_signature(consent_id: str, revoked_at: datetime, signature: bytes,
                                public_key_bytes: bytes) -> None:
    _verify(canonical_revocation_bytes(consent_id, revoked_at), signature, public_key_bytes)


def _verify(message: bytes, signature: bytes, public_key_bytes: bytes) -> None:
    if len(public_key_bytes) != ED25519_PUBLIC_KEY_BYTES:
        raise ConsentSignatureError(f"owner public key must be {ED25519_PUBLIC_KEY_BYTES} raw bytes")
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise ConsentSignatureError(f"signature must be {ED25519_SIGNATURE_BYTES} bytes")
    try:
        Ed25519PublicKey.from_public_bytes(public_key_bytes).verify(signature, message)
    except InvalidSignature as error:
        raise ConsentSignatureError("does not match the document and the owner's key") from error


def check_consent_scope(document: ConsentDocument, *, purpose: str, language: str, now: datetime,
                        uses_so_far: int) -> list[str]:
    """What this consent does not allow for the request; empty when it allows it."""
    violations = []
    if now < document.issued_at:
        violations.append("consent is not valid yet")
    if now >= document.expires_at:
        violations.append(f"consent expired at {utc_timestamp(document.expires_at)}")
    if purpose not in document.purposes:
        violations.append(f"purpose {purpose!r} not granted (granted: {', '.join(sorted(document.purposes))})")
    if language not in document.languages:
        violations.append(f"language {language!r} not granted (granted: {', '.join(sorted(document.languages))})")
    if document.max_uses is not None and uses_so_far >= document.max_uses:
        violations.append(f"use limit of {document.max_uses} reached")
    return violations
