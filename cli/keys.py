"""`voxflow keys status|rotate`: the master keys that wrap every voice's data key."""

from __future__ import annotations

import dataclasses

import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings


@main.group()
def keys() -> None:
    """Encryption at rest: master keys (files under the master-key directory) and the data keys they wrap."""


@keys.command("status")
@click.pass_obj
def keys_status(settings: Settings) -> None:
    """The active master key, the ones on this machine, and how many data keys each wraps."""
    from streams.keys import key_status

    echo_json(run_async(key_status(settings)))


@keys.command("rotate")
@click.option("--resume", is_flag=True, help="Do not make a new master key: rewrap what an interrupted rotation left.")
@click.pass_obj
def keys_rotate(settings: Settings, resume: bool) -> None:
    """Make a new master key active and rewrap every data key under it (audio is not re-encrypted).

    Workers pick the new key up from the master-key directory; copy it to every host first. An old
    master key file can be deleted once `keys status` shows it wraps no data key.
    """
    from streams.keys import rotate_master_key

    echo_json(dataclasses.asdict(run_async(rotate_master_key(settings, new_key=not resume))))
