"""Tenants' SCRAM users on the broker: a generated password kept beside the tenant's signing key.

The file holds the password (64 hex digits), readable by its owner only; the tenant's app reads it
(``ClientConfig.from_environment``) or is handed it. The user is created with the login of whoever runs
`voxflow tenant add`, which on Apache Kafka needs Alter on the cluster; the tenant's topic ACLs are
granted apart from this (deploy/kafka/add-tenant.sh).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from infra.errors import BrokerUserRefused
from infra.kafka import upsert_scram_user
from infra.settings import Settings
from voxflow.broker_login import tenant_broker_password_file, tenant_broker_user

_SAFE_TENANT_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(frozen=True)
class TenantBrokerUser:
    username: str
    password_file: Path


def tenant_broker_password(key_directory: Path, tenant_id: str) -> tuple[Path, str]:
    """The tenant's broker password file and password, made now unless it already exists."""
    if not _SAFE_TENANT_ID.fullmatch(tenant_id):
        raise BrokerUserRefused(f"tenant id {tenant_id!r} cannot name a broker user: use letters, digits, '.', "
                                f"'_', '-'")
    path = tenant_broker_password_file(key_directory, tenant_id)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path, path.read_text().strip()


async def add_tenant_broker_user(settings: Settings, tenant_id: str) -> TenantBrokerUser:
    """Create (or give its password again to) the tenant's SCRAM user, logged in as ``settings`` say."""
    security = settings.broker_security()
    path, password = tenant_broker_password(settings.tenant_key_directory(), tenant_id)
    username = tenant_broker_user(tenant_id)
    await upsert_scram_user(settings.kafka_bootstrap, username, password, mechanism=security.mechanism,
                            security=security)
    return TenantBrokerUser(username, path)
