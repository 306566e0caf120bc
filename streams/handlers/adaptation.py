"""Adaptation: once consent is verified and the samples are decided, build a new voice-profile version."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from infra.records import SampleRecord
from processors.audio.codec_quality import decode_audio, to_mono
from processors.errors import ProcessorError
from processors.voice.speaker import cosine_similarity
from processors.voice.profile import VoiceProfile, build_profile
from processors.voice.tiers import with_instant_voice
from schemas.envelope import Event
from schemas.events import (
    AdaptationFailed,
    AdaptationProgress,
    AdaptationRefinementRequested,
    AdaptationRequested,
    AnomalyDetected,
    VoiceReady,
)
from streams.context import StageContext
from streams.errors import WaitingForPrerequisites
from streams.handlers.common import claim_voice


async def adapt_voice(event: AdaptationRequested, context: StageContext) -> list[Event]:
    rejection = await claim_voice(event, context)
    if rejection:
        return [event.follow_up(AdaptationFailed, adaptation_id=event.adaptation_id, reason=rejection)]
    consent = await _require_consent(event, context)
    samples = await _decided_samples(event, context)
    accepted = [sample for sample in samples if sample.status == "accepted"]
    if not accepted:
        return await _fail(event, context, "none of the samples passed the quality gate")
    return await _build(event, context, accepted, consent)


# an instant voice's steps, each reported as done (its checks and storing follow, then voice.ready)
INSTANT_STEP_SAMPLES_READ, INSTANT_STEP_SPEAKER_EMBEDDED, INSTANT_STEP_VOICE_MATCHED = 1, 2, 3
INSTANT_STEPS = 4


async def _report(event: AdaptationRequested, context: StageContext, step: int) -> None:
    await context.report_progress(event.follow_up(
        AdaptationProgress, discriminator=f"instant:{step}", adaptation_id=event.adaptation_id, tier="instant",
        percent=round(100.0 * step / INSTANT_STEPS, 1), step=step, steps=INSTANT_STEPS))


async def _require_consent(event: AdaptationRequested, context: StageContext):
    consent = await context.repos.consents.current_for_voice(voice_id=event.voice_id, now=context.clock())
    if consent is None:
        await _wait(event, context, "waiting for a verified, unexpired consent of the voice owner")
    return consent


async def _decided_samples(event: AdaptationRequested, context: StageContext) -> list[SampleRecord]:
    if not event.sample_ids:
        rows = await context.repos.samples.accepted_for_voice(voice_id=event.voice_id)
        if not rows:
            await _wait(event, context, "waiting for an accepted sample")
        return rows
    decisions = await context.repos.samples.decisions(voice_id=event.voice_id, sample_ids=event.sample_ids)
    undecided = [str(s) for s in event.sample_ids if s not in decisions]
    if undecided:
        await _wait(event, context, f"waiting for samples {', '.join(undecided)} to pass ingest")
    return [decisions[s] for s in event.sample_ids]


async def _wait(event: AdaptationRequested, context: StageContext, reason: str):
    await context.repos.adaptations.record(
        adaptation_id=event.adaptation_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
        status="waiting", reason=reason, request=event.model_dump(mode="json"),
    )
    raise WaitingForPrerequisites(reason)


async def _build(event: AdaptationRequested, context: StageContext, accepted: list[SampleRecord],
                 consent) -> list[Event]:
    started = time.perf_counter()
    audio = [await _load_sample(context, sample.normalised_key) for sample in accepted]
    await _report(event, context, INSTANT_STEP_SAMPLES_READ)
    sample_rate_hz = audio[0][1]
    try:
        profile = await asyncio.to_thread(
            build_profile, [samples for samples, _ in audio], sample_rate_hz, context.models.encoder
        )
        await _report(event, context, INSTANT_STEP_SPEAKER_EMBEDDED)
        profile = await asyncio.to_thread(_with_instant_voice, profile, context)
    except ProcessorError as error:
        return await _fail(event, context, f"could not build a voice profile: {error}")
    await _report(event, context, INSTANT_STEP_VOICE_MATCHED)
    mismatch = await _spoken_consent_mismatch(consent, profile, context)
    if mismatch:
        return await _fail(event, context, mismatch)
    impersonation = await _protected_voice_alert(event, context, profile)
    if impersonation:
        return [impersonation, *await _fail(event, context, f"blocked: {impersonation.detail}")]
    borrowed = await _another_tenants_voice_alert(event, context, profile)
    if borrowed:
        return [borrowed, *await _fail(event, context, f"held for review: {borrowed.detail}; an operator can clear "
                                                        f"it (`voxflow voice clear-review {event.voice_id}`), then "
                                                        "send adaptation.requested again")]
    sample_ids = [sample.sample_id for sample in accepted]
    version = await context.repos.profiles.save(
        voice_id=event.voice_id, tenant_id=event.tenant_id, adaptation_id=event.adaptation_id, sample_ids=sample_ids,
        embedding=profile.embedding, profile=profile.to_dict(),
    )
    await context.repos.adaptations.record(
        adaptation_id=event.adaptation_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
        status="completed", request=event.model_dump(mode="json"),
    )
    inconsistent = [sample_ids[i] for i in profile.inconsistent_samples]
    ready = event.follow_up(
        VoiceReady, adaptation_id=event.adaptation_id, profile_version=version, sample_count=len(accepted),
        speech_s=round(sum(sample.speech_s or 0.0 for sample in accepted), 2),
        embedding_spread=round(float(profile.embedding_spread), 4), f0_median_hz=round(float(profile.f0_median_hz), 1),
        inconsistent_sample_ids=inconsistent, adaptation_s=round(time.perf_counter() - started, 3), tier="instant",
    )
    if profile.kokoro_voice is None or context.limits.refinement_steps == 0:
        return [ready]
    refinement = event.follow_up(AdaptationRefinementRequested, adaptation_id=event.adaptation_id,
                                 profile_version=version, steps=context.limits.refinement_steps)
    return [ready, refinement]


def _with_instant_voice(profile: VoiceProfile, context: StageContext) -> VoiceProfile:
    """The profile with its instant Kokoro voice, when Kokoro is the default engine."""
    if context.models.engine_name != "kokoro":
        return profile
    return with_instant_voice(profile, context.models.stock_voices)


async def _spoken_consent_mismatch(consent, profile, context: StageContext) -> str | None:
    statement = await context.repos.consents.statement_embedding(consent_id=consent.consent_id)
    if statement is None:
        return None
    similarity = cosine_similarity(np.asarray(statement, dtype=np.float32), profile.embedding)
    threshold = context.limits.spoken_consent_min_similarity
    if similarity >= threshold:
        return None
    return (f"the spoken consent statement is not by the sampled speaker "
            f"(voice similarity {similarity:.2f} < {threshold:.2f})")


async def _protected_voice_alert(event: AdaptationRequested, context: StageContext, profile) -> Event | None:
    """Samples that sound like a protected voice, uploaded under another voice id, are an impersonation attempt."""
    closest = await context.repos.profiles.closest_protected_voice(embedding=profile.embedding,
                                                                  other_than=event.voice_id)
    return _look_alike_alert(event, closest, context.limits.protected_voice_min_similarity, "protected_voice",
                             "protected voice {voice!r}")


async def _another_tenants_voice_alert(event: AdaptationRequested, context: StageContext, profile) -> Event | None:
    """A new voice that sounds like another tenant's voice may be borrowed consent: held until an operator clears it."""
    voice = await context.repos.voices.get_voice(voice_id=event.voice_id)
    if voice is not None and voice.review_cleared_at is not None:
        return None
    closest = await context.repos.profiles.closest_voice_of_another_tenant(embedding=profile.embedding,
                                                                          tenant_id=event.tenant_id)
    return _look_alike_alert(event, closest, context.limits.cross_tenant_min_similarity, "cross_tenant_voice",
                             "voice {voice!r} of another tenant")


def _look_alike_alert(event: AdaptationRequested, closest: tuple[str, float] | None, threshold: float, kind: str,
                      whose: str) -> Event | None:
    """A critical, blocking anomaly when the nearest voice (id, cosine) is at least ``threshold`` alike."""
    if closest is None or closest[1] < threshold:
        return None
    voice, similarity = closest
    detail = f"the samples sound like {whose.format(voice=voice)} (similarity {similarity:.2f})"
    return event.follow_up(AnomalyDetected, kind=kind, severity="critical", detail=detail, action="blocked")


async def _load_sample(context: StageContext, key: str) -> tuple[np.ndarray, int]:
    decoded = decode_audio(await context.store.get(key))
    return to_mono(decoded.samples), decoded.sample_rate_hz


async def fail_adaptation(event: AdaptationRequested, context: StageContext, reason: str) -> list[Event]:
    """The stage gave up on the request: record it failed, unless it already ended, and tell the caller."""
    if await context.repos.adaptations.status(adaptation_id=event.adaptation_id) in ("completed", "failed"):
        return []
    return await _fail(event, context, reason)


async def _fail(event: AdaptationRequested, context: StageContext, reason: str) -> list[Event]:
    await context.repos.adaptations.record(
        adaptation_id=event.adaptation_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
        status="failed", reason=reason, request=event.model_dump(mode="json"),
    )
    return [event.follow_up(AdaptationFailed, adaptation_id=event.adaptation_id, reason=reason)]
