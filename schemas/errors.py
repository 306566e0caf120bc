class SchemaError(Exception):
    """An event could not be read as any known voxflow event."""


class MalformedEvent(SchemaError):
    """The bytes are not a JSON object, or the object breaks its event type's schema."""


class EventTooLarge(MalformedEvent):
    """The message is larger than any voxflow event may be; it was not parsed."""


class UnknownEventType(SchemaError):
    """The `type` field names no event type this worker knows."""


class UnsupportedSchemaVersion(SchemaError):
    """The event was written with a newer schema version than this worker reads."""
