"""Fault test: the S3-backed embedded broker restarted (alone, or with its S3 server) loses no event,
doubles none, keeps each consumer group's committed offsets, and its absence is logged once, not per attempt."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from infra.embedded import EmbeddedStack
from infra.errors import BrokerUnavailable
from infra.kafka import BrokerReachability, KafkaProducer, consume, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.faults]

EVENTS = 300
PARTITIONS = 2
CONSUME_IDLE_S = 10.0
# Tansu holds a group's first JoinGroup for half the session timeout; a short one keeps the test quick.
CONSUMER_SESSION_TIMEOUT_MS = 2000
CONSUMER_HEARTBEAT_INTERVAL_MS = 500
SEND_RETRY_S = 0.5
# Before the quieting, a producer and one group consumer logged 683 lines in the 22 s around a restart.
MOST_LINES_PER_RESTART = 5
RESTARTS = [pytest.param(("broker",), id="broker"), pytest.param(("s3", "broker"), id="s3-server-and-broker")]

Event = tuple[bytes, bytes]


@pytest.fixture(scope="module")
def stack(private_stack):
    """A stack of its own: restarting the shared one would pull the broker from under other tests."""
    return private_stack


async def new_topic(stack: EmbeddedStack) -> str:
    topic = f"fault-{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, [topic], partitions=PARTITIONS, replication=1)
    return topic


async def produce(stack: EmbeddedStack, topic: str, count: int) -> list[Event]:
    """`count` events keyed by voice, each acknowledged by the broker (acks=all) before this returns."""
    events = [(f"voice-{n % 7}".encode(), json.dumps({"event_id": str(uuid.uuid4()), "n": n}).encode())
              for n in range(count)]
    async with KafkaProducer(stack.kafka_bootstrap) as producer:
        await asyncio.gather(*(producer.send(topic, key=key, value=value) for key, value in events))
    return events


async def read_everything(stack: EmbeddedStack, topic: str) -> list[Event]:
    """Every event on the topic, from the first offset, without a consumer group."""
    return [(key, value) async for _, _, _, key, value, _ in consume(stack.kafka_bootstrap, [topic],
                                                                   idle_timeout_s=CONSUME_IDLE_S)]


async def read_as_group(stack: EmbeddedStack, topic: str, group: str, expected: int) -> list[Event]:
    """What the group has not consumed yet, committing it; stops after `expected` events or a quiet spell."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=CONSUMER_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=CONSUMER_HEARTBEAT_INTERVAL_MS,
    )
    await consumer.start()
    received: list[Event] = []
    try:
        while len(received) < expected:
            batches = await consumer.getmany(timeout_ms=int(CONSUME_IDLE_S * 1000))
            if not batches:
                break
            received += [(r.key, r.value) for records in batches.values() for r in records]
        await consumer.commit()
        # A quiet spell proves nothing more (a duplicate) was waiting behind the expected events.
        received += [(r.key, r.value) for records in (await consumer.getmany(timeout_ms=1000)).values()
                     for r in records]
    finally:
        await consumer.stop()
    return received


def restart(stack: EmbeddedStack, services: tuple[str, ...]) -> None:
    before = stack.status()
    stack.down(*services)
    after = stack.up()
    for name in services:
        assert getattr(after, name).pid != getattr(before, name).pid, f"the {name} was not restarted"


@pytest.mark.parametrize("services", RESTARTS)
async def test_every_event_is_consumed_again_after_a_restart(stack, services):
    topic = await new_topic(stack)
    sent = await produce(stack, topic, EVENTS)

    restart(stack, services)

    assert sorted(await read_everything(stack, topic)) == sorted(sent)


@pytest.mark.parametrize("services", RESTARTS)
async def test_a_group_resumes_at_its_committed_offset_after_a_restart(stack, services):
    """Events produced after the restart go after the old ones (rclone ignores Tansu's If-None-Match: before
    infra.s3_preconditions enforced it, they overwrote offset 0 and the group saw nothing)."""
    topic, group = await new_topic(stack), f"fault-group-{uuid.uuid4().hex[:8]}"
    before = await produce(stack, topic, EVENTS)
    assert sorted(await read_as_group(stack, topic, group, len(before))) == sorted(before)

    restart(stack, services)
    after = await produce(stack, topic, EVENTS // 3)

    assert sorted(await read_as_group(stack, topic, group, len(after))) == sorted(after)


async def test_a_restart_is_logged_once_when_the_broker_goes_and_once_when_it_is_back(stack, caplog):
    topic = await new_topic(stack)
    reachability = BrokerReachability(stack.kafka_bootstrap)
    reachability.install()
    try:
        async with KafkaProducer(stack.kafka_bootstrap, reachability) as producer:
            await producer.send(topic, key=b"voice-0", value=b"{}")
            consumer = AIOKafkaConsumer(
                topic, bootstrap_servers=stack.kafka_bootstrap, group_id=f"fault-group-{uuid.uuid4().hex[:8]}",
                session_timeout_ms=CONSUMER_SESSION_TIMEOUT_MS, heartbeat_interval_ms=CONSUMER_HEARTBEAT_INTERVAL_MS)
            await consumer.start()
            reading = asyncio.create_task(read_forever(consumer))
            try:
                caplog.set_level(logging.INFO)
                await asyncio.to_thread(restart, stack, ("broker",))  # the clients keep trying meanwhile
                await send_until_acknowledged(producer, topic)
            finally:
                reading.cancel()
                await consumer.stop()
    finally:
        reachability.uninstall()

    lines = [record.getMessage() for record in caplog.records
             if record.name.startswith(("aiokafka", "voxflow.kafka")) and record.levelno >= logging.WARNING]
    assert len(lines) <= MOST_LINES_PER_RESTART, lines
    assert [line.split(" ")[3] for line in lines if line.startswith("broker at ")] == ["unreachable", "back"]


async def read_forever(consumer: AIOKafkaConsumer) -> None:
    while True:
        await consumer.getmany(timeout_ms=500)


async def send_until_acknowledged(producer: KafkaProducer, topic: str) -> None:
    while True:
        try:
            return await producer.send(topic, key=b"voice-0", value=b"{}")
        except BrokerUnavailable:
            await asyncio.sleep(SEND_RETRY_S)
