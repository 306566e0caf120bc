"""Envelope encryption: AES-256-GCM under a data key, data keys wrapped by a master key.

A sealed blob is ``MAGIC | data key id (16 bytes) | nonce (12) | ciphertext + tag``. The header and
the caller's context (an object key, a profile's voice and version) are authenticated with it, so a
blob copied to another place, or given another key id, does not open. Rotating the master key
rewraps data keys; sealed blobs never change.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from processors.errors import ProcessorError

MAGIC = b"VXE1"
KEY_BYTES = 32
NONCE_BYTES = 12
_HEADER_BYTES = len(MAGIC) + 16 + NONCE_BYTES


class SealedBlobError(ProcessorError):
    """A sealed blob or wrapped key that does not open: truncated, altered, moved, or under another key."""


@dataclass(frozen=True)
class DataKey:
    key_id: uuid.UUID
    secret: bytes


def new_data_key() -> DataKey:
    return DataKey(uuid.uuid4(), AESGCM.generate_key(bit_length=256))


def is_sealed(blob: bytes) -> bool:
    return blob[:len(MAGIC)] == MAGIC


def sealed_key_id(blob: bytes) -> uuid.UUID:
    """The id of the data key a sealed blob needs."""
    if not is_sealed(blob) or len(blob) < _HEADER_BYTES:
        raise SealedBlobError("not a voxflow sealed blob")
    return uuid.UUID(bytes=blob[len(MAGIC):len(MAGIC) + 16])


def seal(plaintext: bytes, data_key: DataKey, context: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    header = MAGIC + data_key.key_id.bytes + nonce
    return header + AESGCM(data_key.secret).encrypt(nonce, plaintext, header + context.encode())


def open_sealed(blob: bytes, data_key: DataKey, context: str) -> bytes:
    if sealed_key_id(blob) != data_key.key_id:
        raise SealedBlobError(f"sealed under data key {sealed_key_id(blob)}, not {data_key.key_id}")
    header, ciphertext = blob[:_HEADER_BYTES], blob[_HEADER_BYTES:]
    try:
        return AESGCM(data_key.secret).decrypt(header[-NONCE_BYTES:], ciphertext, header + context.encode())
    except InvalidTag as error:
        raise SealedBlobError(f"sealed blob for {context!r} was altered or belongs elsewhere") from error


def wrap_data_key(data_key: DataKey, master_key: bytes, scope: str) -> bytes:
    """The data key encrypted under the master key, bound to its id and scope."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master_key).encrypt(nonce, data_key.secret, _wrap_context(data_key.key_id, scope))


def unwrap_data_key(wrapped: bytes, key_id: uuid.UUID, master_key: bytes, scope: str) -> DataKey:
    try:
        secret = AESGCM(master_key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_context(key_id, scope))
    except InvalidTag as error:
        raise SealedBlobError(f"data key {key_id} does not unwrap under this master key") from error
    return DataKey(key_id, secret)


def _wrap_context(key_id: uuid.UUID, scope: str) -> bytes:
    return b"voxflow-data-key|" + key_id.bytes + scope.encode()
