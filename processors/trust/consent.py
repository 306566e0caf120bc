"""Ed25519-signed consent of a voice owner, and what it allows.

Canonical consent bytes — what the owner signs — are reproducible in any language: the UTF-8
encoding of a JSON object with exactly these ten keys, sorted by key, no whitespace (separators
"," and ":"), non-ASCII characters written as themselves (only '"', '\\' and control characters
are escaped, as JavaScript's JSON.stringify does), strings exactly as given (no Unicode
normalisation):

    consent_id, expires_at, issued_at, languages, max_uses, owner_id, purposes,
    statement_audio_sha256, statement_text, voice_id

``purposes`` and ``languages`` are arrays of strings sorted by code point; ``max_uses`` is an
integer or null; ``statement_audio_sha256`` is 64 lowercase hex digits or null; times are UTC as
"YYYY-MM-DDTHH:MM:SSZ" (fractions of a second are dropped). For example::

    {"consent_id":"c-1","expires_at":"2026-01-01T00:00:00Z","issued_at":"2025-01-01T00:00:00Z",
    "languages":["de","en"],"max_uses":null,"owner_id":"o-1","purposes":["audiobook","narration"],
    "statement_audio_sha256":null,"statement_text":"I consent.","voice_id":"v-1"}

(one line, without the line breaks). A revocation signs {"action":"revoke","consent_id",
"revoked_at"} in the same form. Keys travel as the raw 32-byte Ed25519 public key (base64 in events)
and, for the owner's own storage, the raw 32-byte private seed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from processors.errors import ConsentKeyError, ConsentSignatureError, InvalidConsentError

ED25519_PUBLIC_KEY_BYTES = 32
ED25519_PRIVATE_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ConsentDocument:
    """What the owner allows: times are timezone-aware; ``max_uses`` None means unlimited."""

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

    def __post_init__(self) -> None:
        for name in ("consent_id", "voice_id", "owner_id", "statement_text"):
            if not isinstance(getattr(self, name), str):
                raise InvalidConsentError(f"{name} must be a string")
        for name in ("purposes", "languages"):
            values = getattr(self, name)
            if isinstance(values, str) or not values or not all(isinstance(value, str) for value in values):
                raise InvalidConsentError(f"{name} must be a non-empty collection of strings")
            object.__setattr__(self, name, tuple(values))
        _check_aware(self.issued_at, "issued_at")
        _check_aware(self.expires_at, "expires_at")
        if self.max_uses is not None and (not isinstance(self.max_uses, int) or self.max_uses < 1):
            raise InvalidConsentError(f"max_uses must be a positive integer or None, got {self.max_uses!r}")
        if self.statement_audio_sha256 is not None and not _SHA256_HEX.fullmatch(str(self.statement_audio_sha256)):
            raise InvalidConsentError("statement_audio_sha256 must be 64 lowercase hex digits")


def utc_timestamp(moment: datetime) -> str:
    """``moment`` (timezone-aware) as "YYYY-MM-DDTHH:MM:SSZ"."""
    _check_aware(moment, "time")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_consent_bytes(document: ConsentDocument) -> bytes:
    """The exact bytes the owner signs; see the module docstring."""
    return _canonical_json({
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
    return _canonical_json({"action": "revoke", "consent_id": consent_id, "revoked_at": utc_timestamp(revoked_at)})


def sign_consent(document: ConsentDocument, private_key: Ed25519PrivateKey) -> bytes:
    """64-byte Ed25519 signature over the canonical consent bytes."""
    return private_key.sign(canonical_consent_bytes(document))


def sign_revocation(consent_id: str, revoked_at: datetime, private_key: Ed25519PrivateKey) -> bytes:
    return private_key.sign(canonical_revocation_bytes(consent_id, revoked_at))


def verify_consent_signature(document: ConsentDocument, signature: bytes, public_key_bytes: bytes) -> None:
    """Raise ``ConsentSignatureError`` unless ``signature`` is the owner's over exactly this document."""
    _verify(canonical_consent_bytes(document), signature, public_key_bytes)


def verify_revocation_signature(consent_id: str, revoked_at: datetime, signature: bytes,
                                public_key_bytes: bytes) -> None:
    _verify(canonical_revocation_bytes(consent_id, revoked_at), signature, public_key_bytes)


def check_consent_scope(document: ConsentDocument, *, purpose: str, language: str, now: datetime,
                        uses_so_far: int) -> list[str]:
    """What this consent does not allow for the request; empty when it allows it."""
    _check_aware(now, "now")
    if not isinstance(uses_so_far, int) or uses_so_far < 0:
        raise InvalidConsentError(f"uses_so_far must be a non-negative integer, got {uses_so_far!r}")
    violations = []
    if now < document.issued_at:
        violations.append(f"consent is not valid yet (valid from {utc_timestamp(document.issued_at)})")
    if now >= document.expires_at:
        violations.append(f"consent expired at {utc_timestamp(document.expires_at)}")
    if purpose not in document.purposes:
        violations.append(f"purpose {purpose!r} not granted (granted: {', '.join(sorted(document.purposes))})")
    if language not in document.languages:
        violations.append(f"language {language!r} not granted (granted: {', '.join(sorted(document.languages))})")
    if document.max_uses is not None and uses_so_far >= document.max_uses:
        violations.append(f"use limit of {document.max_uses} reached")
    return violations


# --- owner keys -----------------------------------------------------------------------------------


def generate_owner_keypair() -> tuple[Ed25519PrivateKey, bytes]:
    """A fresh owner key and its raw 32-byte public key."""
    private_key = Ed25519PrivateKey.generate()
    return private_key, raw_public_key(private_key)


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_key_to_raw(private_key: Ed25519PrivateKey) -> bytes:
    """The 32-byte private seed; whoever holds it can sign consents."""
    return private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def private_key_from_raw(raw: bytes) -> Ed25519PrivateKey:
    if not isinstance(raw, bytes) or len(raw) != ED25519_PRIVATE_KEY_BYTES:
        raise ConsentKeyError(f"an Ed25519 private key is {ED25519_PRIVATE_KEY_BYTES} raw bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


def private_key_to_base64(private_key: Ed25519PrivateKey) -> str:
    return base64.b64encode(private_key_to_raw(private_key)).decode("ascii")


def private_key_from_base64(text: str) -> Ed25519PrivateKey:
    return private_key_from_raw(_base64_decoded(text, "private key"))


def public_key_to_base64(raw_key: bytes) -> str:
    _check_public_key_length(raw_key)
    return base64.b64encode(raw_key).decode("ascii")


def public_key_from_base64(text: str) -> bytes:
    """Raw 32-byte public key from base64; ``ConsentKeyError`` if it is not one."""
    raw = _base64_decoded(text, "public key")
    _check_public_key_length(raw)
    return raw


# --- helpers --------------------------------------------------------------------------------------


def _canonical_json(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _check_aware(moment: datetime, name: str) -> None:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidConsentError(f"{name} must be a timezone-aware datetime, got {moment!r}")


def _check_public_key_length(raw: bytes) -> None:
    if not isinstance(raw, bytes) or len(raw) != ED25519_PUBLIC_KEY_BYTES:
        raise ConsentKeyError(f"owner public key must be {ED25519_PUBLIC_KEY_BYTES} raw bytes")


def _base64_decoded(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as error:
        raise ConsentKeyError(f"{what} is not valid base64") from error


def _verify(message: bytes, signature: bytes, public_key_bytes: bytes) -> None:
    _check_public_key_length(public_key_bytes)
    if not isinstance(signature, bytes) or len(signature) != ED25519_SIGNATURE_BYTES:
        raise ConsentSignatureError(f"signature must be {ED25519_SIGNATURE_BYTES} bytes")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(public_key_bytes)
    except ValueError as error:
        raise ConsentKeyError("owner public key is not a valid Ed25519 key") from error
    try:
        public_key.verify(signature, message)
    except InvalidSignature as error:
        raise ConsentSignatureError("does not match the document and the owner's key") from error
