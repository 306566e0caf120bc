"""Waiting for the events that end a request: which ones they are, and a feed reading them off the results topic."""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.errors import EventSignatureError
from processors.trust.signing import message_signature, verify_message
from schemas import parse_event
from schemas.envelope import Event
from schemas.errors import SchemaError
from schemas.events import (AdaptationRequested, AnalysisRequested, ConsentGranted, ConsentRevoked, DeadLettered,
                            DubRequested, ErasureRequested, SampleUploaded, SynthesisRequested)
from voxflow.broker_login import ANONYMOUS, BrokerSecurity
from voxflow.envelopes import DEAD_LETTER_TOPIC, RESULTS_TOPIC
from voxflow.errors import BrokerUnreachable, RequestDeadLettered, ResultTimeout

log = logging.getLogger("voxflow.client")

MAX_BUFFERED_EVENTS = 10_000  # the tenant's latest results kept for waits to come; older ones drop out
FETCH_WAIT_MS = 200
ProgressCallback = Callable[[Event], None]

# The id a request's outcomes repeat, and the types that end it.
_ENDINGS: dict[type[Event], tuple[str, frozenset[str]]] = {
    SampleUploaded: ("sample_id", frozenset({"sample.accepted", "sample.rejected"})),
    ConsentGranted: ("consent_id", frozenset({"consent.verified", "consent.rejected"})),
    AdaptationRequested: ("adaptation_id", frozenset({"voice.ready", "adaptation.failed"})),
    SynthesisRequested: ("synthesis_id", frozenset({"synthesis.completed", "synthesis.failed"})),
    ErasureRequested: ("erasure_id", frozenset({"erasure.completed", "erasure.failed"})),
    DubRequested: ("dub_id", frozenset({"dub.completed", "dub.failed"})),
    AnalysisRequested: ("analysis_id", frozenset({"analysis.completed", "analysis.failed"})),
}
_REVOCATION_ENDINGS = frozenset({"consent.revocation_applied", "consent.rejected"})


def is_progress(event: Event) -> bool:
    """Work under way, not an ending: ``*.progress`` (a refined voice's fit) and a synthesis's ready chunks."""
    return event.type.endswith(".progress") or event.type == "synthesis.chunk_ready"


@dataclass(frozen=True)
class Expectation:
    """Which events belong to what is awaited, which of them end it, and how to name it in errors."""

    belongs: Callable[[Event], bool]
    endings: frozenset[str]
    description: str
    request: Event | None = None

    def refusal_in(self, event: Event) -> RequestDeadLettered | None:
        if self.request is None or not isinstance(event, DeadLettered) or event.causation_id != self.request.event_id:
            return None
        return RequestDeadLettered(f"{self.description} was refused: {event.reason}: {event.error}",
                                   reason=event.reason, error=event.error)


def expectation_for(awaited: Event | uuid.UUID, types: Iterable[str] | None = None) -> Expectation:
    """What ends ``awaited``: a request's own outcomes, or (for a correlation id) the journey's events of ``types``."""
    if isinstance(types, str):
        types = (types,)
    if isinstance(awaited, uuid.UUID):
        if not types:
            raise ValueError(f"name the event types to wait for in journey {awaited}")
        return Expectation(lambda event: event.correlation_id == awaited, frozenset(types), f"journey {awaited}")
    if isinstance(awaited, ConsentRevoked):
        return Expectation(lambda event: event.causation_id == awaited.event_id,
                           frozenset(types or _REVOCATION_ENDINGS), f"consent.revoked {awaited.consent_id}", awaited)
    if type(awaited) not in _ENDINGS:
        raise ValueError(f"{awaited.type} is not a request the client can wait on")
    id_field, endings = _ENDINGS[type(awaited)]
    request_id = getattr(awaited, id_field)
    return Expectation(lambda event: getattr(event, id_field, None) == request_id, frozenset(types or endings),
                       f"{awaited.type} {request_id}", awaited)


def consumer_for(bootstrap: str, *, broker_timeout_s: float, security: BrokerSecurity = ANONYMOUS) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                            request_timeout_ms=int(broker_timeout_s * 1000), **security.client_options())


def accepted_result(value: bytes, headers: Iterable[tuple[str, bytes]], worker_public_key: bytes | None
                    ) -> Event | None:
    """The event in a results message, or None: unparseable, or (when a worker key is given) not signed by it."""
    if worker_public_key is not None:
        try:
            verify_message(value, message_signature(headers), worker_public_key)
        except EventSignatureError as error:
            log.warning("ignoring a result not signed by the worker key: %s", error)
            return None
    try:
        return parse_event(value)
    except SchemaError:
        return None


class ResultFeed:
    """Reads the results and dead-letter topics from their ends (as of ``start``), keeping one tenant's events.

    ``consumer`` is an unstarted ``AIOKafkaConsumer`` without a group (``consumer_for`` makes one).
    """

    def __init__(self, consumer: AIOKafkaConsumer, *, bootstrap: str, tenant_id: str,
                 worker_public_key: bytes | None, broker_timeout_s: float):
        self._consumer = consumer
        self._bootstrap = bootstrap
        self._tenant_id = tenant_id
        self._worker_public_key = worker_public_key
        self._broker_timeout_s = broker_timeout_s
        self._events: collections.deque[Event] = collections.deque(maxlen=MAX_BUFFERED_EVENTS)
        self._arrival = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self._assign_at_end(), self._broker_timeout_s)
        except Exception as error:
            await self._consumer.stop()
            if isinstance(error, BrokerUnreachable):
                raise
            raise BrokerUnreachable(f"cannot read results from Kafka at {self._bootstrap}: "
                                    f"{type(error).__name__}: {error}") from error
        self._reader = asyncio.create_task(self._read(), name="voxflow-client-results")

    async def _assign_at_end(self) -> None:
        await self._consumer.start()
        await self._consumer.topics()  # fetches the metadata partitions_for_topic reads
        assigned = []
        for topic in (RESULTS_TOPIC, DEAD_LETTER_TOPIC):
            partitions = self._consumer.partitions_for_topic(topic)
            if not partitions:
                raise BrokerUnreachable(f"topic {topic} does not exist on {self._bootstrap}: is the pipeline set up?")
            assigned += [TopicPartition(topic, partition) for partition in partitions]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        for partition in assigned:  # resolves the end now: a result of a request sent next is after it
            await self._consumer.position(partition)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._consumer.stop()

    async def _read(self) -> None:
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=FETCH_WAIT_MS)
                for records in batches.values():
                    self._keep(records)
                if batches:
                    arrived, self._arrival = self._arrival, asyncio.Event()
                    arrived.set()
        finally:  # wakes the waits, which then see the reader has stopped
            self._arrival.set()

    def _keep(self, records) -> None:
        for record in records:
            event = accepted_result(record.value, record.headers or (), self._worker_public_key)
            if event is not None and event.tenant_id == self._tenant_id:
                self._events.append(event)

    async def wait(self, expected: Expectation, *, timeout_s: float, on_progress: ProgressCallback | None = None,
                   where: Callable[[Event], bool] | None = None) -> Event:
        """The first ending of ``expected`` (that ``where`` accepts), telling ``on_progress`` of each progress
        event on the way; ``ResultTimeout`` naming it after ``timeout_s``, ``RequestDeadLettered`` if refused."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        reported: set[uuid.UUID] = set()
        while True:
            arrival = self._arrival
            ending = self._scan(expected, where, on_progress, reported)
            if ending is not None:
                return ending
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self._reader is None or self._reader.done():
                raise self._timeout(expected, timeout_s)
            try:
                await asyncio.wait_for(arrival.wait(), remaining)
            except TimeoutError:
                continue

    def _scan(self, expected: Expectation, where, on_progress: ProgressCallback | None,
              reported: set[uuid.UUID]) -> Event | None:
        for event in list(self._events):
            refusal = expected.refusal_in(event)
            if refusal is not None:
                raise refusal
            if not expected.belongs(event):
                continue
            if event.type in expected.endings and (where is None or where(event)):
                return event
            if on_progress is not None and is_progress(event) and event.event_id not in reported:
                reported.add(event.event_id)
                on_progress(event)
        return None

    def _timeout(self, expected: Expectation, timeout_s: float) -> ResultTimeout:
        waited_for = f"{' or '.join(sorted(expected.endings))} of {expected.description}"
        if self._reader is not None and self._reader.done() and not self._reader.cancelled():
            failure = self._reader.exception()
            return ResultTimeout(f"stopped reading results ({failure}) while waiting for {waited_for}",
                                 waited_for=waited_for)
        return ResultTimeout(f"no {waited_for} within {timeout_s:g} s", waited_for=waited_for)

