"""Text to speech in a profiled voice: the engine interface and its WORLD-conversion implementation."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Real
from typing import Protocol

import numpy as np

from processors.constants import (
    CHUNK_PAUSE_MS,
    DEFAULT_WORDS_PER_MINUTE,
    EMOTION_PRESETS,
    ENERGY_DB_RANGE,
    FEMALE_BASE_VOICE_MIN_F0_HZ,
    PITCH_SEMITONES_RANGE,
    SPEED_RANGE,
)
from processors.synthesis.conversion import ProsodyAdjustment, convert_voice
from processors.errors import InvalidControlsError, UnsupportedLanguageError
from processors.synthesis.text import TextChunk, chunk_text
from processors.synthesis.base_voices import BaseTTS, VoiceGender
from processors.voice.profile import VoiceProfile


@dataclass(frozen=True)
class SynthesisControls:
    """What a caller may ask of the voice; ranges are checked on construction.

    ``speed`` 0.5-2.0 (tempo factor), ``pitch_semitones`` -12..12, ``energy_db`` -12..12, and an
    ``emotion`` preset (neutral, happy, sad, angry) that adds its own pitch, range, tempo and level.
    """

    speed: float = 1.0
    pitch_semitones: float = 0.0
    energy_db: float = 0.0
    emotion: str = "neutral"

    def __post_init__(self) -> None:
        _check_range("speed", self.speed, SPEED_RANGE)
        _check_range("pitch_semitones", self.pitch_semitones, PITCH_SEMITONES_RANGE)
        _check_range("energy_db", self.energy_db, ENERGY_DB_RANGE)
        if self.emotion not in EMOTION_PRESETS:
            raise InvalidControlsError(f"emotion must be one of {', '.join(EMOTION_PRESETS)}, got {self.emotion!r}")

    def prosody(self) -> ProsodyAdjustment:
        """The controls with the emotion preset folded in."""
        preset_pitch, preset_range, preset_speed, preset_energy = EMOTION_PRESETS[self.emotion]
        return ProsodyAdjustment(
            speed=self.speed * preset_speed,
            pitch_semitones=self.pitch_semitones + preset_pitch,
            pitch_range_scale=preset_range,
            energy_db=self.energy_db + preset_energy,
        )


@dataclass(frozen=True)
class SynthesisOutput:
    """float32 mono ``samples`` at ``sample_rate_hz``; ``rtf`` is compute time over audio duration."""

    samples: np.ndarray
    sample_rate_hz: int
    duration_s: float
    rtf: float


class SynthesisEngine(Protocol):
    """What the synthesis stage needs of an engine; a neural engine with local weights fits here too."""

    def synthesize(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> SynthesisOutput: ...

    def synthesize_chunks(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> Iterator[tuple[TextChunk, SynthesisOutput]]: ...

    def synthesize_chunk(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> SynthesisOutput: ...

    def check_language(self, language: str) -> None: ...


class SentenceChunkedEngine(ABC):
    """What every engine shares: a text is normalised, cut into sentence chunks, and each spoken by ``synthesize_chunk``."""

    def synthesize(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> SynthesisOutput:
        """The whole text as one utterance: chunks joined by ``CHUNK_PAUSE_MS`` pauses."""
        started = time.perf_counter()
        outputs = [output for _, output in self.synthesize_chunks(text, language, profile, controls)]
        pause = np.zeros(int(CHUNK_PAUSE_MS * outputs[0].sample_rate_hz / 1000), dtype=np.float32)
        pieces = [piece for output in outputs for piece in (pause, output.samples)][1:]
        return timed_output(np.concatenate(pieces), outputs[0].sample_rate_hz, started)

    def synthesize_chunks(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> Iterator[tuple[TextChunk, SynthesisOutput]]:
        """Chunk i of n with its speech, one at a time, for streaming; bad text or language fail before any audio."""
        self.check_language(language)
        for chunk in chunk_text(text):
            yield chunk, self.synthesize_chunk(chunk.text, language, profile, controls)

    @abstractmethod
    def synthesize_chunk(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> SynthesisOutput:
        """One short, already normalised piece of text (a :class:`TextChunk`'s ``text``)."""

    @abstractmethod
    def check_language(self, language: str) -> None:
        """Raise UnsupportedLanguageError unless the engine speaks ``language``."""


class WorldConversionEngine(SentenceChunkedEngine):
    """Speak with a base voice (espeak-ng, or Piper for English), then convert it to the profile's with WORLD.

    Text is normalised and spoken sentence chunk by sentence chunk, so long requests (up to
    ``MAX_REQUEST_TEXT_CHARACTERS``) work and can be streamed. With espeak, targets pitched above
    ``FEMALE_BASE_VOICE_MIN_F0_HZ`` start from its female variant, which leaves the conversion less to change.
    """

    def __init__(self, tts: BaseTTS, words_per_minute: int = DEFAULT_WORDS_PER_MINUTE) -> None:
        self._tts = tts
        self._words_per_minute = words_per_minute

    def synthesize_chunk(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> SynthesisOutput:
        """One short, already normalised piece of text (a :class:`TextChunk`'s ``text``)."""
        started = time.perf_counter()
        base_samples, base_rate_hz = self._tts.synthesize(
            text, language, self._words_per_minute, voice_gender=base_voice_gender(profile)
        )
        samples, sample_rate_hz = convert_voice(
            base_samples, base_rate_hz, profile, controls.prosody(), self._tts.spread_ratio_bounds(language)
        )
        return timed_output(samples, sample_rate_hz, started)

    def check_language(self, language: str) -> None:
        """Raise UnsupportedLanguageError unless a base voice speaks ``language``."""
        supported = self._tts.supported_languages()
        if language not in supported:
            raise UnsupportedLanguageError(
                f"no text-to-speech voice for language {language!r}; supported: {', '.join(sorted(supported))}"
            )


def base_voice_gender(profile: VoiceProfile) -> VoiceGender:
    """The base voice variant a target starts from: female above ``FEMALE_BASE_VOICE_MIN_F0_HZ``."""
    return "female" if profile.f0_median_hz >= FEMALE_BASE_VOICE_MIN_F0_HZ else "male"


def timed_output(samples: np.ndarray, sample_rate_hz: int, started: float) -> SynthesisOutput:
    duration_s = samples.size / sample_rate_hz
    return SynthesisOutput(
        samples=samples,
        sample_rate_hz=sample_rate_hz,
        duration_s=duration_s,
        rtf=(time.perf_counter() - started) / duration_s,
    )


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not isinstance(value, Real) or not np.isfinite(value) or not low <= value <= high:
        raise InvalidControlsError(f"{name} must be a number within {low}..{high}, got {value!r}")
