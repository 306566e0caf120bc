"""`voxflow audit replay --since`: the audit topic re-read and set beside the Postgres copy of the log."""

from __future__ import annotations

from datetime import datetime

from infra.kafka import consume
from infra.repositories import AuditRepository
from infra.settings import Settings
from infra.signing_keys import worker_signer
from processors.errors import EventSignatureError
from processors.trust.audit_replay import ReplayDifference, StoredRecord, compare_audit_copies
from processors.trust.signing import message_signature, verify_message
from schemas import parse_event
from schemas.errors import SchemaError
from schemas.events import AuditRecorded
from streams import topics
from streams.session import database


async def replay_audit_topic(settings: Settings, *, since: datetime, idle_timeout_s: float) -> list[ReplayDifference]:
    """Differences between audit records that occurred at or after ``since`` on the topic and in Postgres.

    The topic is read from its start until nothing arrives for ``idle_timeout_s``. Messages that are not
    audit records (checkpoints, or bytes that never parsed and were dead-lettered) are left out, and so
    are records no worker signed: the audit stage refused those, so Postgres rightly lacks them.
    """
    worker_key = worker_signer(settings).public_key
    on_topic = {}
    async for *_, value, headers in consume(settings.kafka_bootstrap, [topics.AUDIT], idle_timeout_s=idle_timeout_s,
                                            security=settings.broker_security()):
        record = _audit_record(value)
        if record is not None and record.occurred_at >= since and _signed_by_worker(value, headers, worker_key):
            # a retried step re-sends its record (same id, later occurred_at); the audit stage appended the first
            on_topic.setdefault(str(record.event_id), record.model_dump(mode="json"))
    async with database(settings) as pool:
        entries = await AuditRepository(pool, settings.audit_key()).entries()
    in_postgres = {entry.record["event_id"]: StoredRecord(entry.sequence, entry.record) for entry in entries
                   if datetime.fromisoformat(entry.record["occurred_at"]) >= since}
    return compare_audit_copies(on_topic, in_postgres)


def _signed_by_worker(value: bytes, headers, worker_key: bytes) -> bool:
    try:
        verify_message(value, message_signature(headers), worker_key)
    except EventSignatureError:
        return False
    return True


def _audit_record(value: bytes) -> AuditRecorded | None:
    try:
        event = parse_event(value)
    except SchemaError:
        return None
    return event if isinstance(event, AuditRecorded) else None
