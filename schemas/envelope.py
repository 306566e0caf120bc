"""The envelope every voxflow event shares.

Every event on every topic is one JSON object with these fields plus its own. Producers in other
languages validate against the JSON Schema that `voxflow schemas export DIR` writes.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import ClassVar, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


E = TypeVar("E", bound="Event")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Event(BaseModel):
    """Fields common to all events; subclasses fix `type` and `schema_version`.

    `voice_id` is the Kafka message key, so one voice's events stay ordered within a topic.
    `correlation_id` ties every event of one user journey together (upload → … → completed);
    `causation_id` names the event that directly caused this one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    latest_schema_version: ClassVar[int] = 1

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = 1
    tenant_id: str = Field(min_length=1, max_length=128)
    voice_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    correlation_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    causation_id: uuid.UUID | None = None
    occurred_at: AwareDatetime = Field(default_factory=utc_now)

    def follow_up(self, event_class: type[E], *, discriminator: str = "", **fields) -> E:
        """A new event caused by this one: same tenant, voice and correlation.

        Its id derives from this event's id, so a redelivered event produces the same follow-ups
        and downstream inboxes skip the duplicates.
        """
        event_type = event_class.model_fields["type"].default
        return event_class(
            event_id=uuid.uuid5(self.event_id, f"{event_type}:{discriminator}"),
            tenant_id=self.tenant_id,
            voice_id=self.voice_id,
            correlation_id=self.correlation_id,
            causation_id=self.event_id,
            **fields,
        )

    def request_follow_up(self, event_class: type[E], request_id: uuid.UUID, *, discriminator: str = "",
                          **fields) -> E:
        """A follow-up that a request has once, whichever of its events causes it: its id derives from the
        request's id, so a second cause (another chunk's redelivery, say) sends the same event again."""
        event_type = event_class.model_fields["type"].default
        return event_class(
            event_id=uuid.uuid5(request_id, f"{event_type}:{discriminator}"),
            tenant_id=self.tenant_id,
            voice_id=self.voice_id,
            correlation_id=self.correlation_id,
            causation_id=self.event_id,
            **fields,
        )

    def key(self) -> bytes:
        return self.voice_id.encode()

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
