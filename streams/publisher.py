"""Publishes events to the topic their type travels on, keyed by voice id."""

from __future__ import annotations

from infra.kafka import KafkaProducer
from schemas.envelope import Event
from streams.topics import topic_for


class EventPublisher:
    def __init__(self, producer: KafkaProducer):
        self.producer = producer

    async def publish(self, event: Event) -> None:
        await self.producer.send(topic_for(event), key=event.key(), value=event.to_bytes())
