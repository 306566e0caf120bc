"""`voxflow consent keygen|grant|revoke`: the owner's signed consent."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from pathlib import Path

import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings


@main.group()
def consent() -> None:
    """Owner keys, signed consent and revocation."""


@consent.command("keygen")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
def consent_keygen(key_file: Path) -> None:
    """Create an Ed25519 owner key (raw private key, base64) and print its public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from streams.client import public_key_base64

    if key_file.exists():
        raise click.ClickException(f"{key_file} exists; not overwriting an owner key")
    private_key = Ed25519PrivateKey.generate()
    raw = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    key_file.write_text(base64.b64encode(raw).decode() + "\n")
    key_file.chmod(0o600)
    click.echo(public_key_base64(private_key))


def load_owner_key(key_file: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(key_file.read_text().strip()))
    except ValueError as error:
        raise click.ClickException(f"{key_file} is not an owner key made by `voxflow consent keygen`") from error


@consent.command("grant")
@click.option("--voice", "voice_id", required=True)
@click.option("--tenant", "tenant_id", default="default", show_default=True)
@click.option("--owner", "owner_id", required=True)
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--purpose", "purposes", multiple=True, required=True)
@click.option("--language", "languages", multiple=True, default=("en",), show_default=True)
@click.option("--days", default=365, show_default=True, help="Valid for this many days.")
@click.option("--max-uses", type=int, default=None)
@click.option("--statement", default=None,
              help="The consent statement the owner agreed to and spoke; default: this deployment's consent phrase "
                   "(VOXFLOW_SPOKEN_CONSENT_PHRASE_TEMPLATE naming VOXFLOW_OPERATOR_NAME), which a spoken statement "
                   "must say.")
@click.option("--statement-audio", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A recording of the owner speaking the consent phrase (required unless the deployment relaxed "
                   "VOXFLOW_REQUIRE_SPOKEN_CONSENT); its words and its voice are checked.")
@click.pass_obj
def consent_grant(settings: Settings, voice_id, tenant_id, owner_id, key_file, purposes, languages, days, max_uses,
                  statement, statement_audio) -> None:
    """Sign a consent document with the owner's key and produce consent.granted."""
    from voxflow.envelopes import signed_consent
    from streams.session import client_session

    statement = statement or settings.spoken_consent_phrase()
    audio = statement_audio.read_bytes() if statement_audio else None
    audio_key = f"consents/{tenant_id}/{voice_id}/{uuid.uuid4()}{statement_audio.suffix}" if audio else None
    event = signed_consent(load_owner_key(key_file), tenant_id=tenant_id, voice_id=voice_id, owner_id=owner_id,
                           purposes=list(purposes), languages=list(languages), statement_text=statement,
                           valid_for=timedelta(days=days), max_uses=max_uses, statement_audio_key=audio_key,
                           statement_audio=audio)

    async def go():
        async with client_session(settings, with_store=audio is not None) as session:
            if audio is not None:
                await session.store.put(audio_key, audio)
            await session.publisher.publish(event)

    run_async(go())
    echo_json(event.model_dump(mode="json"))


@consent.command("revoke")
@click.option("--voice", "voice_id", required=True)
@click.option("--tenant", "tenant_id", default="default", show_default=True)
@click.option("--consent-id", required=True, type=click.UUID)
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def consent_revoke(settings: Settings, voice_id, tenant_id, consent_id: uuid.UUID, key_file: Path) -> None:
    """Sign a revocation with the owner's key and produce consent.revoked."""
    from voxflow.envelopes import signed_revocation
    from streams.session import client_session

    event = signed_revocation(load_owner_key(key_file), tenant_id=tenant_id, voice_id=voice_id,
                              consent_id=consent_id)

    async def go():
        async with client_session(settings, with_store=False) as session:
            await session.publisher.publish(event)

    run_async(go())
    echo_json(event.model_dump(mode="json"))
