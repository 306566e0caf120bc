"""Helpers several stages share."""

from __future__ import annotations

from infra.repositories import VoiceOwnedByAnotherTenant
from schemas.envelope import Event
from schemas.events import AdaptationRequested
from streams.context import StageContext


async def claim_voice(event: Event, context: StageContext) -> str | None:
    """Register the voice to the event's tenant; returns a rejection reason if another tenant owns it."""
    try:
        await context.repos.voices.ensure_voice(voice_id=event.voice_id, tenant_id=event.tenant_id)
    except VoiceOwnedByAnotherTenant as error:
        return str(error)
    return None


async def resend_waiting_adaptations(voice_id: str, context: StageContext) -> list[Event]:
    """Adaptations parked until consent or samples were decided get another look."""
    requests = await context.repos.adaptations.waiting_requests(voice_id=voice_id)
    return [AdaptationRequested.model_validate(request) for request in requests]


def sample_key(event: Event, sample_id, name: str) -> str:
    return f"samples/{event.tenant_id}/{event.voice_id}/{sample_id}/{name}"


def synthesis_key(event: Event, synthesis_id, name: str) -> str:
    return f"syntheses/{event.tenant_id}/{event.voice_id}/{synthesis_id}/{name}"
