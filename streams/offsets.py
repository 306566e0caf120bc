"""Committed offsets beyond a partition's end, left by a broker that lost its log, are reset.

After a broker restarts with an empty log, a group's committed offset can point past the partition's
new end. The consumer then fetches from there, Tansu answers with nothing (not the OFFSET_OUT_OF_RANGE
that would make aiokafka reset on its own), and the partition stays silent however many events arrive
below that offset. So each time partitions are assigned, just before Faust seeks to the committed
offsets, every partition committed beyond its end is reset, with one warning and one audit record.

It is reset to its beginning, not its end: the log before the loss is gone, so whatever the partition
holds now was written after it, and this group has read none of it (it was fetching past the end).
Skipping to the end would drop those events; stages' inboxes skip anything already handled.

Tansu reports a partition's end as its last batch's base offset + 1, so a group that read a last batch
of several records has committed past that reported end: the true end is read from the last batch
before any partition counts as beyond it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from infra.errors import BrokerUnavailable
from schemas.events import AuditRecorded
from voxflow.broker_login import ANONYMOUS, BrokerSecurity

log = logging.getLogger("voxflow.offsets")

LAST_BATCH_READ_TIMEOUT_S = 5.0
# An offset reset concerns a partition, not a tenant's request: its audit record names the worker's group.
WORKER_TENANT = "voxflow-worker"
AUDIT_STAGE = "offsets"
RESET_ACTION = "offset.reset"

AuditPublisher = Callable[[AuditRecorded], Awaitable[None]]


@dataclass(frozen=True)
class OffsetReset:
    partition: TopicPartition
    committed: int
    end: int
    reset_to: int


def reset_lost_offsets_on_assignment(app: faust.App, bootstrap: str, publish_audit: AuditPublisher, *,
                                     security: BrokerSecurity = ANONYMOUS) -> None:
    """Check the committed offsets each time a rebalance completes, before Faust seeks to them."""

    async def check(_sender, **_signal) -> None:
        try:
            resets = await reset_offsets_beyond_end(app.consumer, bootstrap, security=security)
        except (KafkaError, TimeoutError) as error:  # the partitions keep their offsets; the next rebalance checks again
            log.warning("could not check committed offsets against partition ends: %s: %s", type(error).__name__,
                        error)
            return
        for reset in resets:
            log.warning("%s[%d]: committed offset %d is beyond the partition's end %d (its log was lost); "
                        "reading on from offset %d", reset.partition.topic, reset.partition.partition,
                        reset.committed, reset.end, reset.reset_to)
            try:
                await publish_audit(audit_record(app.conf.id, reset))
            except BrokerUnavailable as error:  # the reset stands; the warning above is then its only record
                log.error("%s[%d]: the offset reset could not be audited: %s", reset.partition.topic,
                          reset.partition.partition, error)

    app.on_rebalance_complete.connect(check)


async def reset_offsets_beyond_end(consumer, bootstrap: str, *, security: BrokerSecurity = ANONYMOUS
                                   ) -> list[OffsetReset]:
    """Seek and commit each assigned partition whose committed offset lies beyond its end to its beginning.

    ``consumer`` is the Faust app's consumer; the committed offsets are then what Faust seeks to next.
    """
    assigned = consumer.assignment()
    if not assigned:
        return []
    committed = await consumer.seek_to_committed()
    reported_ends = await consumer.highwaters(*assigned)
    suspects = {tp: offset for tp, offset in committed.items() if offset is not None and offset > reported_ends[tp]}
    if not suspects:
        return []
    ends = await partition_ends(bootstrap, {tp: reported_ends[tp] for tp in suspects}, security=security)
    beyond = {tp: offset for tp, offset in suspects.items() if tp in ends and offset > ends[tp]}
    if not beyond:
        return []
    beginnings = await consumer.earliest_offsets(*beyond)
    await consumer.seek_wait(beginnings)
    # Faust's driver hook that commits given offsets (its public commit() only commits acknowledged messages)
    await consumer._commit(beginnings)
    return [OffsetReset(TopicPartition(tp.topic, tp.partition), offset, ends[tp], beginnings[tp])
            for tp, offset in beyond.items()]


async def partition_ends(bootstrap: str, reported_ends: Mapping[TopicPartition, int], *,
                         security: BrokerSecurity = ANONYMOUS) -> dict[TopicPartition, int]:
    """The offset after each partition's last record, given the end the broker reported for it.

    A partition whose last batch could not be read within LAST_BATCH_READ_TIMEOUT_S is left out: its end
    is unknown, and an offset is never reset on a guess.
    """
    ends = {TopicPartition(tp.topic, tp.partition): 0 for tp, end in reported_ends.items() if end == 0}
    unread = {TopicPartition(tp.topic, tp.partition): end for tp, end in reported_ends.items() if end > 0}
    if not unread:
        return ends
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                **security.client_options())
    await consumer.start()
    try:
        consumer.assign(list(unread))
        for tp, end in unread.items():
            consumer.seek(tp, end - 1)  # the last batch's base offset: its records follow
        deadline = time.monotonic() + LAST_BATCH_READ_TIMEOUT_S
        while unread and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(*unread, timeout_ms=500)).items():
                if records:
                    ends[tp] = records[-1].offset + 1
                    unread.pop(tp, None)
    finally:
        await consumer.stop()
    return ends


def audit_record(group: str, reset: OffsetReset) -> AuditRecorded:
    """The same reset detected twice (a worker stopped before its commit) gives the same record id."""
    tp = reset.partition
    subject_id = uuid.uuid5(uuid.NAMESPACE_URL, f"voxflow:offset-reset:{group}/{tp.topic}/{tp.partition}/"
                                                f"{reset.committed}/{reset.end}")
    return AuditRecorded(
        event_id=uuid.uuid5(subject_id, "audit.record"), tenant_id=WORKER_TENANT, voice_id=tp.topic,
        stage=AUDIT_STAGE, action=RESET_ACTION, decision="alerted", subject_event_id=subject_id,
        detail={"consumer_group": group, "topic": tp.topic, "partition": tp.partition, "committed": reset.committed,
                "end": reset.end, "reset_to": reset.reset_to},
    )
