"""Text to speech in a profiled voice: the engine interface and its WORLD-conversion implementation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from numbers import Real
from typing import Protocol

import numpy as np

from processors.constants import (
    DEFAULT_WORDS_PER_MINUTE,
    EMOTION_PRESETS,
    ENERGY_DB_RANGE,
    FEMALE_BASE_VOICE_MIN_F0_HZ,
    PITCH_SEMITONES_RANGE,
    SPEED_RANGE,
)
from processors.conversion import ProsodyAdjustment, convert_voice
from processors.errors import InvalidControlsError
from processors.tts import EspeakTTS
from processors.voice_profile import VoiceProfile


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
    def synthesize(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> SynthesisOutput: ...


class WorldConversionEngine:
    """Speak with espeak-ng, then convert that voice to the profile's with WORLD.

    The base voice is espeak's female variant for targets pitched above
    ``FEMALE_BASE_VOICE_MIN_F0_HZ``, which leaves the conversion less to change.
    """

    def __init__(self, tts: EspeakTTS, words_per_minute: int = DEFAULT_WORDS_PER_MINUTE) -> None:
        self._tts = tts
        self._words_per_minute = words_per_minute

    def synthesize(
        self, text: str, language: str, profile: VoiceProfile, controls: SynthesisControls
    ) -> SynthesisOutput:
        started = time.perf_counter()
        gender = "female" if profile.f0_median_hz >= FEMALE_BASE_VOICE_MIN_F0_HZ else "male"
        base_samples, base_rate_hz = self._tts.synthesize(text, language, self._words_per_minute, voice_gender=gender)
        samples, sample_rate_hz = convert_voice(base_samples, base_rate_hz, profile, controls.prosody())
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
