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

A stage with a ``batch_size`` (the control stages: consent, audit, anomaly) takes up to that many
messages at once (``process_batch``): the same fates per message, one inbox query, one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
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
from streams.outages import OutageLog
from streams.stages import BatchHandler, Handler, Stage, audit_decision

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
class StageMessage:
    value: bytes
    location: MessageLocation
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class _Admitted:
    """A message that passed parsing, authentication and the topic check, with the handler of its event."""

    event: Event
    handler: Handler
    message: StageMessage


@dataclass
class _BatchFates:
    handled: list[tuple[_Admitted, list[Event]]] = dataclasses.field(default_factory=list)
    parked: list[tuple[_Admitted, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[_Admitted, str]] = dataclasses.field(default_factory=list)


@dataclass
class _DecidedBatch:
    """A batch's fates once its transaction committed: a retry after a failed send re-sends them (as ``_Decided``)."""

    fates: _BatchFates | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How long a step that fails on unavailable infrastructure is retried, and how fast."""

    transient_retry_s: float = 120.0  # outlasts a database or store restart (20 s measured) with room to spare
    base_delay_s: float = 0.5
    max_delay_s: float = 5.0

    def delay_s(self, attempt: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))


class _FailedAlone(Exception):
    """An event of a batch handled without savepoints failed on its own: the batch's transaction is undone."""


@dataclass
class _Decided:
    """A handler's outcomes, kept across the retries of one message once the handler returned them.

    Its writes stand by then, so asked again it may find its work done and return nothing (a recorded
    chunk did): a retry after a failed send re-sends these instead (measured: a synthesis whose
    ``synthesis.produced`` send failed once during the store outage never ended).
    """

    outcomes: list[Event] | None = None


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
        self.outages = OutageLog()

    async def process(self, stage: Stage, raw: bytes, location: MessageLocation,
                      headers: Iterable[tuple[str, bytes]] = ()) -> None:
        admitted = await self._admit(stage, StageMessage(raw, location, tuple(headers)))
        if admitted is not None:
            await self._process_admitted(stage, admitted)

    async def _admit(self, stage: Stage, message: StageMessage) -> _Admitted | None:
        """The message's event and handler; None once it is dead-lettered (unparseable, unauthenticated, wrong topic)."""
        raw, location = message.value, message.location
        try:
            event = parse_event(raw)
        except SchemaError as error:
            self.metrics.event_in(location.topic, None)
            await self._dead_letter(None, raw, location, reason=type(error).__name__, error=str(error))
            return None
        self.metrics.event_in(location.topic, event.type)
        if not await self._authenticated(event, raw, location, list(message.headers)):
            return None
        handler = stage.handlers.get(type(event))
        if handler is None:
            await self._dead_letter(event, raw, location, reason="WrongTopic",
                                    error=f"{event.type} is not handled on {location.topic}")
            return None
        return _Admitted(event, handler, message)

    async def _process_admitted(self, stage: Stage, admitted: _Admitted) -> None:
        event, raw, location = admitted.event, admitted.message.value, admitted.message.location
        decided = _Decided()
        try:
            with self.metrics.working(stage.name):
                await self._retrying(location, event.type, lambda: self.metrics.timed(
                    stage.name, event.type, self._handle(stage, admitted.handler, event, location, decided)))
        except _GaveUp as gave_up:
            await self._give_up(stage, event, raw, location, reason="GaveUpAfterRetries", error=str(gave_up))
        except Exception as error:  # noqa: BLE001 — the declared fate of an unexpected error is the dead letter
            log.exception("%s: %s %s failed", location, event.type, event.event_id)
            await self._give_up(stage, event, raw, location, reason="HandlerError",
                                error=f"{type(error).__name__}: {error}")

    async def process_batch(self, stage: Stage, messages: list[StageMessage]) -> None:
        """Process one take from the stream as one step, each message ending as ``process`` would end it.

        One inbox query for the batch; the handlers' writes in one unit of work (redone with a savepoint
        per event once one fails on its own, so that only its writes are undone and it alone is
        dead-lettered while the others proceed); then every outcome published, the acknowledgements
        awaited together, and one query marking the batch done. A transient failure retries the whole step.
        """
        admitted = [a for a in [await self._admit(stage, m) for m in messages] if a is not None]
        if not admitted:
            return
        location, decided = admitted[0].message.location, _DecidedBatch()
        try:
            with self.metrics.working(stage.name):
                failed = await self._retrying(location, f"batch of {len(admitted)}", lambda: self.metrics.timed(
                    stage.name, "batch", self._handle_batch(stage, admitted, decided)))
        except _GaveUp as gave_up:
            for item in admitted:
                await self._give_up(stage, item.event, item.message.value, item.message.location,
                                    reason="GaveUpAfterRetries", error=str(gave_up))
            return
        except Exception:  # noqa: BLE001 — outside the handlers (a refused outcome, say): each event finds its own fate
            log.exception("%s: a batch of %d failed; its events are processed one by one", location, len(admitted))
            for item in admitted:
                await self._process_admitted(stage, item)
            return
        for item, error in failed:
            await self._give_up(stage, item.event, item.message.value, item.message.location,
                                reason="HandlerError", error=error)

    async def _handle_batch(self, stage: Stage, admitted: list[_Admitted],
                            decided: _DecidedBatch) -> list[tuple[_Admitted, str]]:
        """One attempt at a batch; returns the events that failed on their own, with their errors."""
        inbox = self.context.repos.inbox
        if decided.fates is None:
            seen = await inbox.seen_among(consumer=stage.name, event_ids=[item.event.event_id for item in admitted])
            fresh = _once_each(admitted, seen)
            try:
                decided.fates = await self._fates_in_one_transaction(stage, fresh, isolated=False)
            except _FailedAlone:
                # a savepoint per event costs two round trips: paid only once an event of the batch failed alone
                decided.fates = await self._fates_in_one_transaction(stage, fresh, isolated=True)
        fates = decided.fates
        await asyncio.gather(*(self._publish_all(stage.name, outcomes) for _, outcomes in fates.handled))
        for item, waiting in fates.parked:
            await self._publish_audit(stage.name, item.event, "waiting", {"reason": waiting})
        await inbox.mark_all_processed(consumer=stage.name, event_ids=[item.event.event_id for item, _ in fates.handled])
        log.info("%s: batch of %d up to offset %d: %d handled, %d already handled, %d parked, %d failed",
                 admitted[0].message.location, len(admitted), admitted[-1].message.location.offset, len(fates.handled),
                 len(admitted) - len(fates.handled) - len(fates.parked) - len(fates.failed), len(fates.parked),
                 len(fates.failed))
        return fates.failed

    async def _fates_in_one_transaction(self, stage: Stage, fresh: list[_Admitted], *, isolated: bool) -> _BatchFates:
        """``isolated``: each event in a savepoint, its writes undone alone if it fails; otherwise its failure
        raises ``_FailedAlone``, undoing the whole transaction."""
        async with self.context.repos.transaction() as repos:
            return await self._batch_fates(stage, fresh, dataclasses.replace(self.context, repos=repos), isolated)

    async def _batch_fates(self, stage: Stage, fresh: list[_Admitted], context: StageContext,
                           isolated: bool) -> _BatchFates:
        """Runs of one event type go to the stage's batch handler for the type, the other events one by one."""
        fates = _BatchFates()
        for _, grouped in itertools.groupby(fresh, key=lambda item: type(item.event)):
            run = list(grouped)
            batch_handler = stage.batch_handlers.get(type(run[0].event))
            if batch_handler is not None and len(run) > 1 and await self._none_blocked(run):
                if await self._handled_together(batch_handler, run, context, fates):
                    continue
            for item in run:
                await self._handle_one_of_batch(stage, item, context, fates, isolated)
        return fates

    async def _none_blocked(self, run: list[_Admitted]) -> bool:
        if self.blocks is None:
            return True
        return all([await self.blocks.block_on(item.event) is None for item in run])

    async def _handled_together(self, batch_handler: BatchHandler, run: list[_Admitted], context: StageContext,
                                fates: _BatchFates) -> bool:
        """Whether the batch handler took the run; False, its writes rolled back, when it failed on one of them."""
        try:
            async with context.repos.transaction() as repos:
                outcomes = await batch_handler([item.event for item in run], dataclasses.replace(context, repos=repos))
        except TRANSIENT_ERRORS:
            raise
        except Exception:  # noqa: BLE001 — one bad event fails the run: each event then finds its own fate
            log.warning("%s: a run of %d %s failed together; handled one by one", run[0].message.location, len(run),
                        run[0].event.type, exc_info=True)
            return False
        fates.handled.extend(zip(run, outcomes))
        return True

    async def _handle_one_of_batch(self, stage: Stage, item: _Admitted, context: StageContext, fates: _BatchFates,
                                   isolated: bool) -> None:
        try:
            async with context.repos.transaction() if isolated else contextlib.nullcontext(context.repos) as repos:
                try:
                    outcomes = await self._outcomes(stage, item.handler, item.event,
                                                    dataclasses.replace(context, repos=repos))
                except WaitingForPrerequisites as waiting:  # what it wrote before parking stands, as when alone
                    fates.parked.append((item, str(waiting)))
                    return
            fates.handled.append((item, outcomes))
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:  # noqa: BLE001 — the declared fate of an unexpected error is the dead letter
            if not isolated:
                raise _FailedAlone() from error
            log.exception("%s: %s %s failed", item.message.location, item.event.type, item.event.event_id)
            fates.failed.append((item, f"{type(error).__name__}: {error}"))

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

    async def _handle(self, stage: Stage, handler: Handler, event: Event, location: MessageLocation,
                      decided: _Decided) -> None:
        inbox = self.context.repos.inbox
        if await inbox.seen(consumer=stage.name, event_id=event.event_id):
            log.info("%s: %s %s already handled, skipped", location, event.type, event.event_id)
            return
        if decided.outcomes is None:
            try:
                decided.outcomes = await self._outcomes(stage, handler, event, self.context)
            except WaitingForPrerequisites as waiting:
                log.info("%s: %s %s parked: %s", location, event.type, event.event_id, waiting)
                await self._publish_audit(stage.name, event, "waiting", {"reason": str(waiting)})
                return
        outcomes = decided.outcomes
        await self._publish_all(stage.name, outcomes)
        await inbox.mark_processed(consumer=stage.name, event_id=event.event_id)
        log.info("%s: %s %s → %s", location, event.type, event.event_id,
                 ", ".join(o.type for o in outcomes) or "nothing")

    async def _outcomes(self, stage: Stage, handler: Handler, event: Event, context: StageContext) -> list[Event]:
        """The handler's outcomes, or the request's refusal when its tenant or voice is blocked."""
        block = None if self.blocks is None else await self.blocks.block_on(event)
        if block is None:
            return await handler(event, context)
        await self._publish_audit(stage.name, event, "blocked", block_audit_detail(block))
        return await refusal_of(event, context, block)

    async def _retrying(self, location: MessageLocation, what: str, step: Callable[[], Awaitable[T]],
                        *, forever: bool = False) -> T:
        """``step()``, again after each transient failure until the policy's time is up (never, if ``forever``)."""
        started, attempt, failed_on = time.monotonic(), 0, set()
        while True:
            attempt += 1
            try:
                result = await step()
            except TRANSIENT_ERRORS as error:
                failed_on.add(self.outages.failing(error))
                if not forever and time.monotonic() - started >= self.policy.transient_retry_s:
                    raise _GaveUp(error, attempt) from error
                self.metrics.retry(location.topic, error)
                delay_s = self.policy.delay_s(attempt)
                if attempt == 1 or delay_s < self.policy.max_delay_s or attempt % 12 == 0:
                    log.warning("%s: %s attempt %d failed (%s: %s); retrying in %.1f s", location, what, attempt,
                                type(error).__name__, error, delay_s)
                await asyncio.sleep(delay_s)
                continue
            for dependency in failed_on - {None}:
                self.outages.answering(dependency)
            return result

    async def _give_up(self, stage: Stage, event: Event, raw: bytes, location: MessageLocation, *,
                       reason: str, error: str) -> None:
        await self._dead_letter(event, raw, location, reason=reason, error=error)
        end_request = stage.failure_handlers.get(type(event))
        if end_request is None:
            return
        why = f"{event.type} could not be processed ({reason}): {error}"[:DEAD_LETTER_ERROR_CHARS]
        decided = _Decided()

        async def fail_request() -> None:
            if decided.outcomes is None:  # asked again, it finds the request ended and returns nothing
                decided.outcomes = await end_request(event, self.context, why)
            await self._publish_all(stage.name, decided.outcomes)

        try:
            # like the dead letter, the request's failure holds the partition until it is sent
            await self._retrying(location, f"failing the request of {event.type}", fail_request, forever=True)
        except Exception:  # noqa: BLE001 — the dead letter already holds the event; say why the request stays open
            log.exception("%s: could not fail the request of %s %s", location, event.type, event.event_id)

    async def publish_outcomes(self, stage_name: str, outcomes: list[Event]) -> None:
        """Publish what a stage decided outside a message (a deadline passing, say), with its audit records."""
        await self._publish_all(stage_name, outcomes)

    async def _publish_all(self, stage_name: str, outcomes: list[Event]) -> None:
        """Every outcome and its audit record, sent at once: each send awaited before the next cost a broker
        round trip of its own (about 50 ms on the embedded broker). The producer keeps the order they are
        handed over in per partition; the step ends only once all are acknowledged, and a failed send fails
        it, to be retried whole (the ids are derived, so consumers skip what was sent twice)."""
        sends = []
        for outcome in outcomes:
            sends.append(self._publish_outcome(outcome))
            decision = audit_decision(outcome)
            if decision is not None:
                sends.append(self._publish_audit(stage_name, outcome, decision, _body(outcome)))
        await asyncio.gather(*sends)

    async def _publish_outcome(self, outcome: Event) -> None:
        await self.publisher.publish(outcome)
        self.metrics.event_out(outcome)

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


def _once_each(admitted: list[_Admitted], seen: set) -> list[_Admitted]:
    """The batch without the events the inbox has seen, and each event once (a producer's retry may repeat it)."""
    fresh, taken = [], set(seen)
    for item in admitted:
        if item.event.event_id not in taken:
            taken.add(item.event.event_id)
            fresh.append(item)
    return fresh


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
