"""An object store that seals every object under its voice's data key (tenant's, for detection checks).

Object keys name their owner (``AREA/TENANT/VOICE/…``, ``checks/TENANT/…``), so the key picks the
data key. Upstream apps hold no keys: what they put in the inbox areas (uploads, consent statements,
detection checks) may arrive in plaintext, and the stage that reads it writes it back sealed. Everything
voxflow writes is sealed; a plaintext object anywhere else is refused rather than trusted.
"""

from __future__ import annotations

from infra.data_keys import DataKeys, tenant_scope, voice_scope
from infra.errors import InvalidObjectKey, ObjectStoreError
from infra.objectstore import ObjectStore
from processors.trust.envelope import SealedBlobError, is_sealed, open_sealed, seal, sealed_key_id

VOICE_AREAS = ("uploads", "consents", "samples", "syntheses")
TENANT_AREAS = ("checks",)
INBOX_AREAS = ("uploads", "consents", "checks")


class SealedObjectUnreadable(ObjectStoreError):
    """A sealed object that does not open: altered, moved to another key, or under a key voxflow does not hold."""


def scope_of(key: str) -> str:
    """The data key scope an object key belongs to; ``InvalidObjectKey`` for keys outside every owner's area."""
    parts = key.split("/")
    if parts[0] in VOICE_AREAS and len(parts) >= 4 and parts[1] and parts[2]:
        return voice_scope(parts[1], parts[2])
    if parts[0] in TENANT_AREAS and len(parts) >= 3 and parts[1]:
        return tenant_scope(parts[1])
    raise InvalidObjectKey(f"object key {key!r} lies in no tenant's area ({', '.join(VOICE_AREAS + TENANT_AREAS)})")


class EncryptedObjectStore:
    def __init__(self, inner: ObjectStore, data_keys: DataKeys):
        self.inner = inner
        self.data_keys = data_keys

    async def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        data_key = await self.data_keys.for_writing(scope_of(key))
        await self.inner.put(key, seal(data, data_key, key), content_type="application/octet-stream")

    async def get(self, key: str) -> bytes:
        stored = await self.inner.get(key)
        if not is_sealed(stored):
            if key.split("/", 1)[0] in INBOX_AREAS:
                return stored
            raise SealedObjectUnreadable(f"object {key!r} is stored in plaintext, which voxflow never writes there")
        try:
            data_key = await self.data_keys.for_reading(sealed_key_id(stored))
            return open_sealed(stored, data_key, key)
        except SealedBlobError as error:
            raise SealedObjectUnreadable(f"object {key!r} does not open: {error}") from error

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(key)

    async def list_keys(self, prefix: str) -> list[str]:
        return await self.inner.list_keys(prefix)
