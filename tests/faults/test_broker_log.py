"""Fault test: producers racing to append to one partition of the S3-backed embedded broker lose no
acknowledged message and double none.

Tansu appends a batch with conditional PUTs; `rclone serve s3` ignores the conditions, so without
`infra.s3_preconditions` in between two batches written at once could both be acknowledged and one
overwrite the other (196 acknowledged, 191 in the log, measured with a test client and a worker).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from infra.kafka import consume, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PRODUCERS = 4
MESSAGES_PER_PRODUCER = 500
# Each round is sent at once and acknowledged before the next, as a stage publishes: many produce requests
# in flight from all producers at once, each a batch of its own.
MESSAGES_PER_ROUND = 50
CONSUME_IDLE_S = 10.0


async def produce_in_rounds(bootstrap: str, topic: str, producer_index: int) -> list[bytes]:
    """Send this producer's messages to partition 0; returns those the broker acknowledged."""
    values = [f"producer-{producer_index}-message-{n}".encode() for n in range(MESSAGES_PER_PRODUCER)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    outcomes = []
    try:
        for start in range(0, len(values), MESSAGES_PER_ROUND):
            outcomes += await asyncio.gather(*(producer.send_and_wait(topic, value, partition=0)
                                               for value in values[start:start + MESSAGES_PER_ROUND]),
                                             return_exceptions=True)
    finally:
        await producer.stop()
    refused = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert all(isinstance(error, KafkaError) for error in refused), refused[:3]
    return [value for value, outcome in zip(values, outcomes) if not isinstance(outcome, BaseException)]


async def test_every_acknowledged_message_is_in_the_log_exactly_once(private_stack):
    topic = f"fault-race-{uuid.uuid4().hex[:8]}"
    await ensure_topics(private_stack.kafka_bootstrap, [topic], partitions=1, replication=1)

    acknowledged = [value for values in await asyncio.gather(
        *(produce_in_rounds(private_stack.kafka_bootstrap, topic, index) for index in range(PRODUCERS)))
        for value in values]
    in_log = Counter([value async for _, _, _, _, value, _ in consume(private_stack.kafka_bootstrap, [topic],
                                                                    idle_timeout_s=CONSUME_IDLE_S)])

    lost = [value for value in acknowledged if value not in in_log]
    doubled = [value for value, copies in in_log.items() if copies > 1]
    assert (len(lost), len(doubled)) == (0, 0), (f"{len(acknowledged)} acknowledged, {sum(in_log.values())} in the "
                                                 f"log; lost {lost[:3]}, doubled {doubled[:3]}")
    assert len(acknowledged) == PRODUCERS * MESSAGES_PER_PRODUCER
