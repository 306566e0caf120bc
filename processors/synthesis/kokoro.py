"""Kokoro-82M speech: phoneme tokens and a style row in, 24 kHz speech out, through onnxruntime.

:class:`KokoroSynthesizer` runs the int8 ONNX model (one session, loaded once);
:class:`KokoroEngine` is the synthesis engine the stages and ``voxflow clone`` use: it speaks each
sentence chunk with the profile's Kokoro voice (an instant or refined blend of stock packs) and
applies the controls — speed natively, pitch and intonation range by a WORLD resynthesis, energy
as gain, gender as a direction in style space, and age as lower pitch, flatter intonation and a
longer vocal tract (the WORLD engine's age shift), by that same resynthesis.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyworld

from processors.audio.codec_quality import normalise_loudness
from processors.constants import (
    AGE_SHIFT_FORMANT_FACTOR,
    AGE_SHIFT_PITCH_RANGE_SCALE,
    AGE_SHIFT_SEMITONES,
    KOKORO_MAX_TOKENS,
    KOKORO_SAMPLE_RATE_HZ,
    KOKORO_STYLE_SIZE,
    KOKORO_TRIM_LEVEL,
    KOKORO_TRIM_PADDING_MS,
    TARGET_RMS_DBFS,
    WORLD_FRAME_PERIOD_MS,
)
from processors.errors import ExternalToolMissingError, InvalidTextError, SynthesisError, UnsupportedLanguageError
from processors.synthesis.engine import SentenceChunkedEngine, SynthesisControls, SynthesisOutput, timed_output
from processors.synthesis.conversion import SEMITONES_PER_OCTAVE, ProsodyAdjustment, warp_envelope
from processors.synthesis.kokoro_text import phoneme_tokens, supported_languages
from processors.voice.kokoro_voices import KokoroVoice, StockVoices, instant_voice
from processors.voice.profile import VoiceProfile
from processors.voice.speaker import SpeakerEncoder


class KokoroSynthesizer:
    """One onnxruntime session over Kokoro's ONNX model; ``render`` is thread-safe."""

    def __init__(self, model_path: Path, vocabulary: Mapping[str, int], cpu_threads: int = 2) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise ExternalToolMissingError("the Kokoro engine needs onnxruntime") from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cpu_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        self.vocabulary = dict(vocabulary)

    def tokens(self, text: str, language: str) -> list[int]:
        return phoneme_tokens(text, language, self.vocabulary)

    def render(self, tokens: list[int], style_table: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """float32 ``[n]`` speech at 24 kHz for 1..510 ``tokens`` with the row of ``style_table`` for their count."""
        if not 0 < len(tokens) <= KOKORO_MAX_TOKENS:
            raise InvalidTextError(f"Kokoro speaks 1-{KOKORO_MAX_TOKENS} phonemes at a time, got {len(tokens)}")
        style = np.asarray(style_table[len(tokens) - 1], dtype=np.float32).reshape(1, KOKORO_STYLE_SIZE)
        if not np.all(np.isfinite(style)):
            raise SynthesisError("the voice's style vector is not finite")
        try:
            (audio,) = self._session.run(None, {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": style,
                "speed": np.array([speed], dtype=np.float32),
            })
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise SynthesisError(f"Kokoro failed: {error}") from error
        return _trimmed(np.asarray(audio, dtype=np.float32).ravel())


class KokoroEngine(SentenceChunkedEngine):
    """Sentence chunks spoken by Kokoro in the profile's voice (English, and Malayalam from espeak-ng's IPA).

    A profile without a Kokoro voice (made before this engine) speaks with the instant voice
    nearest its speaker embedding.
    """

    def __init__(self, synthesizer: KokoroSynthesizer, stock: StockVoices) -> None:
        self._synthesizer = synthesizer
        self._stock = stock

    def synthesize_chunk(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> SynthesisOutput:
        started = time.perf_counter()
        self.check_language(language)
        voice = self.voice_of(profile)
        prosody = controls.prosody()
        samples = self._synthesizer.render(self._synthesizer.tokens(text, language), self._stock.style_table(voice),
                                           prosody.speed)
        return timed_output(_with_prosody(samples, _aged(prosody, voice.age_shift), voice.age_shift),
                            KOKORO_SAMPLE_RATE_HZ, started)

    def voice_of(self, profile: VoiceProfile) -> KokoroVoice:
        return profile.kokoro_voice or instant_voice(self._stock, profile.embedding)

    def check_language(self, language: str) -> None:
        if language not in supported_languages():
            raise UnsupportedLanguageError(
                f"Kokoro cannot speak language {language!r}; supported: {', '.join(sorted(supported_languages()))}"
            )


def embed_stock_packs(
    synthesizer: KokoroSynthesizer, encoder: SpeakerEncoder, stock: StockVoices, phrases: Sequence[str]
) -> np.ndarray:
    """Speaker embeddings ``[P, 256]`` of each stock pack speaking ``phrases`` (English), in ``stock.names`` order."""
    token_lists = [synthesizer.tokens(phrase, "en") for phrase in phrases]
    clips = []
    for name in stock.names:
        table = stock.table(name)
        clips.append(np.concatenate([synthesizer.render(tokens, table) for tokens in token_lists]))
    return encoder.embed_many(clips, KOKORO_SAMPLE_RATE_HZ)


def _aged(prosody: ProsodyAdjustment, age_shift: float) -> ProsodyAdjustment:
    return replace(
        prosody,
        pitch_semitones=prosody.pitch_semitones + AGE_SHIFT_SEMITONES * age_shift,
        pitch_range_scale=prosody.pitch_range_scale * AGE_SHIFT_PITCH_RANGE_SCALE**age_shift,
    )


def _with_prosody(samples: np.ndarray, prosody: ProsodyAdjustment, age_shift: float) -> np.ndarray:
    """Pitch, intonation range and vocal-tract length by WORLD resynthesis (only when asked), then the level."""
    formant_factor = AGE_SHIFT_FORMANT_FACTOR**age_shift
    if prosody.pitch_semitones != 0.0 or prosody.pitch_range_scale != 1.0 or formant_factor != 1.0:
        samples = _resynthesised(samples, prosody.pitch_semitones, prosody.pitch_range_scale, formant_factor)
    return normalise_loudness(samples, target_rms_dbfs=TARGET_RMS_DBFS + prosody.energy_db)


def _resynthesised(samples: np.ndarray, semitones: float, range_scale: float, formant_factor: float) -> np.ndarray:
    speech = samples.astype(np.float64)
    f0, times = pyworld.harvest(speech, KOKORO_SAMPLE_RATE_HZ, frame_period=WORLD_FRAME_PERIOD_MS)
    envelope = pyworld.cheaptrick(speech, f0, times, KOKORO_SAMPLE_RATE_HZ)
    if formant_factor != 1.0:
        envelope = np.ascontiguousarray(warp_envelope(envelope, formant_factor, KOKORO_SAMPLE_RATE_HZ))
    aperiodicity = pyworld.d4c(speech, f0, times, KOKORO_SAMPLE_RATE_HZ)
    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.log(f0[voiced])
        centre = np.median(log_f0)
        shifted = centre + (log_f0 - centre) * range_scale + semitones / SEMITONES_PER_OCTAVE * np.log(2.0)
        f0 = f0.copy()
        f0[voiced] = np.exp(shifted)
    output = pyworld.synthesize(f0, envelope, aperiodicity, KOKORO_SAMPLE_RATE_HZ, WORLD_FRAME_PERIOD_MS)
    return output[: samples.size].astype(np.float32)


def _trimmed(audio: np.ndarray) -> np.ndarray:
    loud = np.nonzero(np.abs(audio) > KOKORO_TRIM_LEVEL)[0]
    if loud.size == 0:
        raise SynthesisError("Kokoro produced silence for this text")
    padding = int(KOKORO_TRIM_PADDING_MS * KOKORO_SAMPLE_RATE_HZ / 1000)
    return audio[max(0, loud[0] - padding): loud[-1] + padding]
