"""voxflow event models (one pydantic model per event type) and their registry."""

from schemas.envelope import Event
from schemas.errors import EventTooLarge, MalformedEvent, SchemaError, UnknownEventType, UnsupportedSchemaVersion
from schemas.events import *  # noqa: F403 — the event classes are this package's public surface
from schemas.registry import EVENT_TYPES, export_json_schemas, parse_event
