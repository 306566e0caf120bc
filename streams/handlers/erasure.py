"""Erasure: the voice's data key destroyed first, then its objects and rows; the voice id retired for good."""

from __future__ import annotations

import base64
import binascii
from infra.data_keys import voice_scope
from infra.encrypted_store import VOICE_AREAS
from processors.trust.erasure import signed_by_an_owner
from schemas.envelope import Event
from schemas.events import ErasureCompleted, ErasureFailed, ErasureReport, ErasureRequested
from streams.context import KeyShredder, StageContext


async def erase_voice(event: ErasureRequested, context: StageContext) -> list[Event]:
    done = await context.repos.erasures.report(erasure_id=event.erasure_id)
    if done is not None:  # a replay gets the first run's answer
        return [_completed(event, ErasureReport.model_validate(done))]
    voice = await context.repos.voices.get_voice(voice_id=event.voice_id)
    if voice is None or voice.tenant_id != event.tenant_id:
        return [_failed(event, f"tenant {event.tenant_id!r} has no voice {event.voice_id!r}")]
    if voice.erased_at is None:  # once under way (a crash, a redelivery), the request was already authorised
        refusal = await _not_authorised(event, context)
        if refusal:
            return [_failed(event, refusal)]
        await context.repos.erasures.mark_erased(voice_id=event.voice_id)
    report = await _erase(event, context)
    await context.repos.erasures.record(erasure_id=event.erasure_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
                                        requested_by=event.requested_by, reason=event.reason,
                                        report=report.model_dump())
    return [_completed(event, report)]


async def _not_authorised(event: ErasureRequested, context: StageContext) -> str | None:
    """Why the request may not erase the voice; None when it may. (An operator's request is only accepted
    signed by a worker key: streams/authentication.py checks that before any handler runs.)"""
    if event.requested_by == "operator":
        return None
    try:
        signature = base64.b64decode(event.owner_signature, validate=True)
    except (binascii.Error, ValueError):
        return "owner_signature is not base64"
    owner_keys = await context.repos.erasures.owner_public_keys(voice_id=event.voice_id)
    if not signed_by_an_owner(signature, owner_keys, erasure_id=str(event.erasure_id), tenant_id=event.tenant_id,
                              voice_id=event.voice_id, requested_at=event.requested_at):
        return "owner_signature is not the voice owner's: sign with the key of one of the voice's consents"
    return None


async def _erase(event: ErasureRequested, context: StageContext) -> ErasureReport:
    # Shred first: a chunk being synthesised right now can neither be written nor read from here on.
    await _shredder(context).destroy(voice_scope(event.tenant_id, event.voice_id))
    objects_deleted = {}
    for area in VOICE_AREAS:
        keys = await context.store.list_keys(f"{area}/{event.tenant_id}/{event.voice_id}/")
        for key in keys:
            await context.store.delete(key)
        objects_deleted[area] = len(keys)
    rows_deleted = await context.repos.erasures.erase_rows(voice_id=event.voice_id)
    return ErasureReport(objects_deleted=objects_deleted, rows_deleted=rows_deleted, data_key_destroyed=True,
                         audit_records_kept=await context.repos.erasures.audit_records_naming(voice_id=event.voice_id))


def _shredder(context: StageContext) -> KeyShredder:
    if context.data_keys is None:
        raise RuntimeError("the erasure stage needs the data keys: the worker gives them to every stage")
    return context.data_keys


def _completed(event: ErasureRequested, report: ErasureReport) -> ErasureCompleted:
    return event.follow_up(ErasureCompleted, erasure_id=event.erasure_id, requested_by=event.requested_by, report=report)


def _failed(event: ErasureRequested, reason: str) -> ErasureFailed:
    return event.follow_up(ErasureFailed, erasure_id=event.erasure_id, reason=reason)
