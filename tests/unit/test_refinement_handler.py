"""The refinement stage with in-memory repositories and a stand-in fit: what an app sees of the refined tier."""

from __future__ import annotations

import uuid
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from infra.refiner import StyleFit
from processors.errors import FittingDivergedError
from schemas.events import AdaptationRefinementRequested
from streams.context import StageContext
from streams.handlers.refinement import refine_voice
from tests.unit.fakes import CollectedProgress, FakeCurrentConsents, FakeProfiles, InMemoryStore, a_consent


class OffsetRefiner:
    """Reports each step, then returns ``offset`` (or raises ``error``) as the child process would."""

    def __init__(self, offset: np.ndarray | None = None, error: Exception | None = None):
        self.offset, self.error = offset, error

    async def refine(self, *, style_table, target_embedding, phrases, steps, on_progress):
        for step in range(1, steps + 1):
            await on_progress(step, steps, 0.7 + 0.01 * step)
        if self.error is not None:
            raise self.error
        return StyleFit(self.offset, 0.7, 0.7 + 0.01 * steps, steps, 1.5)


@pytest.fixture
def stored(english_kokoro_profile):
    profiles = FakeProfiles()
    return profiles, english_kokoro_profile


def refinement_context(profiles, refiner, transcriber, kokoro_engine, kokoro_synthesizer, stock_voices):
    models = SimpleNamespace(kokoro=kokoro_synthesizer, stock_voices=stock_voices, transcriber=transcriber,
                             engine_for=lambda name: kokoro_engine)
    repos = SimpleNamespace(profiles=profiles, consents=FakeCurrentConsents(a_consent()))
    return StageContext(repos=repos, store=InMemoryStore(), watermark_key=b"k" * 32, models=models, refiner=refiner,
                        progress=CollectedProgress())


class EchoTranscriber:
    """Transcribes every render as the sentence it was asked for, except those it is told to garble."""

    def __init__(self, garble_after: int | None = None):
        self.calls, self.garble_after = 0, garble_after

    def transcribe(self, samples, sample_rate_hz, language="en"):
        from processors.constants import REFINEMENT_CHECK_SENTENCES

        sentence = REFINEMENT_CHECK_SENTENCES[self.calls % len(REFINEMENT_CHECK_SENTENCES)]
        self.calls += 1
        garbled = self.garble_after is not None and self.calls > self.garble_after
        return "mumble" if garbled else sentence


async def saved_instant(profiles: FakeProfiles, profile) -> AdaptationRefinementRequested:
    adaptation_id = uuid.uuid4()
    version = await profiles.save(voice_id="v1", tenant_id="t", adaptation_id=adaptation_id, sample_ids=[uuid.uuid4()],
                                  embedding=profile.embedding, profile=profile.to_dict())
    return AdaptationRefinementRequested(tenant_id="t", voice_id="v1", adaptation_id=adaptation_id,
                                         profile_version=version, steps=3)


async def test_a_kept_fit_is_a_new_refined_version_with_progress_on_the_way(
    stored, kokoro_engine, kokoro_synthesizer, stock_voices
):
    profiles, profile = stored
    request = await saved_instant(profiles, profile)
    offset = np.zeros(256, dtype=np.float32)
    offset[:4] = 0.01
    context = refinement_context(profiles, OffsetRefiner(offset), EchoTranscriber(), kokoro_engine,
                                 kokoro_synthesizer, stock_voices)

    (ready,) = await refine_voice(request, context)

    assert ready.type == "voice.ready" and ready.tier == "refined" and ready.profile_version == 2
    assert ready.similarity_objective == pytest.approx(0.73)
    assert [event.percent for event in context.progress.events] == [33.3, 66.7, 100.0]
    refined = profiles.rows[("v1", 2)].profile["kokoro_voice"]["style_offset"]
    assert refined[:4] == pytest.approx([0.01] * 4) and refined[4:] == [0.0] * 252
    assert (await refine_voice(request, context))[0].profile_version == 2  # a redelivery saves nothing new


async def test_a_diverged_fit_keeps_the_instant_voice(stored, kokoro_engine, kokoro_synthesizer, stock_voices):
    profiles, profile = stored
    request = await saved_instant(profiles, profile)
    context = refinement_context(profiles, OffsetRefiner(error=FittingDivergedError("objective became NaN")),
                                 EchoTranscriber(), kokoro_engine, kokoro_synthesizer, stock_voices)

    (failed,) = await refine_voice(request, context)

    assert failed.type == "adaptation.failed" and failed.tier == "refined" and "NaN" in failed.reason
    assert ("v1", 2) not in profiles.rows


async def test_a_fit_that_costs_words_is_not_kept(stored, kokoro_engine, kokoro_synthesizer, stock_voices):
    profiles, profile = stored
    request = await saved_instant(profiles, profile)
    context = refinement_context(profiles, OffsetRefiner(np.zeros(256, dtype=np.float32)),
                                 EchoTranscriber(garble_after=2), kokoro_engine, kokoro_synthesizer, stock_voices)

    (failed,) = await refine_voice(request, context)

    assert failed.type == "adaptation.failed" and "lost words" in failed.reason
    assert ("v1", 2) not in profiles.rows


async def test_a_voice_whose_consent_lapsed_is_not_refined(stored, kokoro_engine, kokoro_synthesizer, stock_voices):
    profiles, profile = stored
    request = await saved_instant(profiles, profile)
    context = refinement_context(profiles, OffsetRefiner(np.zeros(256, dtype=np.float32)), EchoTranscriber(),
                                 kokoro_engine, kokoro_synthesizer, stock_voices)
    context.repos.consents.current = None

    (failed,) = await refine_voice(request, context)

    assert failed.type == "adaptation.failed" and "consent" in failed.reason


async def test_a_profile_made_before_kokoro_is_not_refined(stored, kokoro_engine, kokoro_synthesizer, stock_voices):
    profiles, profile = stored
    request = await saved_instant(profiles, replace(profile, kokoro_voice=None))
    context = refinement_context(profiles, OffsetRefiner(), EchoTranscriber(), kokoro_engine, kokoro_synthesizer,
                                 stock_voices)

    (failed,) = await refine_voice(request, context)

    assert "no Kokoro voice" in failed.reason
