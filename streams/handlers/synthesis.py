"""Synthesis: re-check rate windows, deny patterns and consent at request time, then speak the text
chunk by chunk.

A request is accepted once (consent uses claimed, the voice — or blend of voices — resolved into the
profile to speak with), then split into sentence chunks that travel as their own events, so the
first chunk can be played while later ones are still being made.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from infra.records import SynthesisChunk
from processors.synthesis import engine as synthesis_processors
from processors.trust.anomaly import AnomalyFinding, RateWindow, rate_window_finding
from processors.audio.codec_quality import decode_audio, encode_wav
from processors.trust.consent import check_consent_scope
from processors.errors import ProcessorError
from processors.voice.morph import morph_profiles, shift_voice
from processors.synthesis.text import chunk_text
from processors.voice.profile import VoiceProfile
from schemas.envelope import Event
from schemas.events import (
    AnomalyDetected,
    ConsentGranted,
    SynthesisChunkRequested,
    SynthesisFailed,
    SynthesisProduced,
    SynthesisRequested,
)
from streams.context import StageContext
from streams.handlers.common import stopped_by_revocation, synthesis_key
from streams.errors import ProtectedVoiceRequested, SynthesisRefused
from voxflow.envelopes import consent_document


async def accept_synthesis(event: SynthesisRequested, context: StageContext) -> list[Event]:
    existing = await context.repos.syntheses.get(synthesis_id=event.synthesis_id)
    if existing is not None:
        # a redelivery: never count consent uses twice; re-send the chunks of an accepted request
        return _chunk_requests(event, existing.text) if existing.status == "accepted" else []
    if await context.repos.voices.get_voice(voice_id=event.voice_id) is None:
        return await _fail(event, context, f"unknown voice {event.voice_id!r}", record=False)
    blocked = await _rate_block(event, context) or await _denied_text(event, context)
    if blocked:
        return blocked
    try:
        engine = context.models.engine_name_for(event.engine, event.language)
        context.models.engine_for(engine).check_language(event.language)
        chunks = chunk_text(event.text)
        profile, consents, version = await _resolve_voice(event, context)
    except ProtectedVoiceRequested as refusal:
        return await _blocked(event, context, "protected_voice", "critical", str(refusal))
    except (SynthesisRefused, ProcessorError) as refusal:
        return await _fail(event, context, str(refusal))
    try:
        # one unit of work: a retry after a crash never counts a use twice, and a blend whose second
        # consent is used up gives the first one's use back
        async with context.repos.transaction() as repos:
            for consent_id in consents:
                if not await repos.consents.claim_use(consent_id=consent_id):
                    raise _UseLimitReached(consent_id)
            await repos.syntheses.record_request(
                **_request_fields(event), status="accepted", consent_id=consents[0], profile_version=version,
                profile=profile.to_dict(), chunk_count=len(chunks), engine=engine,
            )
    except _UseLimitReached:
        return await _fail(event, context, "consent use limit reached")
    return _chunk_requests(event, event.text, chunks)


class _UseLimitReached(Exception):
    """Rolls the request's unit of work back: one of its consents has no use left."""


def _chunk_requests(event: SynthesisRequested, text: str, chunks=None) -> list[Event]:
    chunks = chunks or chunk_text(text)
    return [event.follow_up(SynthesisChunkRequested, discriminator=str(chunk.index), synthesis_id=event.synthesis_id,
                            chunk_index=chunk.index, chunk_count=chunk.count, text=chunk.text,
                            requested_at=event.occurred_at)
            for chunk in chunks]


async def _resolve_voice(event: SynthesisRequested, context: StageContext):
    """The profile to speak with, the consents it draws on, and the primary voice's profile version."""
    weights = {w.voice_id: w.weight for w in event.voice_mix} or {event.voice_id: 1.0}
    profiles, consents, versions = [], [], []
    for voice_id in weights:
        consent_id, profile, version = await consented_profile(
            context, tenant_id=event.tenant_id, voice_id=voice_id, purpose=event.purpose, language=event.language)
        profiles.append(profile)
        consents.append(consent_id)
        versions.append(version)
    profile = profiles[0] if len(profiles) == 1 else morph_profiles(profiles, list(weights.values()))
    controls = event.controls
    if controls.gender_shift or controls.age_shift:
        profile = shift_voice(profile, gender=controls.gender_shift, age=controls.age_shift)
    return profile, consents, versions[0]


async def consented_profile(context: StageContext, *, tenant_id: str, voice_id: str, purpose: str, language: str):
    """(consent id, profile, profile version) of a voice of ``tenant_id`` whose consent covers ``purpose`` and
    ``language`` now; ``SynthesisRefused`` (or ``ProtectedVoiceRequested``) saying why not. Every stage that
    speaks in a voice asks this."""
    voice = await context.repos.voices.get_voice(voice_id=voice_id)
    if voice is None or voice.tenant_id != tenant_id:
        raise SynthesisRefused(f"unknown voice {voice_id!r}")
    if voice.protected:
        raise ProtectedVoiceRequested(f"voice {voice_id!r} is protected: it may not be cloned")
    consent = await context.repos.consents.current_for_voice(voice_id=voice_id, now=context.clock())
    if consent is None:
        raise SynthesisRefused(f"no verified, unexpired consent for voice {voice_id!r}")
    violations = check_consent_scope(
        consent_document(ConsentGranted.model_validate(consent.document)),
        purpose=purpose, language=language, now=context.clock(), uses_so_far=consent.uses,
    )
    if violations:
        raise SynthesisRefused(f"consent for voice {voice_id!r} does not allow this: " + "; ".join(violations))
    row = await context.repos.profiles.latest(voice_id=voice_id)
    if row is None:
        raise SynthesisRefused(f"voice {voice_id!r} not ready: no voice profile yet (send adaptation.requested)")
    return consent.consent_id, VoiceProfile.from_dict(row.profile), row.version


async def _rate_block(event: SynthesisRequested, context: StageContext) -> list[Event] | None:
    finding = await over_rate_window(context, tenant_id=event.tenant_id, voice_id=event.voice_id,
                                     requested_at=event.occurred_at)
    return None if finding is None else await _blocked(event, context, finding.kind, finding.severity, finding.detail)


async def over_rate_window(context: StageContext, *, tenant_id: str, voice_id: str,
                           requested_at: datetime) -> AnomalyFinding | None:
    """The finding of a request over its tenant's rate window, or else its voice's; None within both. Syntheses
    and dubs count alike: both are speech in the voice."""
    limits, now = context.limits, context.clock()
    windows = (RateWindow("tenant", tenant_id, limits.synthesis_rate_limit, limits.synthesis_rate_window_s),
               RateWindow("voice", voice_id, limits.voice_synthesis_rate_limit, limits.voice_synthesis_rate_window_s))
    for window in windows:
        recent = await _request_times(window, context, since=now - timedelta(seconds=window.window_s))
        finding = rate_window_finding(window, [*recent, requested_at], now=now)
        if finding is not None:
            return finding
    return None


async def _request_times(window: RateWindow, context: StageContext, *, since):
    if window.scope == "tenant":
        return await context.repos.syntheses.request_times_since(tenant_id=window.subject_id, since=since)
    return await context.repos.syntheses.voice_request_times_since(voice_id=window.subject_id, since=since)


async def _denied_text(event: SynthesisRequested, context: StageContext) -> list[Event] | None:
    """The refusal of a text matching a deny pattern; it names the pattern, never the text."""
    pattern = await asyncio.to_thread(context.limits.text_policy.denied_by, event.text)  # 200,000 chars: ~50 ms
    if pattern is None:
        return None
    return await _blocked(event, context, "denied_text", "warning", f"the text matches deny pattern {pattern!r}")


async def _blocked(event: SynthesisRequested, context: StageContext, kind: str, severity: str,
                   detail: str) -> list[Event]:
    anomaly = event.follow_up(AnomalyDetected, kind=kind, severity=severity, detail=detail, action="blocked")
    return [anomaly, *await _fail(event, context, f"blocked: {detail}")]


async def synthesize_chunk(event: SynthesisChunkRequested, context: StageContext) -> list[Event]:
    synthesis = await context.repos.syntheses.get(synthesis_id=event.synthesis_id)
    if synthesis is None:
        return []
    stopped = await stopped_by_revocation(event, synthesis, context)
    if stopped is not None:
        return stopped
    if synthesis.status != "accepted":
        return []
    recorded = await context.repos.syntheses.chunk(synthesis_id=event.synthesis_id, chunk_index=event.chunk_index)
    if recorded is not None:
        return [] if recorded.released_at else [await _produced_again(event, context, recorded)]
    profile = VoiceProfile.from_dict(synthesis.profile)
    controls = synthesis_processors.SynthesisControls(
        **{k: v for k, v in synthesis.controls.items() if k not in ("gender_shift", "age_shift")}
    )
    try:
        output = await asyncio.to_thread(
            context.models.engine_for(synthesis.engine).synthesize_chunk, event.text, synthesis.language, profile,
            controls
        )
    except ProcessorError as error:
        await context.repos.syntheses.mark_failed(synthesis_id=event.synthesis_id, reason=str(error))
        return [event.follow_up(SynthesisFailed, synthesis_id=event.synthesis_id,
                                reason=f"chunk {event.chunk_index + 1} of {event.chunk_count}: {error}")]
    raw_key = synthesis_key(event, event.synthesis_id, f"chunk-{event.chunk_index:04d}.unmarked.wav")
    await context.store.put(raw_key, encode_wav(output.samples, output.sample_rate_hz), content_type="audio/wav")
    await context.repos.syntheses.record_chunk(synthesis_id=event.synthesis_id, chunk_index=event.chunk_index,
                                               raw_key=raw_key, duration_s=output.duration_s,
                                               compute_s=output.rtf * output.duration_s)
    return [_produced(event, raw_key=raw_key, sample_rate_hz=output.sample_rate_hz, duration_s=output.duration_s,
                      rtf=output.rtf)]


async def _produced_again(event: SynthesisChunkRequested, context: StageContext,
                          chunk: SynthesisChunk) -> SynthesisProduced:
    """The ``synthesis.produced`` of a chunk recorded by an earlier delivery (the worker stopped, or the broker
    refused the send, before it went out): the same event again, or the request would never end."""
    raw = decode_audio(await context.store.get(chunk.raw_key))
    return _produced(event, raw_key=chunk.raw_key, sample_rate_hz=raw.sample_rate_hz,
                     duration_s=chunk.duration_s, rtf=chunk.compute_s / max(chunk.duration_s, 1e-9))


def _produced(event: SynthesisChunkRequested, *, raw_key: str, sample_rate_hz: int, duration_s: float,
              rtf: float) -> SynthesisProduced:
    return event.follow_up(
        SynthesisProduced, synthesis_id=event.synthesis_id, chunk_index=event.chunk_index,
        chunk_count=event.chunk_count, raw_key=raw_key, sample_rate_hz=sample_rate_hz,
        duration_s=round(duration_s, 3), rtf=round(rtf, 4), requested_at=event.requested_at,
    )


async def fail_synthesis(
    event: SynthesisRequested | SynthesisChunkRequested | SynthesisProduced, context: StageContext, reason: str
) -> list[Event]:
    """A stage gave up on one of the request's events: the request ends failed, unless it already ended."""
    existing = await context.repos.syntheses.get(synthesis_id=event.synthesis_id)
    if existing is None and isinstance(event, SynthesisRequested):
        return await _fail(event, context, reason)
    if existing is not None and existing.status in ("completed", "failed"):
        return []
    if existing is not None:
        await context.repos.syntheses.mark_failed(synthesis_id=event.synthesis_id, reason=reason)
    return [event.follow_up(SynthesisFailed, synthesis_id=event.synthesis_id, reason=reason)]


def _request_fields(event: SynthesisRequested) -> dict:
    return dict(synthesis_id=event.synthesis_id, voice_id=event.voice_id, tenant_id=event.tenant_id, text=event.text,
                language=event.language, purpose=event.purpose, controls=event.controls.model_dump(),
                requested_at=event.occurred_at, correlation_id=event.correlation_id, request_event_id=event.event_id)


async def _fail(event: SynthesisRequested, context: StageContext, reason: str, *, record: bool = True) -> list[Event]:
    if record:
        await context.repos.syntheses.record_request(**_request_fields(event), status="failed", reason=reason)
    return [event.follow_up(SynthesisFailed, synthesis_id=event.synthesis_id, reason=reason)]
