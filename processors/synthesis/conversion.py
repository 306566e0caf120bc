"""WORLD voice conversion: make speech (the base TTS voice) sound like a :class:`VoiceProfile`.

Pitch follows the target's log-F0 mean and spread; the spectral envelope is warped in frequency
toward the target's mean envelope (a vocal-tract-length estimate), then its mel-cepstrum is
mapped to the target's mean and spread; aperiodicity is moved band by band to the target's level.
Analysis runs at 16 kHz, output is float32 mono at ``OUTPUT_SAMPLE_RATE_HZ`` (24 kHz).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyworld

from processors.audio.codec_quality import normalise_loudness, resample
from processors.constants import (
    ANALYSIS_SAMPLE_RATE_HZ,
    APERIODICITY_BAND_EDGES_HZ,
    APERIODICITY_CEILING,
    APERIODICITY_FLOOR,
    CONVERSION_ENVELOPE_INTERVAL_MS,
    CONVERSION_FFT_SIZE,
    MIN_UNVOICED_FRAMES,
    MAX_SPEED,
    MIN_SPEED,
    OUTPUT_SAMPLE_RATE_HZ,
    TARGET_RMS_DBFS,
    UNBOUNDED_SPREAD_RATIO,
    WARP_FACTOR_MAX,
    WARP_FACTOR_MIN,
    WARP_FIT_HIGH_HZ,
    WARP_FIT_LOW_HZ,
    WARP_SEARCH_STEPS,
)
from processors.errors import InvalidControlsError, NoVoicedSpeechError, ProfileFormatError
from processors.voice.profile import (
    VoiceProfile,
    WorldFeatures,
    analyse_world,
    audible,
    band_aperiodicity_db,
    bin_frequencies_hz,
    decode_envelope,
    encode_envelope,
)

SEMITONES_PER_OCTAVE = 12.0


@dataclass(frozen=True)
class ProsodyAdjustment:
    """How the converted speech departs from the target's own prosody.

    ``speed`` scales tempo (2.0 is twice as fast, pitch unchanged); ``pitch_semitones`` shifts
    the target's pitch; ``pitch_range_scale`` widens (>1) or flattens (<1) intonation;
    ``energy_db`` is gain relative to the standard output level (peaks stay under the ceiling,
    which caps large boosts).
    """

    speed: float = 1.0
    pitch_semitones: float = 0.0
    pitch_range_scale: float = 1.0
    energy_db: float = 0.0


def convert_voice(
    samples: np.ndarray,
    sample_rate_hz: int,
    profile: VoiceProfile,
    adjustment: ProsodyAdjustment = ProsodyAdjustment(),
    spread_ratio_bounds: tuple[float, float] = UNBOUNDED_SPREAD_RATIO,
) -> tuple[np.ndarray, int]:
    """Convert mono ``[n]`` speech to the profile's voice; returns (float32 ``[m]``, 24000).

    ``spread_ratio_bounds`` limits how far each mel-cepstral order's spread may be scaled (see
    :meth:`BaseTTS.spread_ratio_bounds`).
    """
    _check_adjustment(adjustment)
    if profile.analysis_sample_rate_hz != ANALYSIS_SAMPLE_RATE_HZ:
        analysed_hz = profile.analysis_sample_rate_hz
        raise ProfileFormatError(f"profile analysed at {analysed_hz} Hz; conversion needs {ANALYSIS_SAMPLE_RATE_HZ} Hz")
    source = analyse_world(
        samples,
        sample_rate_hz,
        with_aperiodicity=True,
        fft_size=CONVERSION_FFT_SIZE,
        envelope_interval_ms=CONVERSION_ENVELOPE_INTERVAL_MS,
    )
    if not source.voiced.any():
        raise NoVoicedSpeechError("the speech to convert has no voiced frames")
    f0_hz = map_log_f0(source.f0_hz, profile, adjustment.pitch_semitones, adjustment.pitch_range_scale)
    envelope = convert_envelope(source, profile, spread_ratio_bounds)
    aperiodicity = convert_aperiodicity(source, profile)
    converted = pyworld.synthesize(
        f0_hz, envelope, aperiodicity, source.sample_rate_hz, source.frame_period_ms / adjustment.speed
    )
    output = resample(converted.astype(np.float32), source.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)
    return normalise_loudness(output, target_rms_dbfs=TARGET_RMS_DBFS + adjustment.energy_db), OUTPUT_SAMPLE_RATE_HZ


def map_log_f0(
    f0_hz: np.ndarray, profile: VoiceProfile, pitch_semitones: float = 0.0, pitch_range_scale: float = 1.0
) -> np.ndarray:
    """Give voiced frames the target's log-F0 mean and spread (times ``pitch_range_scale``), shifted.

    ``f0_hz`` is ``[frames]`` with 0 for unvoiced frames, which stay 0.
    """
    voiced = f0_hz > 0
    mapped = np.zeros_like(f0_hz)
    log_f0 = np.log(f0_hz[voiced])
    spread = log_f0.std()
    standardised = (log_f0 - log_f0.mean()) / spread if spread > 0 else np.zeros_like(log_f0)
    shift = pitch_semitones / SEMITONES_PER_OCTAVE * np.log(2.0)
    mapped[voiced] = np.exp(standardised * profile.log_f0_std * pitch_range_scale + profile.log_f0_mean + shift)
    return mapped


def convert_envelope(
    source: WorldFeatures, profile: VoiceProfile, spread_ratio_bounds: tuple[float, float] = UNBOUNDED_SPREAD_RATIO
) -> np.ndarray:
    """Warp the source envelope toward the target's, then match mel-cepstral mean and spread.

    c0 (overall level) is left alone; the output level is set afterwards. Voiced frames, where the
    speaker's timbre lives, are mapped by voiced statistics; unvoiced frames by the statistics of
    audible unvoiced frames (fricatives) when the profile has them and the source has enough.
    """
    # the coding is linear in the log envelope, so the code of the mean log envelope is the mean code
    mean_log_envelope = np.log(source.spectral_envelope[source.voiced]).mean(axis=0, keepdims=True)
    mean_mcep = encode_envelope(np.exp(mean_log_envelope), source.sample_rate_hz)[0]
    factor = estimate_warp_factor(mean_mcep, np.asarray(profile.mcep_mean), source.sample_rate_hz, source.fft_size)
    mcep = encode_envelope(
        warp_envelope(source.spectral_envelope, factor, source.sample_rate_hz), source.sample_rate_hz
    )
    mapped = mcep.copy()
    mapped[:, 1:] = _match_statistics(
        mcep[:, 1:], mcep[source.voiced, 1:], profile.mcep_mean[1:], profile.mcep_std[1:], spread_ratio_bounds
    )
    if profile.unvoiced_mcep_mean:
        unvoiced = ~source.voiced
        audible_unvoiced = audible(mcep[unvoiced])
        if len(audible_unvoiced) >= MIN_UNVOICED_FRAMES:
            mapped[unvoiced, 1:] = _match_statistics(
                mcep[unvoiced, 1:],
                audible_unvoiced[:, 1:],
                profile.unvoiced_mcep_mean[1:],
                profile.unvoiced_mcep_std[1:],
                spread_ratio_bounds,
            )
    return decode_envelope(mapped, source.sample_rate_hz, source.fft_size)


def _match_statistics(
    frames: np.ndarray,
    source_frames: np.ndarray,
    target_mean: Sequence[float],
    target_std: Sequence[float],
    spread_ratio_bounds: tuple[float, float],
) -> np.ndarray:
    """``frames`` ``[n, d]`` moved so that ``source_frames`` would get the target's per-dimension mean and
    spread, each dimension's spread scaled by no less and no more than ``spread_ratio_bounds``."""
    source_mean, source_std = source_frames.mean(axis=0), source_frames.std(axis=0)
    target_mean, target_std = np.asarray(target_mean), np.asarray(target_std)
    scale = np.divide(target_std, source_std, out=np.ones_like(target_std), where=source_std > 0)
    return (frames - source_mean) * np.clip(scale, *spread_ratio_bounds) + target_mean


def convert_aperiodicity(source: WorldFeatures, profile: VoiceProfile) -> np.ndarray:
    """Move the voiced frames' aperiodicity, band by band, to the target's mean level (its breathiness).

    The per-band dB difference is interpolated across frequency between band centres, so the
    correction has no steps; unvoiced frames (noise either way) are left alone. Profiles without
    aperiodicity statistics (format version 1) keep the source's.
    """
    if not profile.aperiodicity_band_db:
        return source.aperiodicity
    shift_db = np.asarray(profile.aperiodicity_band_db) - band_aperiodicity_db(source)
    edges = np.asarray(APERIODICITY_BAND_EDGES_HZ)
    frequencies_hz = bin_frequencies_hz(source.sample_rate_hz, source.fft_size)
    gain = 10 ** (np.interp(frequencies_hz, (edges[:-1] + edges[1:]) / 2, shift_db) / 20)
    converted = source.aperiodicity.copy()
    converted[source.voiced] = np.clip(converted[source.voiced] * gain, APERIODICITY_FLOOR, APERIODICITY_CEILING)
    return converted


def estimate_warp_factor(
    source_mean_mcep: np.ndarray, target_mean_mcep: np.ndarray, sample_rate_hz: int, fft_size: int
) -> float:
    """The frequency scale that best maps the source's mean envelope onto the target's.

    Searches ``WARP_FACTOR_MIN``..``WARP_FACTOR_MAX`` for the factor minimising the squared
    log-spectral distance in ``WARP_FIT_LOW_HZ``..``WARP_FIT_HIGH_HZ``, level differences ignored.
    Above 1 the target's formants sit higher (a shorter vocal tract).
    """
    mean_envelopes = decode_envelope(np.stack([source_mean_mcep, target_mean_mcep]), sample_rate_hz, fft_size)
    source_log, target_log = np.log(mean_envelopes)
    frequencies_hz = bin_frequencies_hz(sample_rate_hz, fft_size)
    band = (frequencies_hz >= WARP_FIT_LOW_HZ) & (frequencies_hz <= WARP_FIT_HIGH_HZ)
    candidates = np.linspace(WARP_FACTOR_MIN, WARP_FACTOR_MAX, WARP_SEARCH_STEPS)
    errors = []
    for factor in candidates:
        difference = np.interp(frequencies_hz[band] / factor, frequencies_hz, source_log) - target_log[band]
        errors.append(np.var(difference))
    return float(candidates[int(np.argmin(errors))])


def warp_envelope(spectral_envelope: np.ndarray, factor: float, sample_rate_hz: int) -> np.ndarray:
    """Scale the frequency axis of ``[frames, bins]`` power envelopes: what was at f moves to f·factor."""
    fft_size = 2 * (spectral_envelope.shape[1] - 1)
    frequencies_hz = bin_frequencies_hz(sample_rate_hz, fft_size)
    log_envelope = np.log(spectral_envelope)
    source_bins = np.clip(frequencies_hz / factor * fft_size / sample_rate_hz, 0, spectral_envelope.shape[1] - 1)
    lower = np.floor(source_bins).astype(int)
    upper = np.minimum(lower + 1, spectral_envelope.shape[1] - 1)
    weight = source_bins - lower
    return np.exp(log_envelope[:, lower] * (1 - weight) + log_envelope[:, upper] * weight)


def _check_adjustment(adjustment: ProsodyAdjustment) -> None:
    values = (adjustment.speed, adjustment.pitch_semitones, adjustment.pitch_range_scale, adjustment.energy_db)
    if not all(np.isfinite(values)):
        raise InvalidControlsError(f"prosody adjustments must be finite numbers, got {adjustment}")
    if not MIN_SPEED <= adjustment.speed <= MAX_SPEED:
        raise InvalidControlsError(f"speed must be within {MIN_SPEED}..{MAX_SPEED}, got {adjustment.speed}")
    if adjustment.pitch_range_scale < 0:
        raise InvalidControlsError(f"pitch range scale must not be negative, got {adjustment.pitch_range_scale}")
