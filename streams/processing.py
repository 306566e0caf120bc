"""Runs one stage's processing of one message under a declared fate for every failure.

The whole of it — the inbox check, the handler, publishing the outcomes, marking the event done —
runs under one policy:

- bad bytes, too large or too deep, unknown type, newer schema, wrong topic → dead letter with the reason;
- unsigned, forged, or signed by a producer not allowed to send it → dead letter (``Unauthenticated``),
  and its request is left alone: a forged event must not end someone else's request;
- already handled (inbox) → skipped;
- prerequisites missing → parked (the handler re-sends it later), not acknowledged as done;
- its tenant or voice blocked (``streams.blocks``) → its request's refusal instead of the handler,
  audited as "blocked";
- database, object store or broker unavailable → the whole step retried with capped backoff for
  ``transient_retry_s``, then dead-lettered; a stage can only move on once its dead letter is sent,
  so an outage too long even for that holds the partition instead of losing the message;
- any other error → dead-lettered with the error, and the worker keeps running.

An event that belongs to a request (a synthesis, an adaptation) and is dead-lettered also ends that
request: the stage's failure handler records it failed and publishes its failed event, so no caller
waits forever. Every outcome a stage decides is also recorded on the audit topic.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import asyncpg

from infra.errors import BrokerUnavailable, DatabaseUnavailable, ObjectStoreUnavailable
from schemas import parse_event
from schemas.envelope import Event
from schemas.errors import SchemaError
from schemas.events import AuditRecorded, DeadLettered
from streams.blocks import BlockGate, block_audit_detail, refusal_of
from streams.context import StageContext
from streams.errors import Unauthenticated, WaitingForPrerequisites
from streams.metrics import WorkerMetrics
from streams.stages import Handler, Stage, audit_decision

log = logging.getLogger("voxflow.stage")

TRANSIENT_ERRORS = (
    ObjectStoreUnavailable, DatabaseUnavailable, BrokerUnavailable, asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError, asyncpg.CannotConnectNowError, ConnectionError, TimeoutError,
    # what a pooled connection raises when the server went away under it ("cannot switch to state …;
    # another operation is in progress"): measured during the 20 s Postgres outage of tests/faults
    asyncpg.InternalClientError,
)
DEAD_LETTER_PAYLOAD_CHARS = 64_000  # the dead letter stays far below the producer's 1 MB message limit
DEAD_LETTER_ERROR_CHARS = 2_000
_ENVELOPE_FIELDS = {"event_id", "type", "schema_version", "tenant_id", "voice_id", "correlation_id",
                    "causation_id", "occurred_at"}
T = TypeVar("T")


class Publisher(Protocol):
    async def publish(self, event: Event) -> None: ...


class Authenticator(Protocol):
    async def authenticate(self, event: Event, value: bytes, headers: Iterable[tuple[str, bytes]]) -> None: ...


@dataclass(frozen=True)
class MessageLocation:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class RetryPolicy:
    """How long a step that fails on unavailable infrastructure is retried, and how fast."""

    transient_retry_s: float = 120.0  # outlasts a database or store restart (20 s measured) with room to spare
    base_delay_s: float = 0.5
    max_delay_s: float = 5.0

    def delay_s(self, attempt: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))


class _GaveUp(Exception):
    def __init__(self, error: BaseException, attempts: int):
        super().__init__(f"{type(error).__name__}: {error} ({attempts} attempts)")


class StageProcessor:
    def __init__(self, context: StageContext, publisher: Publisher, authenticator: Authenticator, *,
                 policy: RetryPolicy = RetryPolicy(), metrics: WorkerMetrics | None = None,
                 blocks: BlockGate | None = None):
        self.context = context
        self.publisher = publisher
        self.authenticator = authenticator
        self.blocks = blocks  # None: no block is consulted (tests of the other fates)
        self.policy = policy
        self.metrics = metrics if metrics is not None else WorkerMetrics()

    async def process(self, stage: Stage, raw: bytes, location: MessageLocation,
                      headers: Iterable[tuple[str, bytes]] = ()) -> None:
        try:
            event = parse_event(raw)
        except SchemaError as error:
            self.metrics.event_in(location.topic, None)
            await self._dead_letter(None, raw, location, reason=type(error).__name__, error=str(error))
            return
        self.metrics.event_in(location.topic, event.type)
        if not await self._authenticated(event, raw, location, list(headers)):
            return
        handler = stage.handlers.get(type(event))
        if handler is None:
            await self._dead_letter(event, raw, location, reason="WrongTopic",
                                    error=f"{event.type} is not handled on {location.topic}")
            return
        try:
            with self.metrics.working(stage.name):
                await self._retrying(location, event.type, lambda: self.metrics.timed(
                    stage.name, event.type, self._handle(stage, handler, event, location)))
        except _GaveUp as gave_up:
            await self._give_up(stage, event, raw, location, reason="GaveUpAfterRetries", error=str(gave_up))
        except Exception as error:  # noqa: BLE001 — the declared fate of an unexpected error is the dead letter
            log.exception("%s: %s %s failed", location, event.type, event.event_id)
            await self._give_up(stage, event, raw, location, reason="HandlerError",
                                error=f"{type(error).__name__}: {error}")

    async def _authenticated(self, event: Event, raw: bytes, location: MessageLocation, headers) -> bool:
        try:
            await self._retrying(location, f"authenticating {event.type}",
                                 lambda: self.authenticator.authenticate(event, raw, headers))
        except (Unauthenticated, _GaveUp) as refused:
            reason = "Unauthenticated" if isinstance(refused, Unauthenticated) else "GaveUpAfterRetries"
            await self._dead_letter(event, raw, location, reason=reason, error=str(refused))
            return False
        except Exception as error:  # noqa: BLE001 — an unexpected error here is still a fate, not a crashed stage
            log.exception("%s: authenticating %s %s failed", location, event.type, event.event_id)
            await self._dead_letter(event, raw, location, reason="HandlerError", error=f"{type(error).__name__}: {error}")
            return False
        return True

    async def _handle(self, stage: Stage, handler: Handler, event: Event, location: MessageLocation) -> None:
        inbox = self.context.repos.inbox
        if await inbox.seen(consumer=stage.name, event_id=event.event_id):
            log.info("%s: %s %s already handled, skipped", location, event.type, event.event_id)
            return
        try:
            outcomes = await self._outcomes(stage, handler, event)
        except WaitingForPrerequisites as waiting:
            log.info("%s: %s %s parked: %s", location, event.type, event.event_id, waiting)
            await self._publish_audit(stage.name, event, "waiting", {"reason": str(waiting)})
            return
        await self._publish_all(stage.name, outcomes)
        await inbox.mark_processed(consumer=stage.name, event_id=event.event_id)
        log.info("%s: %s %s → %s", location, event.type, event.event_id,
                 ", ".join(o.type for o in outcomes) or "nothing")

    async def _outcomes(self, stage: Stage, handler: Handler, event: Event) -> list[Event]:
        """The handler's outcomes, or the request's refusal when its tenant or voice is blocked."""
        block = None if self.blocks is None else await self.blocks.block_on(event)
        if block is None:
            return await handler(event, self.context)
        await self._publish_audit(stage.name, event, "blocked", block_audit_detail(block))
        return await refusal_of(event, self.context, block)

    async def _retrying(self, location: MessageLocation, what: str, step: Callable[[], Awaitable[T]],
                        *, forever: bool = False) -> T:
        """``step()``, again after each transient failure until the policy's time is up (never, if ``forever``)."""
        started, attempt = time.monotonic(), 0
        while True:
            attempt += 1
            try:
                return await step()
            except TRANSIENT_ERRORS as error:
                if not forever and time.monotonic() - started >= self.policy.transient_retry_s:
                    raise _GaveUp(error, attempt) from error
                self.metrics.retry(location.topic, error)
                delay_s = self.policy.delay_s(attempt)
                if attempt == 1 or delay_s < self.policy.max_delay_s or attempt % 12 == 0:
                    log.warning("%s: %s attempt %d failed (%s: %s); retrying in %.1f s", location, what, attempt,
                                type(error).__name__, error, delay_s)
                await asyncio.sleep(delay_s)

    async def _give_up(self, stage: Stage, event: Event, raw: bytes, location: MessageLocation, *,
                       reason: str, error: str) -> None:
        await self._dead_letter(event, raw, location, reason=reason, error=error)
        end_request = stage.failure_handlers.get(type(event))
        if end_request is None:
            return
        why = f"{event.type} could not be processed ({reason}): {error}"[:DEAD_LETTER_ERROR_CHARS]

        async def fail_request() -> None:
            await self._publish_all(stage.name, await end_request(event, self.context, why))

        try:
            await self._retrying(location, f"failing the request of {event.type}", fail_request)
        except Exception:  # noqa: BLE001 — the dead letter already holds the event; say why the request stays open
            log.exception("%s: could not fail the request of %s %s", location, event.type, event.event_id)

    async def publish_outcomes(self, stage_name: str, outcomes: list[Event]) -> None:
        """Publish what a stage decided outside a message (a deadline passing, say), with its audit records."""
        await self._publish_all(stage_name, outcomes)

    async def _publish_all(self, stage_name: str, outcomes: list[Event]) -> None:
        for outcome in outcomes:
            await self.publisher.publish(outcome)
            self.metrics.event_out(outcome)
            decision = audit_decision(outcome)
            if decision is not None:
                await self._publish_audit(stage_name, outcome, decision, _body(outcome))

    async def _publish_audit(self, stage_name: str, subject: Event, decision: str, detail: dict) -> None:
        record = subject.follow_up(
            AuditRecorded, discriminator=f"{decision}:{detail.get('reason', '')}", stage=stage_name,
            action=subject.type, decision=decision, subject_event_id=subject.event_id, detail=detail,
        )
        await self.publish_audit(record)

    async def publish_audit(self, record: AuditRecorded) -> None:
        """Publish an audit record of a decision taken outside any event (an offset reset, say)."""
        await self.publisher.publish(record)
        self.metrics.event_out(record)

    async def _dead_letter(self, event: Event | None, raw: bytes, location: MessageLocation, *,
                           reason: str, error: str) -> None:
        log.error("%s: dead-lettered (%s): %s", location, reason, error[:DEAD_LETTER_ERROR_CHARS])
        self.metrics.dead_letter(reason)
        dead = _dead_letter_event(event, raw, location, reason, error)
        detail = {k: v for k, v in _body(dead).items() if k != "payload_text"}

        async def send() -> None:
            await self.publisher.publish(dead)
            self.metrics.event_out(dead)
            await self._publish_audit("dead_letter", dead, "rejected", detail)

        try:
            await self._retrying(location, "dead letter", send, forever=True)
        except Exception:  # noqa: BLE001 — truncated to fit, a dead letter is only refused by a broker fault
            log.critical("%s: the dead letter could not be sent; the message is only in this log", location,
                         exc_info=True)


def _dead_letter_event(event: Event | None, raw: bytes, location: MessageLocation, reason: str,
                       error: str) -> DeadLettered:
    text = raw.decode("utf-8", errors="replace")
    fields = dict(
        original_topic=location.topic, partition=location.partition, offset=location.offset, reason=reason,
        error=error[:DEAD_LETTER_ERROR_CHARS], payload_text=text[:DEAD_LETTER_PAYLOAD_CHARS],
        payload_bytes=len(raw), payload_sha256=hashlib.sha256(raw).hexdigest(),
        payload_truncated=len(text) > DEAD_LETTER_PAYLOAD_CHARS,
    )
    if event is not None:
        return event.follow_up(DeadLettered, discriminator=location.topic, **fields)
    return DeadLettered(tenant_id="unknown", voice_id="unknown", **fields)


def _body(event: Event) -> dict:
    return event.model_dump(mode="json", exclude=_ENVELOPE_FIELDS)
