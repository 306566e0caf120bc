"""Ed25519 signatures on event messages: who produced an event, checkable by every stage.

A producer signs the exact bytes of the message value (the event's JSON, envelope and body) and
sends two Kafka headers with it:

    voxflow-key-id     the signing key's id: the first 16 hex digits of SHA-256 over the raw
                       32-byte Ed25519 public key (ASCII)
    voxflow-signature  the raw 64-byte Ed25519 signature over the value bytes

Signing the bytes as sent, rather than a re-serialised form, lets a producer in any language sign
without reproducing voxflow's JSON encoding. Tenants sign what they send upstream; workers sign
everything they publish.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from processors.errors import EventSignatureError
from processors.trust.consent import ED25519_PUBLIC_KEY_BYTES, ED25519_SIGNATURE_BYTES, raw_public_key

KEY_ID_HEADER = "voxflow-key-id"
SIGNATURE_HEADER = "voxflow-signature"
TIMESTAMP_HEADER = "voxflow-timestamp"  # HTTP requests only: unix seconds, inside the signed bytes
KEY_ID_HEX_DIGITS = 16

Headers = list[tuple[str, bytes]]


def key_id_of(public_key: bytes) -> str:
    if len(public_key) != ED25519_PUBLIC_KEY_BYTES:
        raise EventSignatureError(f"an Ed25519 public key is {ED25519_PUBLIC_KEY_BYTES} bytes, got {len(public_key)}")
    return hashlib.sha256(public_key).hexdigest()[:KEY_ID_HEX_DIGITS]


@dataclass(frozen=True)
class EventSigner:
    """One producer's signing key."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return raw_public_key(self.private_key)

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def headers_for(self, value: bytes) -> Headers:
        return [(KEY_ID_HEADER, self.key_id.encode("ascii")), (SIGNATURE_HEADER, self.private_key.sign(value))]

    def request_headers(self, method: str, path: str, timestamp: int) -> dict[str, str]:
        """HTTP headers signing a request to a worker (the output delivery endpoint); signature in base64."""
        signature = self.private_key.sign(request_signing_bytes(method, path, timestamp))
        return {KEY_ID_HEADER: self.key_id, TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: base64.b64encode(signature).decode()}


def request_signing_bytes(method: str, path: str, timestamp: int) -> bytes:
    """What a signed HTTP request's signature covers: ``METHOD\nPATH\nTIMESTAMP``."""
    return f"{method.upper()}\n{path}\n{int(timestamp)}".encode()


@dataclass(frozen=True)
class MessageSignature:
    key_id: str
    signature: bytes


def message_signature(headers: Iterable[tuple[str, bytes]]) -> MessageSignature:
    """The signature a message carries; ``EventSignatureError`` saying what is missing or malformed."""
    found = {name: value for name, value in headers if name in (KEY_ID_HEADER, SIGNATURE_HEADER)}
    if KEY_ID_HEADER not in found or SIGNATURE_HEADER not in found:
        raise EventSignatureError(f"unsigned: the message lacks the {KEY_ID_HEADER} and {SIGNATURE_HEADER} headers")
    signature = bytes(found[SIGNATURE_HEADER] or b"")
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise EventSignatureError(f"{SIGNATURE_HEADER} is {len(signature)} bytes, not an Ed25519 signature")
    try:
        key_id = bytes(found[KEY_ID_HEADER] or b"").decode("ascii")
    except UnicodeDecodeError as error:
        raise EventSignatureError(f"{KEY_ID_HEADER} is not ASCII") from error
    return MessageSignature(key_id, signature)


def verify_message(value: bytes, signature: MessageSignature, public_key: bytes) -> None:
    """Raise ``EventSignatureError`` unless ``signature`` is ``public_key``'s over exactly ``value``."""
    if key_id_of(public_key) != signature.key_id:
        raise EventSignatureError(f"key {signature.key_id} is not the key given")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature.signature, value)
    except InvalidSignature as error:
        raise EventSignatureError(f"forged or altered: the signature of key {signature.key_id} does not match "
                                  "the message") from error
