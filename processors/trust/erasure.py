"""The owner's signed request to erase a voice: canonical bytes, signing and checking."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from processors.trust.consent import utc_timestamp


def canonical_erasure_bytes(*, erasure_id: str, tenant_id: str, voice_id: str, requested_at: datetime) -> bytes:
    document = {"action": "erase", "erasure_id": erasure_id, "requested_at": utc_timestamp(requested_at),
                "tenant_id": tenant_id, "voice_id": voice_id}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_erasure(private_key: Ed25519PrivateKey, **request) -> bytes:
    return private_key.sign(canonical_erasure_bytes(**request))


def signed_by_an_owner(signature: bytes, owner_public_keys: Iterable[bytes], **request) -> bool:
    """Whether one of the voice owner's keys (those its consents were signed with) signed this erasure."""
    message = canonical_erasure_bytes(**request)
    for public_key in owner_public_keys:
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
            return True
        except (InvalidSignature, ValueError):
            continue
    return False
