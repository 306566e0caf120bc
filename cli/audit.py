"""`voxflow audit verify|checkpoint|replay` and `voxflow schemas export`."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings


class _UtcTime(click.ParamType):
    """An ISO 8601 time; one without an offset is taken as UTC."""

    name = "time"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2026-12-01T18:00:00Z)", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@click.option("--checkpoint", "checkpoint_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint kept elsewhere (JSON from `voxflow audit checkpoint` or the audit topic); repeatable.")
@click.option("--public-key", default=None, metavar="B64",
              help="The worker key that signs checkpoints (default: this deployment's).")
@click.pass_obj
def audit_verify(settings: Settings, checkpoint_files: tuple[Path, ...], public_key: str | None) -> None:
    """Recompute the chain and check its signed checkpoints; exit 1 naming the first bad entry or cut."""
    from processors.trust.consent import public_key_from_base64
    from streams.auditing import verify_audit_log

    kept = [_kept_checkpoint(path) for path in checkpoint_files]
    key = public_key_from_base64(public_key) if public_key else None
    verification = run_async(verify_audit_log(settings, kept_checkpoints=kept, checkpoint_public_key=key))
    echo_json(dataclasses.asdict(verification))
    if not verification.valid:
        sys.exit(1)


@audit.command("checkpoint")
@click.pass_obj
def audit_checkpoint(settings: Settings) -> None:
    """Print the latest signed checkpoint as JSON: keep it anywhere, and pass it to `verify --checkpoint`."""
    from streams.auditing import latest_checkpoint

    checkpoint = run_async(latest_checkpoint(settings))
    if checkpoint is None:
        raise click.ClickException("no checkpoint yet: a worker running the audit stage signs one every "
                                   f"{settings.audit_checkpoint_interval_s:g} s once the log has entries")
    click.echo(checkpoint.model_dump_json())


def _kept_checkpoint(path: Path):
    from schemas import parse_event
    from schemas.events import AuditCheckpointed
    from streams.checkpoints import checkpoint_of

    event = parse_event(path.read_bytes())
    if not isinstance(event, AuditCheckpointed):
        raise click.BadParameter(f"{path} holds a {event.type}, not an audit.checkpoint", param_hint="--checkpoint")
    return checkpoint_of(event)


@audit.command("replay")
@click.option("--after", default=0, show_default=True, help="Start after this sequence number.")
@click.option("--voice", "voice_id", default=None, help="Only records about this voice.")
@click.option("--since", type=_UtcTime(), default=None, metavar="TIME",
              help="Compare instead: re-read the audit topic and set its records since TIME (ISO 8601, UTC if no "
                   "offset) beside Postgres's, naming every difference; exit 1 if there is one.")
@click.option("--idle-timeout", default=3.0, show_default=True,
              help="With --since: seconds without a message before the topic counts as read.")
@click.pass_obj
def audit_replay(settings: Settings, after: int, voice_id: str | None, since: datetime | None,
                 idle_timeout: float) -> None:
    """Print audit records in chain order as JSON lines, or (--since) compare the topic with Postgres."""
    if since is not None:
        _compare_with_topic(settings, since, idle_timeout)
        return
    from streams.auditing import read_audit_log

    for entry in run_async(read_audit_log(settings, after_sequence=after)):
        if voice_id is None or entry.record.get("voice_id") == voice_id:
            click.echo(json.dumps({"sequence": entry.sequence, "hash": entry.record_hash, "record": entry.record}))


def _compare_with_topic(settings: Settings, since: datetime, idle_timeout_s: float) -> None:
    from streams.audit_replay import replay_audit_topic

    differences = run_async(replay_audit_topic(settings, since=since, idle_timeout_s=idle_timeout_s))
    echo_json({"since": since.isoformat(), "consistent": not differences,
               "differences": [difference.to_dict() for difference in differences]})
    if differences:
        sys.exit(1)


@main.group()
def schemas() -> None:
    """Event schemas."""


@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--examples", "examples_directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write an example event of every type here (`<type>.json`), each valid against its model.")
def schemas_export(directory: Path, examples_directory: Path | None) -> None:
    """Write JSON Schema for every event type (for producers in other languages)."""
    from schemas import export_json_schemas
    from schemas.examples import ExampleRefused, export_examples

    written = export_json_schemas(directory)
    if examples_directory is not None:
        try:
            written += export_examples(examples_directory)
        except ExampleRefused as error:
            raise click.ClickException(str(error)) from error
    for path in written:
        click.echo(str(path))
