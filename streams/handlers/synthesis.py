"""Synthesis: re-check consent and rate limits at request time, then speak the text in the voice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from processors import synthesis as synthesis_processors
from processors.anomaly import rate_exceeded
from processors.audio import encode_wav
from processors.consent import check_consent_scope
from processors.errors import ProcessorError
from processors.speaker import cosine_similarity
from processors.voice_profile import VoiceProfile
from schemas.envelope import Event
from schemas.events import AnomalyDetected, ConsentGranted, SynthesisFailed, SynthesisProduced, SynthesisRequested
from streams.context import StageContext
from streams.handlers.common import synthesis_key
from streams.handlers.consent import consent_document


async def synthesize_speech(event: SynthesisRequested, context: StageContext) -> list[Event]:
    existing = await context.repos.syntheses.get(synthesis_id=event.synthesis_id)
    if existing is not None and existing["status"] != "accepted":
        return []  # already decided: a redelivery must not synthesise or count a consent use twice
    if existing is None:
        refusal = await _refusal(event, context)
        if refusal:
            return refusal
    return await _produce(event, context)


async def _refusal(event: SynthesisRequested, context: StageContext) -> list[Event] | None:
    if await context.repos.voices.get_voice(voice_id=event.voice_id) is None:
        return await _fail(event, context, f"unknown voice {event.voice_id!r}", record=False)
    blocked = await _rate_block(event, context)
    if blocked:
        return blocked
    consent = await context.repos.consents.current_for_voice(voice_id=event.voice_id, now=context.clock())
    if consent is None:
        return await _fail(event, context, "no verified, unexpired consent for this voice")
    violations = check_consent_scope(
        consent_document(ConsentGranted.model_validate(consent["document"])),
        purpose=event.purpose, language=event.language, now=context.clock(), uses_so_far=consent["uses"],
    )
    if violations:
        return await _fail(event, context, "consent does not allow this: " + "; ".join(violations))
    profile_row = await context.repos.profiles.latest(voice_id=event.voice_id)
    if profile_row is None:
        return await _fail(event, context, "voice not ready: no voice profile yet (send adaptation.requested)")
    if not await context.repos.consents.claim_use(consent_id=consent["consent_id"]):
        return await _fail(event, context, "consent use limit reached")
    await _record(event, context, "accepted", consent_id=consent["consent_id"], profile_version=profile_row["version"])
    return None


async def _rate_block(event: SynthesisRequested, context: StageContext) -> list[Event] | None:
    now = context.clock()
    window_s = context.limits.synthesis_rate_window_s
    recent = await context.repos.syntheses.request_times_since(
        tenant_id=event.tenant_id, since=now - timedelta(seconds=window_s)
    )
    if not rate_exceeded([*recent, event.occurred_at], now=now, window_s=window_s,
                         limit=context.limits.synthesis_rate_limit):
        return None
    detail = (f"tenant {event.tenant_id!r} sent more than {context.limits.synthesis_rate_limit} synthesis "
              f"requests in {window_s:g} s")
    anomaly = event.follow_up(AnomalyDetected, kind="rate_exceeded", severity="warning", detail=detail, action="blocked")
    return [anomaly, *await _fail(event, context, f"blocked: {detail}")]


async def _produce(event: SynthesisRequested, context: StageContext) -> list[Event]:
    profile_row = await context.repos.profiles.latest(voice_id=event.voice_id)
    profile = VoiceProfile.from_dict(profile_row["profile"])
    try:
        controls = synthesis_processors.SynthesisControls(**event.controls.model_dump())
        output = await asyncio.to_thread(
            context.models.engine.synthesize, event.text, event.language, profile, controls
        )
    except ProcessorError as error:
        return await _fail(event, context, str(error))
    similarity = await asyncio.to_thread(_similarity_to_profile, context, output, profile)
    raw_key = synthesis_key(event, event.synthesis_id, "unmarked.wav")
    await context.store.put(raw_key, encode_wav(output.samples, output.sample_rate_hz), content_type="audio/wav")
    await context.repos.syntheses.mark_produced(
        synthesis_id=event.synthesis_id, raw_key=raw_key, rtf=output.rtf, duration_s=output.duration_s
    )
    return [event.follow_up(
        SynthesisProduced, synthesis_id=event.synthesis_id, raw_key=raw_key, sample_rate_hz=output.sample_rate_hz,
        duration_s=round(output.duration_s, 3), rtf=round(output.rtf, 4), requested_at=event.occurred_at,
        speaker_similarity=similarity,
    )]


def _similarity_to_profile(context: StageContext, output, profile: VoiceProfile) -> float | None:
    try:
        embedding = context.models.encoder.embed(output.samples, output.sample_rate_hz)
    except ProcessorError:
        return None
    return round(float(cosine_similarity(embedding, profile.embedding)), 4)


async def _record(event: SynthesisRequested, context: StageContext, status: str, **fields) -> None:
    await context.repos.syntheses.record_request(
        synthesis_id=event.synthesis_id, voice_id=event.voice_id, tenant_id=event.tenant_id, text=event.text,
        language=event.language, purpose=event.purpose, controls=event.controls.model_dump(),
        requested_at=event.occurred_at, status=status, **fields,
    )


async def _fail(event: SynthesisRequested, context: StageContext, reason: str, *, record: bool = True) -> list[Event]:
    if record:
        await _record(event, context, "failed", reason=reason)
        await context.repos.syntheses.mark_failed(synthesis_id=event.synthesis_id, reason=reason)
    return [event.follow_up(SynthesisFailed, synthesis_id=event.synthesis_id, reason=reason)]
