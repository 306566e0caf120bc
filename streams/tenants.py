"""Registering the tenants whose signed events voxflow accepts."""

from __future__ import annotations

from infra.db import apply_migrations
from infra.repositories import TenantKey, TenantKeyRepository
from infra.settings import Settings
from infra.signing_keys import TenantKeyFiles
from processors.trust.consent import public_key_from_base64
from processors.trust.signing import key_id_of
from streams.errors import TenantKeyTaken
from streams.session import database


async def register_tenant(settings: Settings, tenant_id: str, *, public_key_base64: str | None = None) -> TenantKey:
    """Register ``tenant_id``'s public key (given, or that of a key made or found on this machine).

    Registering the same key again is a no-op; a key already registered for another tenant raises
    ``TenantKeyTaken``, so one producer key never speaks for two tenants.
    """
    if public_key_base64 is None:
        public_key = TenantKeyFiles(settings.tenant_key_directory()).create(tenant_id).public_key
    else:
        public_key = public_key_from_base64(public_key_base64)
    async with database(settings) as pool:
        await apply_migrations(pool)
        registered = await TenantKeyRepository(pool).add(key_id=key_id_of(public_key), tenant_id=tenant_id,
                                                         public_key=public_key)
    if registered.tenant_id != tenant_id:
        raise TenantKeyTaken(f"key {registered.key_id} is registered to tenant {registered.tenant_id!r}")
    return registered


async def tenant_keys(settings: Settings, tenant_id: str | None = None) -> list[TenantKey]:
    async with database(settings) as pool:
        return await TenantKeyRepository(pool).for_tenant(tenant_id=tenant_id)


async def revoke_tenant_key(settings: Settings, key_id: str) -> bool:
    async with database(settings) as pool:
        return await TenantKeyRepository(pool).revoke(key_id=key_id)
