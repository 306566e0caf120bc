"""The worker's Prometheus metrics, in a registry of its own (a test makes a fresh one per processor)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from contextlib import contextmanager
from typing import Iterator, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from schemas.envelope import Event
from streams.stages import STAGES
from streams.topics import topic_for

T = TypeVar("T")

UNPARSED = "unparsed"  # the `type` label of a message that never became an event
# audit and consent steps take milliseconds, a synthesis chunk seconds, a refined voice's fit minutes
HANDLER_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)
_STAGE_OF_TOPIC = {stage.topic: stage.name for stage in STAGES}


class WorkerMetrics:
    """Counters, gauges and histograms of one worker; ``render()`` is the text ``/metrics`` serves."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_in = Counter("voxflow_events_in", "Messages a stage read, by topic and event type",
                                 ["topic", "type"], registry=r)
        self.events_out = Counter("voxflow_events_out", "Events published (acknowledged by the broker)",
                                  ["topic", "type"], registry=r)
        self.handler_seconds = Histogram(
            "voxflow_handler_seconds", "One attempt at a stage's step: inbox check, handler, publishing, marking done",
            ["stage", "type"], buckets=HANDLER_BUCKETS_S, registry=r)
        self.dead_letters = Counter("voxflow_dead_letters", "Messages dead-lettered, by reason", ["reason"], registry=r)
        self.retries = Counter("voxflow_retries", "Steps retried after a transient failure, by stage and error",
                               ["stage", "error"], registry=r)
        self.consumer_lag = Gauge("voxflow_consumer_lag", "Messages behind the partition's high-water mark",
                                  ["topic", "partition"], registry=r)
        self.synthesis_rtf = Histogram("voxflow_synthesis_rtf", "Real-time factor of outgoing synthesis events",
                                       ["type"], buckets=RTF_BUCKETS, registry=r)
        self.in_flight = Gauge("voxflow_in_flight", "Messages a stage is working on now (retries included)",
                               ["stage"], registry=r)

    def event_in(self, topic: str, event_type: str | None) -> None:
        self.events_in.labels(topic, event_type or UNPARSED).inc()

    def event_out(self, event: Event) -> None:
        self.events_out.labels(topic_for(event), event.type).inc()
        rtf = getattr(event, "rtf", None)
        if rtf is not None:
            self.synthesis_rtf.labels(event.type).observe(rtf)

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason).inc()

    def retry(self, topic: str, error: BaseException) -> None:
        self.retries.labels(_STAGE_OF_TOPIC.get(topic, topic), type(error).__name__).inc()

    def lag(self, topic: str, partition: int, offset: int, highwater: int | None) -> None:
        """``highwater`` is the offset the next produced message gets (None until the consumer fetched)."""
        if highwater is not None:
            self.consumer_lag.labels(topic, str(partition)).set(max(0, highwater - offset - 1))

    @contextmanager
    def working(self, stage: str) -> Iterator[None]:
        gauge = self.in_flight.labels(stage)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    async def timed(self, stage: str, event_type: str, step: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await step
        finally:
            self.handler_seconds.labels(stage, event_type).observe(time.perf_counter() - started)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class CountingPublisher:
    """A publisher that counts what it sent (for progress events, which bypass the stage processor)."""

    def __init__(self, publisher, metrics: WorkerMetrics):
        self.publisher = publisher
        self.metrics = metrics

    async def publish(self, event: Event) -> None:
        await self.publisher.publish(event)
        self.metrics.event_out(event)
