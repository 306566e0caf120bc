"""New voices from existing profiles: a weighted blend of 2-4 voices, and an age or gender shift of one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from processors.constants import (
    AGE_SHIFT_FORMANT_FACTOR,
    AGE_SHIFT_PITCH_RANGE_SCALE,
    AGE_SHIFT_SEMITONES,
    GENDER_SHIFT_FORMANT_FACTOR,
    GENDER_SHIFT_SEMITONES,
    MAX_MORPH_VOICES,
    MIN_MORPH_VOICES,
    MORPH_WEIGHT_TOLERANCE,
)
from processors.synthesis.conversion import SEMITONES_PER_OCTAVE, warp_envelope
from processors.errors import InvalidMorphError, InvalidVoiceTransformError
from processors.voice.kokoro_voices import KokoroVoice, mix_voices
from processors.voice.profile import (
    PROFILE_ENVELOPE_FFT_SIZE,
    VoiceProfile,
    as_floats,
    decode_envelope,
    encode_envelope,
)


def morph_profiles(profiles: Sequence[VoiceProfile], weights: Sequence[float]) -> VoiceProfile:
    """A voice between 2-4 profiles: pitch, timbre and speaker embedding mixed by ``weights``.

    Weights must be non-negative and sum to 1. Pitch is mixed in log-F0, timbre in mel-cepstrum,
    the embedding as the renormalised weighted mean (where a verifier would place the blend).
    The blend has no samples of its own, so its sample-level fields are empty.
    """
    mixing = _checked_weights(profiles, weights)

    def mix(values: Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
        return np.tensordot(mixing, np.asarray(values, dtype=np.float64), axes=1)

    embedding = mix([profile.speaker_embedding for profile in profiles])
    return replace(
        profiles[0],
        speaker_embedding=as_floats(embedding / np.linalg.norm(embedding)),
        embedding_spread=float(mix([profile.embedding_spread for profile in profiles])),
        sample_similarities=(),
        inconsistent_samples=(),
        log_f0_mean=float(mix([profile.log_f0_mean for profile in profiles])),
        log_f0_std=float(mix([profile.log_f0_std for profile in profiles])),
        f0_median_hz=float(np.exp(mix([np.log(profile.f0_median_hz) for profile in profiles]))),
        f0_low_hz=float(np.exp(mix([np.log(profile.f0_low_hz) for profile in profiles]))),
        f0_high_hz=float(np.exp(mix([np.log(profile.f0_high_hz) for profile in profiles]))),
        mcep_mean=as_floats(mix([profile.mcep_mean for profile in profiles])),
        mcep_std=as_floats(mix([profile.mcep_std for profile in profiles])),
        aperiodicity_band_db=_mixed_if_all_have(profiles, "aperiodicity_band_db", mix),
        unvoiced_mcep_mean=_mixed_if_all_have(profiles, "unvoiced_mcep_mean", mix),
        unvoiced_mcep_std=_mixed_if_all_have(profiles, "unvoiced_mcep_std", mix),
        speech_duration_s=float(mix([profile.speech_duration_s for profile in profiles])),
        kokoro_voice=_mixed_kokoro_voices(profiles, mixing),
        voiced_duration_s=float(mix([profile.voiced_duration_s for profile in profiles])),
        voiced_segments_per_s=float(mix([profile.voiced_segments_per_s for profile in profiles])),
    )


def shift_voice(profile: VoiceProfile, gender: float = 0.0, age: float = 0.0) -> VoiceProfile:
    """The same voice made more feminine (``gender`` > 0) or masculine (< 0), older (``age`` > 0) or younger (< 0).

    Both run from -1 to 1. A full gender step moves pitch by ``GENDER_SHIFT_SEMITONES`` and
    formants by ``GENDER_SHIFT_FORMANT_FACTOR``; a full age step lowers pitch by
    ``AGE_SHIFT_SEMITONES``, lengthens the vocal tract and flattens intonation. The speaker
    embedding stays the original speaker's.
    """
    for name, value in (("gender", gender), ("age", age)):
        if not np.isfinite(value) or not -1.0 <= value <= 1.0:
            raise InvalidVoiceTransformError(f"{name} shift must be a number within -1..1, got {value!r}")
    semitones = gender * GENDER_SHIFT_SEMITONES + age * AGE_SHIFT_SEMITONES
    pitch_factor = 2.0 ** (semitones / SEMITONES_PER_OCTAVE)
    formant_factor = GENDER_SHIFT_FORMANT_FACTOR**gender * AGE_SHIFT_FORMANT_FACTOR**age
    sample_rate_hz = profile.analysis_sample_rate_hz
    return replace(
        profile,
        log_f0_mean=profile.log_f0_mean + float(np.log(pitch_factor)),
        log_f0_std=profile.log_f0_std * AGE_SHIFT_PITCH_RANGE_SCALE**age,
        f0_median_hz=profile.f0_median_hz * pitch_factor,
        f0_low_hz=profile.f0_low_hz * pitch_factor,
        f0_high_hz=profile.f0_high_hz * pitch_factor,
        mcep_mean=_warped_mean(profile.mcep_mean, formant_factor, sample_rate_hz),
        unvoiced_mcep_mean=_warped_mean(profile.unvoiced_mcep_mean, formant_factor, sample_rate_hz),
        kokoro_voice=profile.kokoro_voice.shifted(gender, age) if profile.kokoro_voice is not None else None,
    )


def _warped_mean(mean_mcep: tuple[float, ...], formant_factor: float, sample_rate_hz: int) -> tuple[float, ...]:
    """A mean mel-cepstrum whose envelope is stretched in frequency by ``formant_factor``; none stays none."""
    if not mean_mcep:
        return ()
    mean_envelope = decode_envelope(np.asarray([mean_mcep]), sample_rate_hz, PROFILE_ENVELOPE_FFT_SIZE)
    return as_floats(encode_envelope(warp_envelope(mean_envelope, formant_factor, sample_rate_hz), sample_rate_hz)[0])


def _mixed_kokoro_voices(profiles: Sequence[VoiceProfile], mixing: np.ndarray) -> KokoroVoice | None:
    """The blend of the voices' Kokoro styles; none when a voice has none (it then speaks its instant voice)."""
    voices = [profile.kokoro_voice for profile in profiles]
    return mix_voices(voices, list(mixing)) if all(voice is not None for voice in voices) else None


def _mixed_if_all_have(
    profiles: Sequence[VoiceProfile], statistic: str, mix: Callable[[list], np.ndarray]
) -> tuple[float, ...]:
    """The blend of an optional statistic; none when a voice lacks it (format version 1, no fricatives)."""
    values = [getattr(profile, statistic) for profile in profiles]
    return as_floats(mix(values)) if all(values) else ()


def _checked_weights(profiles: Sequence[VoiceProfile], weights: Sequence[float]) -> np.ndarray:
    if not MIN_MORPH_VOICES <= len(profiles) <= MAX_MORPH_VOICES:
        raise InvalidMorphError(f"a morph blends {MIN_MORPH_VOICES}-{MAX_MORPH_VOICES} voices, got {len(profiles)}")
    if len(weights) != len(profiles):
        raise InvalidMorphError(f"{len(profiles)} voices need {len(profiles)} weights, got {len(weights)}")
    try:
        mixing = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidMorphError(f"morph weights must be numbers, got {weights!r}") from error
    if not np.all(np.isfinite(mixing)) or np.any(mixing < 0):
        raise InvalidMorphError(f"morph weights must be finite and non-negative, got {list(weights)}")
    if abs(mixing.sum() - 1.0) > MORPH_WEIGHT_TOLERANCE:
        raise InvalidMorphError(f"morph weights must sum to 1, got {mixing.sum():g}")
    if len({(profile.version, profile.analysis_sample_rate_hz) for profile in profiles}) != 1:
        raise InvalidMorphError("the voices to blend come from different profile versions or analysis rates")
    return mixing
