"""Data keys at rest: one AES-256 key per voice (per tenant for detection checks), wrapped by a master key.

Wrapped keys live in Postgres (``data_keys``, migration 0009) with the id of the master key that
wraps them; master keys live outside the database, one hex file each in the master-key directory,
whose ``active`` file names the one new data keys are wrapped with. Erasing a voice destroys its data
key's row (crypto-shredding): a copy of a sealed object anywhere — a backup, a straggling chunk —
no longer opens, and the scope can never get a key again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from infra.errors import DataKeyDestroyed, MasterKeyMissing
from infra.settings import Settings
from processors.trust.envelope import (DataKey, new_data_key, open_sealed, seal, sealed_key_id, unwrap_data_key,
                                       wrap_data_key)

# An erasure on one worker reaches the unwrapped keys other workers hold in memory within this long.
UNWRAPPED_KEY_CACHE_S = 10.0
_MASTER_KEY_FILE = re.compile(r"^([0-9a-f]{16})\.key$")


def voice_scope(tenant_id: str, voice_id: str) -> str:
    return f"voice:{tenant_id}/{voice_id}"


def tenant_scope(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


class MasterKeyring:
    """The master keys in a directory; the first use of an empty directory makes one."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._keys: dict[str, bytes] = {}

    def active(self) -> tuple[str, bytes]:
        active_file = self.directory / "active"
        if not active_file.exists():
            return self._add()
        key_id = active_file.read_text().strip()
        return key_id, self.get(key_id)

    def get(self, key_id: str) -> bytes:
        if key_id not in self._keys:
            self._load()
        if key_id not in self._keys:
            raise MasterKeyMissing(f"master key {key_id} is not in {self.directory}: copy it there from the "
                                   "machine that made it")
        return self._keys[key_id]

    def rotate(self) -> str:
        """Make a new master key the active one; the old ones stay until no data key uses them."""
        return self._add()[0]

    def key_ids(self) -> list[str]:
        self._load()
        return sorted(self._keys)

    def _add(self) -> tuple[str, bytes]:
        secret = secrets.token_bytes(32)
        key_id = hashlib.sha256(secret).hexdigest()[:16]
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"{key_id}.key"
        path.touch(mode=0o600)
        path.write_text(secret.hex())
        temporary = self.directory / "active.new"
        temporary.write_text(key_id)
        temporary.replace(self.directory / "active")
        self._keys[key_id] = secret
        return key_id, secret

    def _load(self) -> None:
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            match = _MASTER_KEY_FILE.match(path.name)
            if match:
                self._keys[match.group(1)] = bytes.fromhex(path.read_text().strip())


@dataclass(frozen=True)
class WrappedDataKey:
    key_id: uuid.UUID
    scope: str
    master_key_id: str | None
    wrapped_key: bytes | None
    destroyed_at: datetime | None


class DataKeyRepository:
    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection):
        self.pool = pool

    async def for_scope(self, *, scope: str) -> WrappedDataKey | None:
        return _wrapped(await self.pool.fetchrow("SELECT * FROM data_keys WHERE scope = $1", scope))

    async def by_id(self, *, key_id: uuid.UUID) -> WrappedDataKey | None:
        return _wrapped(await self.pool.fetchrow("SELECT * FROM data_keys WHERE key_id = $1", key_id))

    async def add(self, *, key_id: uuid.UUID, scope: str, master_key_id: str, wrapped_key: bytes) -> WrappedDataKey:
        """Store a new data key for the scope, unless one exists (made by another worker, or destroyed): that one."""
        await self.pool.execute(
            "INSERT INTO data_keys (key_id, scope, master_key_id, wrapped_key) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (scope) DO NOTHING", key_id, scope, master_key_id, wrapped_key)
        return await self.for_scope(scope=scope)

    async def destroy(self, *, scope: str) -> None:
        """Forget the scope's key for good; a scope with no key yet gets a tombstone, so it never gets one."""
        await self.pool.execute(
            "INSERT INTO data_keys (key_id, scope, destroyed_at) VALUES ($1, $2, now())"
            " ON CONFLICT (scope) DO UPDATE SET wrapped_key = NULL, master_key_id = NULL,"
            " destroyed_at = coalesce(data_keys.destroyed_at, now())", uuid.uuid4(), scope)

    async def wrapped_by_other_than(self, *, master_key_id: str) -> list[WrappedDataKey]:
        rows = await self.pool.fetch(
            "SELECT * FROM data_keys WHERE wrapped_key IS NOT NULL AND master_key_id <> $1", master_key_id)
        return [_wrapped(row) for row in rows]

    async def rewrap(self, *, key_id: uuid.UUID, old_master_key_id: str, master_key_id: str,
                     wrapped_key: bytes) -> bool:
        """Replace a key's wrapping, unless it was destroyed or rewrapped by someone else meanwhile."""
        status = await self.pool.execute(
            "UPDATE data_keys SET master_key_id = $3, wrapped_key = $4, rewrapped_at = now()"
            " WHERE key_id = $1 AND master_key_id = $2 AND wrapped_key IS NOT NULL",
            key_id, old_master_key_id, master_key_id, wrapped_key)
        return status == "UPDATE 1"

    async def count_by_master_key(self) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT coalesce(master_key_id, 'destroyed') AS master, count(*) AS n FROM data_keys GROUP BY 1")
        return {row["master"]: row["n"] for row in rows}


def _wrapped(row: asyncpg.Record | None) -> WrappedDataKey | None:
    if row is None:
        return None
    return WrappedDataKey(row["key_id"], row["scope"], row["master_key_id"],
                          None if row["wrapped_key"] is None else bytes(row["wrapped_key"]), row["destroyed_at"])


class DataKeys:
    """Unwrapped data keys for sealing and opening, made on first write to a scope and cached briefly."""

    def __init__(self, keyring: MasterKeyring, repository: DataKeyRepository, *, clock=time.monotonic):
        self.keyring = keyring
        self.repository = repository
        self._clock = clock
        self._by_scope: dict[str, tuple[float, DataKey]] = {}
        self._by_id: dict[uuid.UUID, tuple[float, DataKey]] = {}
        self._lock = asyncio.Lock()

    async def for_writing(self, scope: str) -> DataKey:
        """The scope's data key, made now if it has none; ``DataKeyDestroyed`` once the scope was erased."""
        cached = self._fresh(self._by_scope.get(scope))
        if cached is not None:
            return cached
        async with self._lock:
            stored = await self.repository.for_scope(scope=scope)
            if stored is None:
                stored = await self._create(scope)
            data_key = self._remember(self._unwrap(stored))
            self._by_scope[scope] = (self._clock(), data_key)
            return data_key

    async def for_reading(self, key_id: uuid.UUID) -> DataKey:
        cached = self._fresh(self._by_id.get(key_id))
        if cached is not None:
            return cached
        stored = await self.repository.by_id(key_id=key_id)
        if stored is None:
            raise DataKeyDestroyed(f"data key {key_id} does not exist: its voice was erased, or the data is not ours")
        return self._remember(self._unwrap(stored))

    async def destroy(self, scope: str) -> None:
        await self.repository.destroy(scope=scope)
        self._forget(scope)

    async def check_keyring(self) -> None:
        """Refuse to start on a machine without the deployment's master keys (``MasterKeyMissing``): making a
        fresh one here would seal new data under a key the other workers lack."""
        wrapping = {key for key in await self.repository.count_by_master_key() if key != "destroyed"}
        missing = wrapping - set(self.keyring.key_ids())
        if missing:
            raise MasterKeyMissing(f"data keys in the database are wrapped by master keys {', '.join(sorted(missing))}, "
                                   f"which are not in {self.keyring.directory}: copy the deployment's master-key "
                                   "directory here (VOXFLOW_MASTER_KEYS_DIR)")

    async def rewrap_all(self) -> int:
        """Wrap every data key under the active master key; returns how many were rewrapped."""
        active_id, active_key = self.keyring.active()
        rewrapped = 0
        for stored in await self.repository.wrapped_by_other_than(master_key_id=active_id):
            data_key = self._unwrap(stored)
            if await self.repository.rewrap(key_id=stored.key_id, old_master_key_id=stored.master_key_id,
                                            master_key_id=active_id,
                                            wrapped_key=wrap_data_key(data_key, active_key, stored.scope)):
                rewrapped += 1
        return rewrapped

    async def _create(self, scope: str) -> WrappedDataKey:
        master_id, master_key = self.keyring.active()
        data_key = new_data_key()
        return await self.repository.add(key_id=data_key.key_id, scope=scope, master_key_id=master_id,
                                         wrapped_key=wrap_data_key(data_key, master_key, scope))

    def _unwrap(self, stored: WrappedDataKey) -> DataKey:
        if stored.wrapped_key is None:
            raise DataKeyDestroyed(f"the data key of {stored.scope} was destroyed at "
                                   f"{stored.destroyed_at.isoformat()} (erased): its data cannot be read or written")
        return unwrap_data_key(stored.wrapped_key, stored.key_id, self.keyring.get(stored.master_key_id), stored.scope)

    def _remember(self, data_key: DataKey) -> DataKey:
        self._by_id[data_key.key_id] = (self._clock(), data_key)
        return data_key

    def _fresh(self, entry: tuple[float, DataKey] | None) -> DataKey | None:
        if entry is None or self._clock() - entry[0] >= UNWRAPPED_KEY_CACHE_S:
            return None
        return entry[1]

    def _forget(self, scope: str) -> None:
        entry = self._by_scope.pop(scope, None)
        if entry is not None:
            self._by_id.pop(entry[1].key_id, None)


class SealedDocuments:
    """JSON documents (voice profiles) sealed under their scope's data key, for rows in Postgres."""

    def __init__(self, data_keys: DataKeys):
        self.data_keys = data_keys

    async def seal(self, document: dict[str, Any], *, scope: str, context: str) -> bytes:
        data_key = await self.data_keys.for_writing(scope)
        return seal(json.dumps(document, separators=(",", ":")).encode(), data_key, context)

    async def open(self, sealed: bytes, *, context: str) -> dict[str, Any]:
        data_key = await self.data_keys.for_reading(sealed_key_id(sealed))
        return json.loads(open_sealed(sealed, data_key, context))


def data_keys_for(settings: Settings, pool: asyncpg.Pool) -> DataKeys:
    return DataKeys(MasterKeyring(settings.master_key_directory()), DataKeyRepository(pool))
