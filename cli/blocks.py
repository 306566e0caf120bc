"""`voxflow block tenant|voice|list` and `voxflow unblock`: stop a tenant or a voice in every stage."""

from __future__ import annotations

import getpass
from dataclasses import asdict

import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings

SUBJECT_KINDS = click.Choice(["tenant", "voice"])
_BY = click.option("--by", "operator", default=getpass.getuser, show_default="your user name",
                   help="Who decided it, for the record.")


@main.group()
def block() -> None:
    """Block a tenant or a voice: every stage refuses its requests, naming the block (an operator's job)."""


@block.command("tenant")
@click.argument("tenant_id")
@click.option("--reason", required=True, help="Why; every refusal quotes it.")
@_BY
@click.pass_obj
def block_tenant(settings: Settings, tenant_id: str, reason: str, operator: str) -> None:
    """Refuse every request of TENANT_ID, and stop its syntheses under way (within seconds)."""
    _block(settings, "tenant", tenant_id, reason, operator)


@block.command("voice")
@click.argument("voice_id")
@click.option("--reason", required=True, help="Why; every refusal quotes it.")
@_BY
@click.pass_obj
def block_voice(settings: Settings, voice_id: str, reason: str, operator: str) -> None:
    """Refuse every request for VOICE_ID (blends that use it included), and stop its syntheses under way."""
    _block(settings, "voice", voice_id, reason, operator)


@block.command("list")
@click.option("--all", "with_lifted", is_flag=True, help="Lifted blocks too.")
@click.pass_obj
def block_list(settings: Settings, with_lifted: bool) -> None:
    """The blocks in force (with --all: every block ever placed)."""
    from infra.repositories import BlockRepository
    from streams.session import database

    async def go():
        async with database(settings) as pool:
            blocks = BlockRepository(pool)
            return await (blocks.history() if with_lifted else blocks.in_force())

    echo_json([asdict(found) for found in run_async(go())])


@main.command()
@click.argument("subject_kind", type=SUBJECT_KINDS)
@click.argument("subject_id")
@_BY
@click.pass_obj
def unblock(settings: Settings, subject_kind: str, subject_id: str, operator: str) -> None:
    """Lift the block on a tenant or a voice; its next requests go through (within seconds)."""
    from infra.repositories import BlockRepository
    from streams.session import database

    async def go():
        async with database(settings) as pool:
            return await BlockRepository(pool).lift(subject_kind=subject_kind, subject_id=subject_id,
                                                    lifted_by=operator)

    lifted = run_async(go())
    if lifted is None:
        raise click.ClickException(f"{subject_kind} {subject_id!r} is not blocked")
    echo_json(asdict(lifted))


def _block(settings: Settings, subject_kind: str, subject_id: str, reason: str, operator: str) -> None:
    from infra.repositories import BlockRepository
    from streams.session import database

    async def go():
        async with database(settings) as pool:
            return await BlockRepository(pool).block(subject_kind=subject_kind, subject_id=subject_id, reason=reason,
                                                     blocked_by=operator)

    standing, placed = run_async(go())
    if not placed:
        click.echo(f"{subject_kind} {subject_id!r} was already blocked; that block stands", err=True)
    echo_json(asdict(standing))
