"""Runs one stage's handler on one message with a declared fate for every failure.

- bad bytes, unknown type, newer schema, wrong topic → dead letter with the reason;
- already handled (inbox) → skipped;
- prerequisites missing → parked (the handler re-sends it later), not acknowledged as done;
- transient infrastructure errors → retried with backoff, then dead-lettered;
- any other error → dead-lettered with the error, and the worker keeps running.
Every outcome a stage decides is also recorded on the audit topic.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from infra.errors import DatabaseUnavailable, ObjectStoreUnavailable
from schemas import parse_event
from schemas.envelope import Event
from schemas.errors import SchemaError
from schemas.events import AuditRecorded, DeadLettered
from streams.context import StageContext
from streams.errors import WaitingForPrerequisites
from streams.stages import Stage, audit_decision

log = logging.getLogger("voxflow.stage")

TRANSIENT_ERRORS = (
    ObjectStoreUnavailable, DatabaseUnavailable, asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError, ConnectionError, TimeoutError,
)
_ENVELOPE_FIELDS = {"event_id", "type", "schema_version", "tenant_id", "voice_id", "correlation_id",
                    "causation_id", "occurred_at"}


class Publisher(Protocol):
    async def publish(self, event: Event) -> None: ...


@dataclass(frozen=True)
class MessageLocation:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class StageProcessor:
    def __init__(self, context: StageContext, publisher: Publisher, *, max_attempts: int = 4,
                 retry_base_delay_s: float = 0.5):
        self.context = context
        self.publisher = publisher
        self.max_attempts = max_attempts
        self.retry_base_delay_s = retry_base_delay_s

    async def process(self, stage: Stage, raw: bytes, location: MessageLocation) -> None:
        try:
            event = parse_event(raw)
        except SchemaError as error:
            await self._dead_letter(None, raw, location, reason=type(error).__name__, error=str(error))
            return
        handler = stage.handlers.get(type(event))
        if handler is None:
            await self._dead_letter(event, raw, location, reason="WrongTopic",
                                    error=f"{event.type} is not handled on {location.topic}")
            return
        if await self.context.repos.inbox.seen(consumer=stage.name, event_id=event.event_id):
            log.info("%s: %s %s already handled, skipped", location, event.type, event.event_id)
            return
        outcomes = await self._run(stage, handler, event, raw, location)
        if outcomes is None:
            return
        await self._publish_all(stage, outcomes)
        await self.context.repos.inbox.mark_processed(consumer=stage.name, event_id=event.event_id)
        log.info("%s: %s %s → %s", location, event.type, event.event_id,
                 ", ".join(o.type for o in outcomes) or "nothing")

    async def _run(self, stage: Stage, handler, event: Event, raw: bytes, location: MessageLocation):
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await handler(event, self.context)
            except WaitingForPrerequisites as waiting:
                log.info("%s: %s %s parked: %s", location, event.type, event.event_id, waiting)
                await self._publish_audit(stage.name, event, "waiting", {"reason": str(waiting)})
                return None
            except TRANSIENT_ERRORS as error:
                if attempt == self.max_attempts:
                    await self._dead_letter(event, raw, location, reason="GaveUpAfterRetries",
                                            error=f"{type(error).__name__}: {error} ({attempt} attempts)")
                    return None
                delay_s = self.retry_base_delay_s * 2 ** (attempt - 1)
                log.warning("%s: %s attempt %d failed (%s: %s); retrying in %.1f s", location, event.type,
                            attempt, type(error).__name__, error, delay_s)
                await asyncio.sleep(delay_s)
            except Exception as error:  # noqa: BLE001 — the declared fate of an unexpected error is the dead letter
                log.exception("%s: %s %s failed", location, event.type, event.event_id)
                await self._dead_letter(event, raw, location, reason="HandlerError",
                                        error=f"{type(error).__name__}: {error}")
                return None

    async def _publish_all(self, stage: Stage, outcomes: list[Event]) -> None:
        for outcome in outcomes:
            await self.publisher.publish(outcome)
            decision = audit_decision(outcome)
            if decision is not None:
                await self._publish_audit(stage.name, outcome, decision, _body(outcome))

    async def _publish_audit(self, stage_name: str, subject: Event, decision: str, detail: dict) -> None:
        record = subject.follow_up(
            AuditRecorded, discriminator=f"{decision}:{detail.get('reason', '')}", stage=stage_name,
            action=subject.type, decision=decision, subject_event_id=subject.event_id, detail=detail,
        )
        await self.publisher.publish(record)

    async def _dead_letter(self, event: Event | None, raw: bytes, location: MessageLocation, *,
                           reason: str, error: str) -> None:
        log.error("%s: dead-lettered (%s): %s", location, reason, error)
        fields = dict(original_topic=location.topic, partition=location.partition, offset=location.offset,
                      reason=reason, error=error, payload_text=raw.decode("utf-8", errors="replace"))
        if event is not None:
            dead = event.follow_up(DeadLettered, discriminator=location.topic, **fields)
        else:
            dead = DeadLettered(tenant_id="unknown", voice_id="unknown", **fields)
        await self.publisher.publish(dead)
        detail = {k: v for k, v in _body(dead).items() if k != "payload_text"}
        await self._publish_audit("dead_letter", dead, "rejected", detail)


def _body(event: Event) -> dict:
    return event.model_dump(mode="json", exclude=_ENVELOPE_FIELDS)
