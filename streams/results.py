"""Waiting for result events of one journey (by correlation id), as an upstream app would."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import parse_event
from schemas.envelope import Event
from schemas.errors import SchemaError
from streams.errors import TopicMissing
from voxflow.broker_login import ANONYMOUS, BrokerSecurity


class ResultWatcher:
    """Reads a topic from its current end (no consumer group), keeping the events of chosen journeys."""

    def __init__(self, bootstrap: str, topic: str, *, security: BrokerSecurity = ANONYMOUS):
        self.topic = topic
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                          **security.client_options())
        self._seen: list[Event] = []

    async def __aenter__(self) -> "ResultWatcher":
        await self._consumer.start()
        await self._consumer.topics()  # fetches metadata, which partitions_for_topic reads
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            await self._consumer.stop()
            raise TopicMissing(f"topic {self.topic} does not exist: run `voxflow stack up` or `voxflow topics --create`")
        assigned = [TopicPartition(self.topic, p) for p in partitions]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._consumer.stop()

    async def wait_for(self, correlation_id: uuid.UUID, types: set[str], count: int, *, timeout_s: float,
                       on_event: Callable[[Event], None] | None = None) -> list[Event]:
        """Events of the journey whose type is in `types`, once `count` of them arrived (or timeout).

        ``on_event`` sees every event of the journey that arrives meanwhile (progress, say).
        """
        def of_journey(event: Event) -> None:
            if on_event is not None and event.correlation_id == correlation_id:
                on_event(event)

        return await self.wait_until(lambda e: e.correlation_id == correlation_id and e.type in types, count,
                                     timeout_s=timeout_s, on_event=of_journey)

    async def wait_until(self, predicate: Callable[[Event], bool], count: int = 1, *, timeout_s: float,
                         on_event: Callable[[Event], None] | None = None) -> list[Event]:
        deadline = time.monotonic() + timeout_s
        while True:
            matching = [e for e in self._seen if predicate(e)]
            if len(matching) >= count or time.monotonic() > deadline:
                return matching
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                arrived = _parsed(records)
                self._seen.extend(arrived)
                for event in arrived if on_event is not None else ():
                    on_event(event)
            await asyncio.sleep(0)


def _parsed(records) -> list[Event]:
    parsed = []
    for record in records:
        try:
            parsed.append(parse_event(record.value))
        except SchemaError:
            continue
    return parsed
