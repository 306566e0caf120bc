"""Audit and anomaly stages: persist what the other stages decided.

Each kind comes one event at a time (``append_audit_record``, ``record_anomaly``) and as a batch of
one take from the stream (``append_audit_records``, ``record_anomalies``): a batch is written in one
statement, its audit records appended to the chain in the order they came.
"""

from __future__ import annotations

import logging

from schemas.envelope import Event
from schemas.events import AnomalyDetected, AuditCheckpointed, AuditRecorded
from streams.checkpoints import checkpoint_of
from streams.context import StageContext

log = logging.getLogger("voxflow.anomaly")


async def append_audit_record(event: AuditRecorded, context: StageContext) -> list[Event]:
    await context.repos.audit.append(event_id=event.event_id, record=event.model_dump(mode="json"))
    return []


async def append_audit_records(batch: list[AuditRecorded], context: StageContext) -> list[list[Event]]:
    await context.repos.audit.append_many([(event.event_id, event.model_dump(mode="json")) for event in batch])
    return [[] for _ in batch]


async def record_checkpoint(event: AuditCheckpointed, context: StageContext) -> list[Event]:
    """Store a worker's checkpoint (the message was authenticated as a worker's before it got here)."""
    await context.repos.checkpoints.save(checkpoint_of(event))
    return []


async def record_anomaly(event: AnomalyDetected, context: StageContext) -> list[Event]:
    await context.repos.anomalies.record(**_anomaly_row(event))
    _log_anomaly(event)
    return []


async def record_anomalies(batch: list[AnomalyDetected], context: StageContext) -> list[list[Event]]:
    await context.repos.anomalies.record_many([_anomaly_row(event) for event in batch])
    for event in batch:
        _log_anomaly(event)
    return [[] for _ in batch]


def _anomaly_row(event: AnomalyDetected) -> dict:
    return dict(event_id=event.event_id, tenant_id=event.tenant_id, voice_id=event.voice_id, kind=event.kind,
                severity=event.severity, action=event.action, detail=event.detail, detected_at=event.occurred_at)


def _log_anomaly(event: AnomalyDetected) -> None:
    log.warning("ANOMALY %s (%s, %s) tenant=%s voice=%s: %s", event.kind, event.severity, event.action,
                event.tenant_id, event.voice_id, event.detail)
