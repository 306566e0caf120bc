"""Offsets after a broker lost its log, on a private stack: a group committed beyond a partition's end
is reset to the partition's beginning (one warning, one audit record each) instead of going silent."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.kafka import KafkaProducer, ensure_topics
from infra.settings import Settings
from streams import topics
from streams.auditing import read_audit_log
from streams.offsets import RESET_ACTION, partition_ends
from streams.results import ResultWatcher
from streams.session import client_session
from streams.topics import ALL_TOPICS
from streams.worker import VoxflowWorker
from tests.journeys import consented_voice, eventually, synthesise

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LOST_EVENTS = 199  # what the group had read before the broker lost its log (measured: lag -199)
BATCH_RECORDS = 5


async def commit_beyond_the_end(settings: Settings, topic: str) -> dict[tuple[str, int], int]:
    """Commit, for the worker's group, an offset LOST_EVENTS past each partition's end, as a lost log leaves it."""
    await ensure_topics(settings.kafka_bootstrap, ALL_TOPICS, partitions=settings.topic_partitions,
                        replication=settings.topic_replication)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, number) for number in range(settings.topic_partitions)]
        consumer.assign(partitions)
        lost = {tp: end + LOST_EVENTS for tp, end in (await consumer.end_offsets(partitions)).items()}
        await consumer.commit(lost)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): offset for tp, offset in lost.items()}


async def offset_resets(settings: Settings) -> dict[tuple[str, int], int]:
    """(topic, partition) → the committed offset found beyond the end, from the audit log."""
    return {(entry.record["detail"]["topic"], entry.record["detail"]["partition"]): entry.record["detail"]["committed"]
            for entry in await read_audit_log(settings) if entry.record["action"] == RESET_ACTION}


async def test_a_group_committed_beyond_the_partition_end_is_reset_audited_and_served(private_settings, caplog):
    lost = await commit_beyond_the_end(private_settings, topics.SYNTHESIS)

    with caplog.at_level(logging.WARNING, logger="voxflow.offsets"):
        async with VoxflowWorker(private_settings), client_session(private_settings) as session, \
                ResultWatcher(private_settings.kafka_bootstrap, topics.RESULTS) as results:
            _, _, ready = await consented_voice(session, results, voice_id=f"lost-{uuid.uuid4().hex[:6]}", max_uses=10)
            answer = await synthesise(session, results, voice_id=ready.voice_id, correlation=ready.correlation_id)
            audited = await eventually(lambda: offset_resets(private_settings), lambda resets: len(resets) >= len(lost))

    assert answer.type == "synthesis.completed"
    assert audited == lost
    warnings = [record for record in caplog.records if "beyond the partition's end" in record.getMessage()]
    assert len(warnings) == len(lost)


async def test_a_partition_ends_after_its_last_record_not_after_its_last_batchs_first(private_settings):
    """Tansu reports a partition's end as its last batch's base offset + 1: a group that read a whole batch
    of several records must not look committed beyond the end."""
    topic = f"offsets-{uuid.uuid4().hex[:8]}"
    await ensure_topics(private_settings.kafka_bootstrap, [topic], partitions=1, replication=1)
    async with KafkaProducer(private_settings.kafka_bootstrap) as producer:  # sent together: one batch
        await asyncio.gather(*(producer.send(topic, key=b"k", value=b"%d" % n) for n in range(BATCH_RECORDS)))
    partition = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=private_settings.kafka_bootstrap)
    await consumer.start()
    try:
        reported = await consumer.end_offsets([partition])
    finally:
        await consumer.stop()

    assert await partition_ends(private_settings.kafka_bootstrap, reported) == {partition: BATCH_RECORDS}
