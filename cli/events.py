"""Uploading, producing and consuming events from the command line, with the habits of Kafka's console tools."""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings

DEFAULT_TOPIC = "voxflow.results"
DEFAULT_WAIT_S = 600.0
TOPIC_PREFIX = "voxflow."


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
@click.argument("event_type", metavar="[TYPE]", required=False)
@click.option("--json", "source", type=click.File("rb"), default="-", show_default=True, metavar="FILE|-",
              help="The JSON to produce: one document, or one per line.")
@click.option("--tenant", "tenant_id", default=None,
              help="The tenant the events are for, whose key signs them.  [default: default; without TYPE: each "
                   "event's own, which must then be this one]")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The tenant's signing key (64 hex digits, as `voxflow tenant add` writes).  [default: "
                   "TENANT.key in the tenant keys directory]")
@click.option("--wait", is_flag=True,
              help="Then wait for each request's ending (a progress bar on the way: a refined voice's fit, a "
                   "synthesis's chunks, a dub's lines), print it, and exit 1 if it is a failure or rejection.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_WAIT_S,
              show_default=True, metavar="SECONDS", help="With --wait: seconds to wait for each ending.")
@click.pass_obj
def produce(settings: Settings, event_type: str | None, source, tenant_id: str | None, key_file: Path | None,
            wait: bool, timeout_s: float) -> None:
    """Produce events of TYPE to their topic, from their bodies; without TYPE, whole events.

    A body is the event's own fields (voice_id among them); the envelope is filled in: event id,
    correlation id, time, type and tenant, and the message is signed with the tenant's key. Each
    event is validated before anything is sent, and printed as one JSON line once the broker has it.
    With --wait, an adaptation's wait ends at its first voice (the instant one). Exit status: 0 when
    all went, 1 when something did not (one line on stderr says what), 2 for a usage error.

    \b
      echo '{"voice_id": "narrator-1", "text": "Hello.", "purpose": "narration"}' \\
        | voxflow produce synthesis.requested --json -
    """
    from schemas.errors import SchemaError

    documents = json_documents(source.read().decode(errors="replace"))
    if not documents:
        raise click.ClickException("nothing to produce: the input holds no JSON")
    events = []
    for number, document in enumerate(documents, start=1):
        try:
            events.append(_event_from(document, event_type, tenant_id))
        except SchemaError as error:
            where = f" (document {number} of {len(documents)})" if len(documents) > 1 else ""
            raise click.ClickException(f"not produced{where}: {error}") from error
    signers = _signers(settings, key_file, {event.tenant_id for event in events})
    expectations = _expectations(events) if wait else None
    endings = run_async(_publish(settings, events, signers, expectations, timeout_s))
    _fail_on_failures(endings)


def json_documents(text: str) -> list[str]:
    """One pretty-printed JSON document, or JSON lines (one document per non-blank line)."""
    stripped = text.strip()
    if stripped.startswith("{") and "\n{" not in stripped:
        return [stripped]
    return [line for line in text.splitlines() if line.strip()]


def event_from_body(event_type: str, body: str, tenant_id: str):
    """The event of ``event_type`` with ``body``'s fields, for ``tenant_id``; the envelope's ids and time filled in.

    Raises ``UnknownEventType`` naming the closest known types, ``MalformedEvent`` naming each bad field.
    """
    from schemas import EVENT_TYPES, parse_event
    from schemas.errors import MalformedEvent, UnknownEventType

    if event_type not in EVENT_TYPES:
        close = difflib.get_close_matches(event_type, EVENT_TYPES, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else f"known types: {', '.join(sorted(EVENT_TYPES))}"
        raise UnknownEventType(f"unknown event type {event_type!r}: {hint}")
    try:
        fields = json.loads(body)
    except json.JSONDecodeError as error:
        raise MalformedEvent(f"the body is not valid JSON: {error}") from error
    if not isinstance(fields, dict):
        raise MalformedEvent(f"the body must be a JSON object, not {type(fields).__name__}")
    for name, value in (("type", event_type), ("tenant_id", tenant_id)):
        if fields.get(name, value) != value:
            raise MalformedEvent(f"the body's {name} is {fields[name]!r}, not {value!r}")
    return parse_event(json.dumps({**fields, "type": event_type, "tenant_id": tenant_id}))


def _event_from(document: str, event_type: str | None, tenant_id: str | None):
    from schemas import parse_event
    from schemas.errors import MalformedEvent

    if event_type is not None:
        return event_from_body(event_type, document, tenant_id or "default")
    event = parse_event(document)
    if tenant_id is not None and event.tenant_id != tenant_id:
        raise MalformedEvent(f"{event.type} {event.event_id} is for tenant {event.tenant_id!r}, not {tenant_id!r}")
    return event


def _signers(settings: Settings, key_file: Path | None, tenant_ids: set[str]) -> dict:
    """Each tenant's signer, looked up before the broker is contacted, so a missing key costs no connection."""
    from infra.signing_keys import TenantKeyFiles
    from processors.trust.consent import private_key_from_raw
    from processors.trust.signing import EventSigner
    from voxflow.config import read_key_file
    from voxflow.errors import ClientConfigError

    if key_file is None:
        keys = TenantKeyFiles(settings.tenant_key_directory())
        return {tenant_id: keys.signer(tenant_id) for tenant_id in tenant_ids}
    if len(tenant_ids) > 1:
        raise click.ClickException(f"--key signs for one tenant; these events are for {', '.join(sorted(tenant_ids))}")
    try:
        signer = EventSigner(private_key_from_raw(read_key_file(key_file)))
    except ClientConfigError as error:
        raise click.ClickException(str(error)) from error
    return dict.fromkeys(tenant_ids, signer)


def _expectations(events: Sequence) -> list:
    """What ends each request, worked out before anything is sent; one tenant's, as one results feed reads."""
    from voxflow.results import expectation_for

    if len({event.tenant_id for event in events}) > 1:
        raise click.ClickException("--wait follows one tenant's results; these events are for several")
    try:
        return [expectation_for(event) for event in events]
    except ValueError as error:
        raise click.ClickException(f"--wait: {error}") from error


async def _publish(settings: Settings, events: Sequence, signers: dict, expectations: Sequence | None,
                   timeout_s: float) -> list:
    """Publish each event and print it; with ``expectations``, then wait for each ending and print that too."""
    from infra.kafka import KafkaProducer
    from streams.publisher import EventPublisher
    from voxflow.errors import VoxflowClientError

    async with contextlib.AsyncExitStack() as stack:
        producer = await stack.enter_async_context(KafkaProducer(settings.kafka_bootstrap,
                                                                 security=settings.broker_security()))
        try:
            feed = await _opened_results(stack, settings, events[0].tenant_id) if expectations else None
            publisher = EventPublisher(producer, lambda event: signers[event.tenant_id])
            for event in events:
                await publisher.publish(event)
                click.echo(event.model_dump_json())
            return [await _ending(feed, expected, event.type, timeout_s)
                    for event, expected in zip(events, expectations or ())]
        except VoxflowClientError as error:  # no results topic, a timeout, a request refused unread
            raise click.ClickException(str(error)) from error


async def _opened_results(stack: contextlib.AsyncExitStack, settings: Settings, tenant_id: str):
    """The tenant's results from their current end (opened before sending, so no ending can come first),
    kept only when signed by this deployment's worker key."""
    from infra.signing_keys import worker_signer
    from voxflow.config import DEFAULT_BROKER_TIMEOUT_S
    from voxflow.results import ResultFeed, consumer_for

    feed = ResultFeed(consumer_for(settings.kafka_bootstrap, broker_timeout_s=DEFAULT_BROKER_TIMEOUT_S,
                                   security=settings.broker_security()),
                      bootstrap=settings.kafka_bootstrap, tenant_id=tenant_id,
                      worker_public_key=worker_signer(settings).public_key, broker_timeout_s=DEFAULT_BROKER_TIMEOUT_S)
    await feed.start()
    stack.push_async_callback(feed.stop)
    return feed


async def _ending(feed, expected, title: str, timeout_s: float):
    from cli.progress import ProgressDisplay

    with ProgressDisplay(title) as progress:
        ending = await feed.wait(expected, timeout_s=timeout_s, on_progress=progress.on_event)
    click.echo(ending.model_dump_json())
    return ending


def _fail_on_failures(endings: Sequence) -> None:
    from voxflow.client import succeeded
    from voxflow.errors import RequestFailed

    failures = []
    for ending in endings:
        try:
            succeeded(ending)
        except RequestFailed as failure:
            failures.append(str(failure))
    if failures:
        raise click.ClickException("; ".join(failures))


def field_filter(ctx, param, values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` options as pairs; a usage error names the one without ``=``."""
    pairs = []
    for value in values:
        key, separator, expected = value.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE (e.g. voice=narrator-1)", ctx, param)
        pairs.append((key, expected))
    return tuple(pairs)


def event_matches(document: dict, type_patterns: Sequence[str], field_filters: Iterable[tuple[str, str]]) -> bool:
    """Whether the event's type matches any of the globs (if any) and every field filter holds.

    A filter's key names a field, or the field with `_id` after it (`voice` matches `voice_id`);
    values compare as text (numbers and booleans as JSON writes them).
    """
    event_type = document.get("type")
    if type_patterns and not (isinstance(event_type, str)
                              and any(fnmatch.fnmatchcase(event_type, pattern) for pattern in type_patterns)):
        return False
    return all(_field_text(document, key) == expected for key, expected in field_filters)


def _field_text(document: dict, key: str) -> str | None:
    for name in (key, f"{key}_id"):
        if name in document:
            value = document[name]
            return value if isinstance(value, str) else json.dumps(value)
    return None


def topic_named(name: str, existing: Iterable[str]) -> str:
    """The topic ``name`` means: itself, or voxflow's topic of that short name (`results`: voxflow.results)."""
    existing = set(existing)
    for candidate in (name, TOPIC_PREFIX + name):
        if candidate in existing:
            return candidate
    short_names = sorted(topic.removeprefix(TOPIC_PREFIX) for topic in existing if topic.startswith(TOPIC_PREFIX))
    raise click.ClickException(f"no topic {name!r} on the broker; voxflow's are: {', '.join(short_names) or 'none'} "
                               "(`voxflow topics --create` makes them)")


@main.command()
@click.argument("topic_names", nargs=-1, metavar="[TOPIC]...")
@click.option("--from-beginning", is_flag=True,
              help="Read each partition from its first event, and stop at the last unless --follow.")
@click.option("--follow", is_flag=True, help="With --from-beginning: keep waiting for new events (Ctrl-C stops).")
@click.option("--type", "type_patterns", multiple=True, metavar="T",
              help="Only events of type T (a glob: 'synthesis.*'); repeatable, any may match.")
@click.option("--filter", "field_filters", multiple=True, metavar="KEY=VALUE", callback=field_filter,
              help="Only events whose field KEY, or KEY_id, is VALUE (voice=ID matches voice_id); repeatable, all "
                   "must match.")
@click.option("--max", "max_events", type=click.IntRange(min=1), default=None, metavar="N",
              help="Stop after N events.")
@click.pass_obj
def consume(settings: Settings, topic_names: tuple[str, ...], from_beginning: bool, follow: bool,
            type_patterns: tuple[str, ...], field_filters: tuple[tuple[str, str], ...], max_events: int | None) -> None:
    """Print events from TOPICs (default: results) on stdout, one JSON event per line.

    As kafka-console-consumer does, it starts at the end of each partition and waits for new events
    until Ctrl-C; --from-beginning reads what is there and stops at its end. A TOPIC is a full name
    or voxflow's short one (results, deadletter, audit, …). Messages that are not JSON objects are
    skipped with a note on stderr. Exit status: 0 (Ctrl-C included), 1 for an unknown topic or a lost
    broker, 2 for a usage error.
    """
    try:
        run_async(_print_events(settings, topic_names or (DEFAULT_TOPIC,), from_beginning=from_beginning,
                                follow=follow or not from_beginning, type_patterns=type_patterns,
                                field_filters=field_filters, max_events=max_events))
    except KeyboardInterrupt:
        return  # Ctrl-C is how a followed read ends
    except BrokenPipeError:
        # the reader (`| head`) has gone: stop quietly, and keep Python from failing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


async def _print_events(settings: Settings, topic_names: Sequence[str], *, from_beginning: bool, follow: bool,
                        type_patterns: Sequence[str], field_filters: Sequence[tuple[str, str]],
                        max_events: int | None) -> None:
    from infra.kafka import list_topics, read_topics

    existing = await list_topics(settings.kafka_bootstrap, security=settings.broker_security())
    topics = list(dict.fromkeys(topic_named(name, existing) for name in topic_names))
    printed = 0
    async with contextlib.aclosing(read_topics(settings.kafka_bootstrap, topics, from_beginning=from_beginning,
                                               follow=follow, security=settings.broker_security())) as messages:
        async for topic, partition, offset, _key, value, _headers in messages:
            document = _json_object(value)
            if document is None:
                click.echo(f"skipped a message that is not a JSON object at {topic}/{partition}@{offset}", err=True)
                continue
            if event_matches(document, type_patterns, field_filters):
                click.echo(json.dumps(document, separators=(",", ":"), ensure_ascii=False))
                printed += 1
                if printed == max_events:
                    return


def _json_object(value: bytes | None) -> dict | None:
    try:
        document = json.loads(value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None
