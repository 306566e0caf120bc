"""Event type registry: bytes → typed event, and JSON Schema export for other languages."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from schemas import events
from schemas.envelope import Event
from schemas.errors import EventTooLarge, MalformedEvent, UnknownEventType, UnsupportedSchemaVersion

EVENT_CLASSES: tuple[type[Event], ...] = tuple(
    cls for cls in vars(events).values()
    if isinstance(cls, type) and issubclass(cls, Event) and cls is not Event
)
EVENT_TYPES: dict[str, type[Event]] = {cls.model_fields["type"].default: cls for cls in EVENT_CLASSES}
MAX_EVENT_BYTES = 1_000_000  # the producers' message limit; audio travels by claim check, never inline
MAX_JSON_DEPTH = 16  # the deepest event (a synthesis request's controls) nests 3 levels


def parse_event(raw: bytes | str) -> Event:
    """Decode and validate one event, raising a SchemaError subclass with a readable reason.

    Size is checked before parsing, nesting right after; ``type`` must be a string and
    ``schema_version`` a whole number (not ``"2"`` or ``2.0``).
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise EventTooLarge(f"{len(raw)} bytes is over the {MAX_EVENT_BYTES}-byte event limit")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedEvent(f"not valid JSON: {error}") from error
    except RecursionError as error:
        raise MalformedEvent(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from error
    if not isinstance(document, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(document).__name__}")
    if _depth(document) > MAX_JSON_DEPTH:
        raise MalformedEvent(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    event_type = document.get("type")
    if not isinstance(event_type, str):
        raise MalformedEvent(f"`type` must be a string, got {type(event_type).__name__}")
    event_class = EVENT_TYPES.get(event_type)
    if event_class is None:
        raise UnknownEventType(f"unknown event type {event_type[:100]!r}")
    version = document.get("schema_version", 1)
    if type(version) is not int:
        raise MalformedEvent(f"`schema_version` must be a whole number, got {version!r:.40}")
    if version > event_class.latest_schema_version:
        raise UnsupportedSchemaVersion(
            f"{event_class.__name__} schema version {version} is newer than this worker reads "
            f"(up to {event_class.latest_schema_version})"
        )
    try:
        return event_class.model_validate(document)
    except ValidationError as error:
        raise MalformedEvent(_summarise(error)) from error


def _depth(document: object) -> int:
    """How deeply lists and objects nest in a decoded JSON document (a scalar is 0), without recursion."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, level = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH:
            pending.extend((child, level + 1) for child in children)
    return deepest


def _summarise(error: ValidationError) -> str:
    problems = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in error.errors()[:5]]
    return "invalid event: " + "; ".join(problems)


def export_json_schemas(directory: Path) -> list[Path]:
    """Write one JSON Schema file per event type (`<type>.v<version>.schema.json`) plus an index."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    index = {}
    for event_type, event_class in sorted(EVENT_TYPES.items()):
        schema = event_class.model_json_schema()
        schema["$id"] = f"https://voxflow.dev/schemas/{event_type}.v{event_class.latest_schema_version}.json"
        schema["description"] = (event_class.__doc__ or event_type).strip()
        filename = f"{event_type}.v{event_class.latest_schema_version}.schema.json"
        path = directory / filename
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
        index[event_type] = {"schema": filename, "version": event_class.latest_schema_version}
    index_path = directory / "index.json"
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return [*written, index_path]
