"""Uploading, producing and consuming events from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings


@main.command()
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--voice", "voice_id", required=True)
@click.option("--tenant", "tenant_id", default="default", show_default=True)
@click.pass_obj
def upload(settings: Settings, audio: Path, voice_id: str, tenant_id: str) -> None:
    """Put a voice sample in the object store, then produce sample.uploaded."""
    from streams.session import client_session
    from streams.client import upload_sample

    async def go():
        async with client_session(settings) as session:
            return await upload_sample(session.store, session.publisher, data=audio.read_bytes(),
                                       filename=audio.name, tenant_id=tenant_id, voice_id=voice_id)

    echo_json(run_async(go()).model_dump(mode="json"))


@main.command()
@click.argument("source", type=click.File("rb"), default="-")
@click.pass_obj
def produce(settings: Settings, source) -> None:
    """Validate JSON events (one per line, or one document) and produce each to its topic."""
    from schemas import parse_event
    from schemas.errors import SchemaError
    from streams.session import client_session

    text = source.read().decode()
    lines = [text] if text.lstrip().startswith("{") and "\n{" not in text.strip() else text.splitlines()
    try:
        parsed = [parse_event(line) for line in lines if line.strip()]
    except SchemaError as error:
        raise click.ClickException(f"not produced: {error}") from error

    async def go():
        async with client_session(settings, with_store=False) as session:
            for event in parsed:
                await session.publisher.publish(event)

    run_async(go())
    for event in parsed:
        click.echo(f"produced {event.type} {event.event_id}")


@main.command()
@click.argument("topic_names", nargs=-1)
@click.option("--follow", is_flag=True, help="Keep waiting for new events.")
@click.option("--idle-timeout", default=2.0, show_default=True, help="Seconds without events before stopping.")
@click.pass_obj
def consume(settings: Settings, topic_names: tuple[str, ...], follow: bool, idle_timeout: float) -> None:
    """Print events from topics (default: voxflow.results) as JSON lines, from the beginning."""
    from infra.kafka import consume as consume_topics
    from streams.topics import RESULTS

    async def go():
        async for topic, partition, offset, _key, value, _headers in consume_topics(
            settings.kafka_bootstrap, list(topic_names) or [RESULTS], idle_timeout_s=None if follow else idle_timeout
        ):
            click.echo(json.dumps({"topic": topic, "partition": partition, "offset": offset,
                                   "event": _json_or_text(value)}))

    run_async(go())


def _json_or_text(value: bytes):
    try:
        return json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return value.decode("utf-8", errors="replace")
