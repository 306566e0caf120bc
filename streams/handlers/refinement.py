"""Refinement: fit the instant voice's Kokoro style to the speaker, and keep it only if it stays intelligible.

The fit runs in its own process (torch); while it runs, ``adaptation.progress`` events report how
far it is. A kept fit becomes a new profile version and a second ``voice.ready`` (tier "refined");
a fit that fails, diverges or costs words is reported as ``adaptation.failed`` (tier "refined"),
and the instant version stays the voice's latest.
"""

from __future__ import annotations

import asyncio
import uuid

from processors.errors import ProcessorError
from processors.voice.profile import VoiceProfile
from processors.voice.tiers import intelligibility, keeps_its_words, refinement_phrases, with_fitted_offset
from schemas.envelope import Event
from schemas.events import AdaptationFailed, AdaptationProgress, AdaptationRefinementRequested, VoiceReady
from streams.context import StageContext

REFINED_TIER = "refined"


async def refine_voice(event: AdaptationRefinementRequested, context: StageContext) -> list[Event]:
    row = await context.repos.profiles.version(voice_id=event.voice_id, version=event.profile_version)
    if row is None:
        return [_failed(event, f"profile version {event.profile_version} does not exist")]
    if await context.repos.consents.current_for_voice(voice_id=event.voice_id, now=context.clock()) is None:
        return [_failed(event, "the voice no longer has a verified, unexpired consent")]
    profile = VoiceProfile.from_dict(row.profile)
    if profile.kokoro_voice is None:
        return [_failed(event, "the profile has no Kokoro voice to refine")]
    try:
        refined, fit = await _fit(event, context, profile)
        wer_instant, wer_refined = await asyncio.to_thread(_intelligibility, context, profile, refined)
    except ProcessorError as error:
        return [_failed(event, f"the style fit failed: {error}")]
    if not keeps_its_words(wer_instant, wer_refined, context.limits.refinement_max_wer_increase):
        return [_failed(event, f"the refined voice lost words (WER {wer_refined:.1%} against the instant voice's "
                               f"{wer_instant:.1%}); the instant voice stays")]
    version = await context.repos.profiles.save(
        voice_id=event.voice_id, tenant_id=event.tenant_id, adaptation_id=uuid.uuid5(event.adaptation_id, REFINED_TIER),
        sample_ids=list(row.sample_ids), embedding=profile.embedding, profile=refined.to_dict(),
    )
    return [event.follow_up(
        VoiceReady, adaptation_id=event.adaptation_id, profile_version=version, sample_count=len(row.sample_ids),
        speech_s=round(profile.speech_duration_s, 2), embedding_spread=round(float(profile.embedding_spread), 4),
        f0_median_hz=round(float(profile.f0_median_hz), 1), adaptation_s=round(fit.seconds, 3), tier=REFINED_TIER,
        similarity_objective=round(fit.similarity_after, 4),
    )]


async def _fit(event: AdaptationRefinementRequested, context: StageContext, profile: VoiceProfile):
    async def report(step: int, steps: int, similarity: float) -> None:
        await context.report_progress(event.follow_up(
            AdaptationProgress, discriminator=str(step), adaptation_id=event.adaptation_id, tier=REFINED_TIER,
            percent=round(100.0 * step / steps, 1), step=step, steps=steps,
            similarity_objective=round(similarity, 4),
        ))

    fit = await context.refiner.refine(
        style_table=context.models.stock_voices.style_table(profile.kokoro_voice), target_embedding=profile.embedding,
        phrases=refinement_phrases(context.models.kokoro), steps=event.steps, on_progress=report,
    )
    return with_fitted_offset(profile, fit.style_offset), fit


def _intelligibility(context: StageContext, instant: VoiceProfile, refined: VoiceProfile) -> tuple[float, float]:
    return intelligibility(context.models.engine_for("kokoro"), context.models.transcriber, (instant, refined))


async def fail_refinement(event: AdaptationRefinementRequested, context: StageContext, reason: str) -> list[Event]:
    """The stage gave up on the fit: the caller learns why; the instant voice stays the latest."""
    return [_failed(event, reason)]


def _failed(event: AdaptationRefinementRequested, reason: str) -> AdaptationFailed:
    return event.follow_up(AdaptationFailed, adaptation_id=event.adaptation_id, reason=reason, tier=REFINED_TIER)
