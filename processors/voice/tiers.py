"""The steps from a speaker's profile to its instant and refined Kokoro voices, shared by the stages and ``voxflow clone``.

The style fit itself runs elsewhere (``processors.voice.refinement``, in its own process, with
torch); these are the pure steps around it: what it is asked to fit, how its result becomes the
voice, and the intelligibility check that decides whether the refined voice is kept.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from processors.constants import REFINEMENT_CHECK_SENTENCES, REFINEMENT_MAX_WER_INCREASE, REFINEMENT_PHRASES
from processors.scoring.quality import WhisperTranscriber, mean_word_error_rate
from processors.synthesis.engine import SynthesisControls, SynthesisEngine
from processors.synthesis.kokoro import KokoroSynthesizer
from processors.voice.kokoro_voices import StockVoices, instant_voice
from processors.voice.profile import VoiceProfile


def with_instant_voice(profile: VoiceProfile, stock: StockVoices) -> VoiceProfile:
    """The profile speaking with the blend of stock packs nearest its speaker embedding."""
    return replace(profile, kokoro_voice=instant_voice(stock, profile.embedding))


def refinement_phrases(synthesizer: KokoroSynthesizer) -> list[list[int]]:
    """Token ids of the phrases the style fit renders (English)."""
    return [synthesizer.tokens(phrase, "en") for phrase in REFINEMENT_PHRASES]


def with_fitted_offset(profile: VoiceProfile, fitted_offset: np.ndarray) -> VoiceProfile:
    """The profile whose Kokoro voice has the fit's offset added to its own."""
    voice = profile.kokoro_voice
    return replace(profile, kokoro_voice=voice.with_offset(np.asarray(voice.style_offset) + fitted_offset))


def intelligibility(
    engine: SynthesisEngine, transcriber: WhisperTranscriber, profiles: tuple[VoiceProfile, ...]
) -> tuple[float, ...]:
    """Whisper's mean WER on ``REFINEMENT_CHECK_SENTENCES`` spoken by each profile."""

    def wer_of(profile: VoiceProfile) -> float:
        def speak(sentence: str) -> tuple[np.ndarray, int]:
            output = engine.synthesize(sentence, "en", profile, SynthesisControls())
            return output.samples, output.sample_rate_hz

        return mean_word_error_rate(speak, transcriber, REFINEMENT_CHECK_SENTENCES)

    return tuple(wer_of(profile) for profile in profiles)


def keeps_its_words(wer_instant: float, wer_refined: float, max_increase: float = REFINEMENT_MAX_WER_INCREASE) -> bool:
    """Whether a refined voice may replace the instant one: its WER at most ``max_increase`` above the instant's."""
    return wer_refined <= wer_instant + max_increase
