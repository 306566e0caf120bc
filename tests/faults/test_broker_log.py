"""Fault test: producers racing to append to one partition of the S3-backed embedded broker lose no
acknowledged message and double none.

Tansu appends a batch with conditional PUTs; `rclone serve s3` ignores the conditions, so without
`infra.s3_preconditions` in between two batches written at once could both be acknowledged and one
overwrite the other (196 acknowledged, 191 in the log, measured with a test client and a worker).
A message sent again after a refusal may be in the log twice (the refused write may have landed): that is
at-least-once on the producer's side, which consumers' event-id inboxes absorb; any other copy is the broker's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field

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
# A refused send is sent again, as a stage does with `BrokerUnavailable`; one CI run in about twenty saw one
# batch of a round refused.
SENDS_PER_MESSAGE = 4
RESEND_PAUSE_S = 1.0
CONSUME_IDLE_S = 10.0


@dataclass
class Outcome:
    acknowledged: list[bytes] = field(default_factory=list)
    resent: set[bytes] = field(default_factory=set)  # refused at least once: a refusal may still have been written
    refusals: list[str] = field(default_factory=list)


async def send_round(producer: AIOKafkaProducer, topic: str, values: list[bytes], outcome: Outcome) -> None:
    pending = values
    for _ in range(SENDS_PER_MESSAGE):
        results = await asyncio.gather(*(producer.send_and_wait(topic, value, partition=0) for value in pending),
                                       return_exceptions=True)
        refused = [(value, result) for value, result in zip(pending, results) if isinstance(result, BaseException)]
        assert all(isinstance(error, KafkaError) for _, error in refused), refused[:3]
        outcome.acknowledged += [value for value, result in zip(pending, results)
                                 if not isinstance(result, BaseException)]
        outcome.refusals += sorted({repr(error) for _, error in refused})
        pending = [value for value, _ in refused]
        outcome.resent.update(pending)
        if not pending:
            return
        await asyncio.sleep(RESEND_PAUSE_S)


async def produce_in_rounds(bootstrap: str, topic: str, producer_index: int) -> Outcome:
    """Send this producer's messages to partition 0, each refused one again."""
    values = [f"producer-{producer_index}-message-{n}".encode() for n in range(MESSAGES_PER_PRODUCER)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    outcome = Outcome()
    try:
        for start in range(0, len(values), MESSAGES_PER_ROUND):
            await send_round(producer, topic, values[start:start + MESSAGES_PER_ROUND], outcome)
    finally:
        await producer.stop()
    return outcome


async def test_every_acknowledged_message_is_in_the_log_exactly_once(private_stack):
    topic = f"fault-race-{uuid.uuid4().hex[:8]}"
    await ensure_topics(private_stack.kafka_bootstrap, [topic], partitions=1, replication=1)

    outcomes = await asyncio.gather(*(produce_in_rounds(private_stack.kafka_bootstrap, topic, index)
                                      for index in range(PRODUCERS)))
    acknowledged = [value for outcome in outcomes for value in outcome.acknowledged]
    resent = set().union(*(outcome.resent for outcome in outcomes))
    refusals = [refusal for outcome in outcomes for refusal in outcome.refusals]
    in_log = Counter([value async for _, _, _, _, value, _ in consume(private_stack.kafka_bootstrap, [topic],
                                                                    idle_timeout_s=CONSUME_IDLE_S)])

    lost = [value for value in acknowledged if value not in in_log]
    doubled = [value for value, copies in in_log.items() if copies > 1 and value not in resent]
    assert (len(lost), len(doubled)) == (0, 0), (f"{len(acknowledged)} acknowledged, {sum(in_log.values())} in the "
                                                 f"log; lost {lost[:3]}, doubled {doubled[:3]}; refusals {refusals[:3]}")
    assert len(set(acknowledged)) == PRODUCERS * MESSAGES_PER_PRODUCER, f"still refused after re-sends: {refusals[:5]}"
