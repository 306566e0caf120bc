"""Event type registry: bytes → typed event, and JSON Schema export for other languages."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from schemas import events
from schemas.envelope import Event
from schemas.errors import MalformedEvent, UnknownEventType, UnsupportedSchemaVersion

EVENT_CLASSES: tuple[type[Event], ...] = tuple(
    cls for cls in vars(events).values()
    if isinstance(cls, type) and issubclass(cls, Event) and cls is not Event
)
EVENT_TYPES: dict[str, type[Event]] = {cls.model_fields["type"].default: cls for cls in EVENT_CLASSES}


def parse_event(raw: bytes | str) -> Event:
    """Decode and validate one event, raising a SchemaError subclass with a readable reason."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedEvent(f"not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(document).__name__}")
    event_class = EVENT_TYPES.get(document.get("type"))
    if event_class is None:
        raise UnknownEventType(f"unknown event type {document.get('type')!r}")
    version = document.get("schema_version", 1)
    if isinstance(version, int) and version > event_class.latest_schema_version:
        raise UnsupportedSchemaVersion(
            f"{event_class.__name__} schema version {version} is newer than this worker reads "
            f"(up to {event_class.latest_schema_version})"
        )
    try:
        return event_class.model_validate(document)
    except ValidationError as error:
        raise MalformedEvent(_summarise(error)) from error


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
