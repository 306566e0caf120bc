"""`voxflow audit verify|replay` and `voxflow schemas export`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@click.pass_obj
def audit_verify(settings: Settings) -> None:
    """Recompute the whole chain; exit 1 and name the first bad entry if it was tampered with."""
    from streams.auditing import verify_audit_log

    verification = run_async(verify_audit_log(settings))
    echo_json(verification._asdict() if hasattr(verification, "_asdict") else vars(verification))
    if not verification.valid:
        sys.exit(1)


@audit.command("replay")
@click.option("--after", default=0, show_default=True, help="Start after this sequence number.")
@click.option("--voice", "voice_id", default=None, help="Only records about this voice.")
@click.pass_obj
def audit_replay(settings: Settings, after: int, voice_id: str | None) -> None:
    """Print audit records in chain order as JSON lines."""
    from streams.auditing import read_audit_log

    for entry in run_async(read_audit_log(settings, after_sequence=after)):
        if voice_id is None or entry.record.get("voice_id") == voice_id:
            click.echo(json.dumps({"sequence": entry.sequence, "hash": entry.record_hash, "record": entry.record}))


@main.group()
def schemas() -> None:
    """Event schemas."""


@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    """Write JSON Schema for every event type (for producers in other languages)."""
    from schemas import export_json_schemas

    for path in export_json_schemas(directory):
        click.echo(str(path))
