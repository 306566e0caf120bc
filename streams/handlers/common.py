"""Helpers several stages share."""

from __future__ import annotations

import uuid

from infra.encrypted_store import INBOX_AREAS
from infra.records import SynthesisRecord
from schemas.envelope import Event
from schemas.events import AdaptationRequested, SynthesisFailed
from streams.context import StageContext

REVOKED_MID_STREAM = "consent revoked"


async def claim_voice(event: Event, context: StageContext) -> str | None:
    """Register the voice to the event's tenant; returns a rejection reason if another tenant owns it or it was erased."""
    (refusal,) = await claim_voices([event], context)
    return refusal


async def resend_waiting_adaptations(voice_id: str, context: StageContext) -> list[Event]:
    """Adaptations parked until consent or samples were decided get another look."""
    return (await waiting_adaptations_by_voice([voice_id], context)).get(voice_id, [])


async def claim_voices(events: list[Event], context: StageContext) -> list[str | None]:
    """``claim_voice`` for each of ``events`` in one query, as if claimed one after the other."""
    refusals = await context.repos.voices.ensure_voices(claims=[(e.voice_id, e.tenant_id) for e in events])
    return [None if refusal is None else str(refusal) for refusal in refusals]


async def waiting_adaptations_by_voice(voice_ids: list[str], context: StageContext) -> dict[str, list[Event]]:
    """What ``resend_waiting_adaptations`` re-sends for each of ``voice_ids``, in one query."""
    if not voice_ids:
        return {}
    waiting = await context.repos.adaptations.waiting_requests_by_voice(voice_ids=sorted(set(voice_ids)))
    return {voice_id: [AdaptationRequested.model_validate(request) for request in requests]
            for voice_id, requests in waiting.items()}


async def keep_sealed(context: StageContext, key: str, data: bytes) -> None:
    """An app without voxflow's keys puts plaintext in the inbox areas (uploads, consent statements,
    detection checks): once a stage has read it, the object is written back sealed."""
    if key.split("/", 1)[0] in INBOX_AREAS:
        await context.store.put(key, data)


def sample_key(event: Event, sample_id, name: str) -> str:
    return f"samples/{event.tenant_id}/{event.voice_id}/{sample_id}/{name}"


def synthesis_key(event: Event, synthesis_id, name: str) -> str:
    return f"syntheses/{event.tenant_id}/{event.voice_id}/{synthesis_id}/{name}"


async def stopped_by_revocation(event: Event, synthesis: SynthesisRecord, context: StageContext) -> list[Event] | None:
    """The request's end when its consent was revoked after it was accepted; None while the consent stands.

    Chunks already released stay released; none after the revocation is. Both the synthesis and the
    watermark stage may notice first, and a crash may repeat the notice: the failure keeps one event
    id per request, so consumers that skip ids they have seen see it once.
    """
    if synthesis.status == "failed" and (synthesis.reason or "").startswith(REVOKED_MID_STREAM):
        return [_revocation_failure(event, synthesis, synthesis.reason)]
    if synthesis.status != "accepted" or synthesis.consent_id is None:
        return None
    consent = await context.repos.consents.get(consent_id=synthesis.consent_id)
    if consent is None or consent.status != "revoked":
        return None
    reason = (f"{REVOKED_MID_STREAM} at {consent.revoked_at.isoformat()} (consent {synthesis.consent_id}): "
              "chunks not released by then were stopped")
    await context.repos.syntheses.mark_failed(synthesis_id=synthesis.synthesis_id, reason=reason)
    return [_revocation_failure(event, synthesis, reason)]


def _revocation_failure(event: Event, synthesis: SynthesisRecord, reason: str) -> SynthesisFailed:
    return stopped_synthesis_failure(event, synthesis.synthesis_id, "consent-revoked", reason)


def stopped_synthesis_failure(event: Event, synthesis_id: uuid.UUID, cause: str, reason: str) -> SynthesisFailed:
    """The failure of an accepted synthesis stopped midway (``cause``: why, e.g. "blocked"), under one event id
    per request and cause: whichever stage notices first, and every redelivery, sends the same one."""
    return event.request_follow_up(SynthesisFailed, synthesis_id, discriminator=cause, synthesis_id=synthesis_id,
                                   reason=reason)
