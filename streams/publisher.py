"""Publishes signed events to the topic their type travels on, keyed by voice id."""

from __future__ import annotations

from collections.abc import Callable

from infra.kafka import KafkaProducer
from infra.signing_keys import TenantKeyFiles
from processors.trust.signing import EventSigner
from schemas.envelope import Event
from streams.topics import topic_for

SignerFor = Callable[[Event], EventSigner]


class EventPublisher:
    """``signer_for`` picks the key an event is signed with: the worker's for everything a worker
    publishes, the event's tenant's for what an upstream app produces."""

    def __init__(self, producer: KafkaProducer, signer_for: SignerFor):
        self.producer = producer
        self.signer_for = signer_for

    async def publish(self, event: Event) -> None:
        value = event.to_bytes()
        await self.producer.send(topic_for(event), key=event.key(), value=value,
                                 headers=self.signer_for(event).headers_for(value))


def signed_by(signer: EventSigner) -> SignerFor:
    return lambda event: signer


def signed_by_tenant(keys: TenantKeyFiles) -> SignerFor:
    """Each event signed by its own tenant's key (``TenantKeyMissing`` when this machine has none)."""
    cache: dict[str, EventSigner] = {}

    def signer_for(event: Event) -> EventSigner:
        if event.tenant_id not in cache:
            cache[event.tenant_id] = keys.signer(event.tenant_id)
        return cache[event.tenant_id]

    return signer_for
