"""Event signing keys kept on disk: the worker's, and the tenants' whose events this machine produces.

A tenant key file holds the tenant's raw 32-byte Ed25519 seed as hex, readable by its owner only.
On a real deployment each upstream app keeps its own tenant key and the operator registers only its
public key (`voxflow tenant add TENANT --public-key B64`); the files here serve the CLI and the demo.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from infra.errors import InfraError
from infra.settings import Settings
from processors.trust.consent import private_key_from_raw
from processors.trust.signing import EventSigner

_SAFE_TENANT_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class TenantKeyMissing(InfraError):
    """No signing key for the tenant on this machine."""


def worker_signer(settings: Settings) -> EventSigner:
    """The key every worker of a deployment signs its events with (share VOXFLOW_WORKER_KEY_HEX across hosts)."""
    return EventSigner(private_key_from_raw(settings.worker_key()))


class TenantKeyFiles:
    def __init__(self, directory: Path):
        self.directory = directory

    def signer(self, tenant_id: str) -> EventSigner:
        path = self._path(tenant_id)
        if not path.exists():
            raise TenantKeyMissing(f"no signing key for tenant {tenant_id!r} in {self.directory}: "
                                   f"run `voxflow tenant add {tenant_id}`")
        return EventSigner(private_key_from_raw(bytes.fromhex(path.read_text().strip())))

    def create(self, tenant_id: str) -> EventSigner:
        """The tenant's key, made now unless it already exists."""
        path = self._path(tenant_id)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(32))
        return self.signer(tenant_id)

    def _path(self, tenant_id: str) -> Path:
        if not _SAFE_TENANT_ID.fullmatch(tenant_id):
            raise TenantKeyMissing(f"tenant id {tenant_id!r} cannot name a key file: use letters, digits, '.', '_', '-'")
        return self.directory / f"{tenant_id}.key"
