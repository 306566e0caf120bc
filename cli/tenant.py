"""`voxflow tenant add|list|revoke-key`: the producer keys whose signed events voxflow accepts."""

from __future__ import annotations

import base64

import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings


@main.group()
def tenant() -> None:
    """Tenants and their event-signing keys (an operator's job)."""


@tenant.command("add")
@click.argument("tenant_id")
@click.option("--public-key", default=None, metavar="B64",
              help="The tenant's Ed25519 public key (raw 32 bytes, base64). Without it, a key is made (or reused) "
                   "under the data dir, so this machine can produce the tenant's events.")
@click.pass_obj
def tenant_add(settings: Settings, tenant_id: str, public_key: str | None) -> None:
    """Register TENANT_ID's signing key; prints the key id and public key.

    With a SASL VOXFLOW_KAFKA_SECURITY_PROTOCOL it also creates the tenant's SCRAM user on the broker
    (tenant-TENANT_ID), its generated password kept beside the tenant's key; prints the user and that file.
    """
    from streams.tenants import register_tenant

    registered = run_async(register_tenant(settings, tenant_id, public_key_base64=public_key))
    described = _described(registered)
    if settings.broker_security().authenticates:
        from infra.broker_users import add_tenant_broker_user

        broker_user = run_async(add_tenant_broker_user(settings, tenant_id))
        described.update(broker_user=broker_user.username, broker_password_file=str(broker_user.password_file))
    echo_json(described)


@tenant.command("list")
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's keys.")
@click.pass_obj
def tenant_list(settings: Settings, tenant_id: str | None) -> None:
    """Registered keys, revoked ones included."""
    from streams.tenants import tenant_keys

    echo_json([_described(key) for key in run_async(tenant_keys(settings, tenant_id))])


@tenant.command("revoke-key")
@click.argument("key_id")
@click.pass_obj
def tenant_revoke_key(settings: Settings, key_id: str) -> None:
    """Stop accepting events signed by KEY_ID (within 30 s on running workers)."""
    from streams.tenants import revoke_tenant_key

    if not run_async(revoke_tenant_key(settings, key_id)):
        raise click.ClickException(f"no active key {key_id}")
    click.echo(f"revoked {key_id}")


def _described(key) -> dict:
    return {"tenant_id": key.tenant_id, "key_id": key.key_id,
            "public_key": base64.b64encode(key.public_key).decode(), "added_at": key.added_at,
            "revoked_at": key.revoked_at}
