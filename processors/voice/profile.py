"""A speaker's voice as numbers: who (speaker embedding), pitch (F0) and timbre (spectral envelope).

Profiles are built from mono float32 samples; all analysis runs at ``ANALYSIS_SAMPLE_RATE_HZ``
(16 kHz) with WORLD (dio + stonemask for F0, cheaptrick for the envelope).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyworld

from processors.audio.codec_quality import assess_quality, resample, to_mono
from processors.constants import (
    ANALYSIS_SAMPLE_RATE_HZ,
    APERIODICITY_BAND_EDGES_HZ,
    APERIODICITY_FLOOR,
    APERIODICITY_INTERVAL_MS,
    DIO_DOWNSAMPLING,
    EMBEDDING_SIZE,
    F0_CEILING_HZ,
    F0_FLOOR_HZ,
    F0_RANGE_HIGH_PERCENTILE,
    F0_RANGE_LOW_PERCENTILE,
    MCEP_DIMENSIONS,
    MIN_PROFILE_VOICED_S,
    MIN_UNVOICED_FRAMES,
    MIN_VOICED_FRACTION,
    MIN_VOICED_SEGMENT_MS,
    SAME_SPEAKER_MIN_SIMILARITY,
    UNVOICED_LEVEL_PERCENTILE,
    VOICE_PROFILE_VERSION,
    WORLD_FRAME_PERIOD_MS,
)
from processors.errors import InconsistentSpeakerError, InvalidAudioError, NoVoicedSpeechError, ProfileFormatError
from processors.voice.kokoro_voices import KokoroVoice
from processors.voice.speaker import SpeakerEncoder, cosine_similarity


@dataclass(frozen=True)
class WorldFeatures:
    """WORLD analysis of one clip at ``sample_rate_hz``, one row per ``frame_period_ms`` frame.

    ``f0_hz`` is ``[frames]`` (0 where unvoiced); ``spectral_envelope`` and ``aperiodicity`` are
    ``[frames, fft_size // 2 + 1]`` float64 (power spectrum and 0-1 ratio).
    """

    f0_hz: np.ndarray
    spectral_envelope: np.ndarray
    aperiodicity: np.ndarray | None
    sample_rate_hz: int
    frame_period_ms: float

    @property
    def voiced(self) -> np.ndarray:
        return self.f0_hz > 0

    @property
    def fft_size(self) -> int:
        return 2 * (self.spectral_envelope.shape[1] - 1)


@dataclass(frozen=True)
class VoiceProfile:
    """Everything voice conversion and verification need to know about one speaker.

    Sample-level fields (``sample_similarities``, ``inconsistent_samples``) index the samples in
    the order they were given; statistics come from the consistent samples only. Mel-cepstra are
    WORLD-coded (``pyworld.code_spectral_envelope``) at ``analysis_sample_rate_hz``, voiced frames only.
    ``aperiodicity_band_db`` is the mean aperiodicity of voiced frames in each
    ``APERIODICITY_BAND_EDGES_HZ`` band; ``unvoiced_mcep_*`` describe the audible unvoiced frames
    (fricatives). Profiles from format version 1 have neither (empty tuples): their conversion keeps
    the base voice's aperiodicity and maps unvoiced frames with the voiced statistics.
    ``kokoro_voice`` (format version 3) is the voice the Kokoro engine speaks with; profiles
    without one speak with the instant voice nearest their embedding.
    """

    version: int
    analysis_sample_rate_hz: int
    speaker_embedding: tuple[float, ...]
    embedding_spread: float
    sample_similarities: tuple[float, ...]
    inconsistent_samples: tuple[int, ...]
    log_f0_mean: float
    log_f0_std: float
    f0_median_hz: float
    f0_low_hz: float
    f0_high_hz: float
    mcep_mean: tuple[float, ...]
    mcep_std: tuple[float, ...]
    aperiodicity_band_db: tuple[float, ...]
    unvoiced_mcep_mean: tuple[float, ...]
    unvoiced_mcep_std: tuple[float, ...]
    speech_duration_s: float
    voiced_duration_s: float
    voiced_segments_per_s: float
    kokoro_voice: KokoroVoice | None = None

    @property
    def embedding(self) -> np.ndarray:
        """The speaker centroid as float32 ``(256,)``, L2-normalised."""
        return np.asarray(self.speaker_embedding, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: numbers, lists of numbers, lists of ints and the Kokoro voice's mapping."""
        fields_ = {field.name: getattr(self, field.name) for field in fields(self)}
        data = {name: list(value) if isinstance(value, tuple) else value for name, value in fields_.items()}
        data["kokoro_voice"] = self.kokoro_voice.to_dict() if self.kokoro_voice is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VoiceProfile:
        """Rebuild a profile from :meth:`to_dict` output, checking its version, fields and sizes."""
        if not isinstance(data, dict):
            raise ProfileFormatError(f"a voice profile must be a mapping, got {type(data).__name__}")
        if data.get("version") == 1:
            empty_statistics = {"aperiodicity_band_db": [], "unvoiced_mcep_mean": [], "unvoiced_mcep_std": []}
            data = {**data, **empty_statistics, "version": 2}
        if data.get("version") == 2:
            data = {**data, "kokoro_voice": None, "version": VOICE_PROFILE_VERSION}
        if data.get("version") != VOICE_PROFILE_VERSION:
            raise ProfileFormatError(f"unsupported voice profile version {data.get('version')!r}")
        expected = {field.name for field in fields(cls)}
        if set(data) != expected:
            missing, unknown = sorted(expected - set(data)), sorted(set(data) - expected)
            raise ProfileFormatError(f"voice profile fields differ: missing {missing}, unknown {unknown}")
        try:
            kokoro_voice = data["kokoro_voice"]
            values = {name: tuple(value) if isinstance(value, list) else value for name, value in data.items()}
            values["kokoro_voice"] = KokoroVoice.from_dict(kokoro_voice) if kokoro_voice is not None else None
            profile = cls(**values)
            _check_sizes(profile)
        except (TypeError, ValueError) as error:
            raise ProfileFormatError(f"malformed voice profile: {error}") from error
        return profile


PROFILE_ENVELOPE_FFT_SIZE = pyworld.get_cheaptrick_fft_size(ANALYSIS_SAMPLE_RATE_HZ, F0_FLOOR_HZ)  # resolves F0_FLOOR_HZ


def analyse_world(
    samples: np.ndarray,
    sample_rate_hz: int,
    with_aperiodicity: bool = False,
    fft_size: int | None = None,
    envelope_interval_ms: float = WORLD_FRAME_PERIOD_MS,
) -> WorldFeatures:
    """WORLD analysis of mono ``[n]`` audio, resampled to ``ANALYSIS_SAMPLE_RATE_HZ`` first.

    ``fft_size`` (a power of two) sets the envelope's resolution; by default it is the smallest
    that resolves ``F0_FLOOR_HZ``. Conversion passes the coarser ``CONVERSION_FFT_SIZE``, and a longer
    ``envelope_interval_ms``: CheapTrick then runs on frames that far apart and the log envelope is
    interpolated between them (every frame keeps its own F0).
    """
    speech = resample(to_mono(samples), sample_rate_hz, ANALYSIS_SAMPLE_RATE_HZ).astype(np.float64)
    if speech.size == 0:
        raise InvalidAudioError("cannot analyse an empty clip")
    coarse_f0, times = pyworld.dio(
        speech,
        ANALYSIS_SAMPLE_RATE_HZ,
        f0_floor=F0_FLOOR_HZ,
        f0_ceil=F0_CEILING_HZ,
        frame_period=WORLD_FRAME_PERIOD_MS,
        speed=DIO_DOWNSAMPLING,
    )
    f0_hz = pyworld.stonemask(speech, coarse_f0, times, ANALYSIS_SAMPLE_RATE_HZ)
    envelope_fft_size = fft_size or PROFILE_ENVELOPE_FFT_SIZE
    envelope = _at_sparse_frames(
        pyworld.cheaptrick, speech, f0_hz, times, envelope_interval_ms, envelope_fft_size, in_log_domain=True
    )
    aperiodicity = None
    if with_aperiodicity:
        # D4C is WORLD's costliest step (a third of the conversion's time on every 5 ms frame), and
        # aperiodicity changes slowly next to pitch and envelope
        aperiodicity = _at_sparse_frames(
            pyworld.d4c, speech, f0_hz, times, APERIODICITY_INTERVAL_MS, envelope_fft_size, in_log_domain=False
        )
    return WorldFeatures(f0_hz, envelope, aperiodicity, ANALYSIS_SAMPLE_RATE_HZ, WORLD_FRAME_PERIOD_MS)


def _at_sparse_frames(
    estimator: Callable[..., np.ndarray],
    speech: np.ndarray,
    f0_hz: np.ndarray,
    times: np.ndarray,
    interval_ms: float,
    fft_size: int,
    in_log_domain: bool,
) -> np.ndarray:
    """A WORLD per-frame estimator run every ``interval_ms``, linearly interpolated in between.

    Returns ``[frames, fft_size // 2 + 1]``; ``in_log_domain`` interpolates logarithms (power envelopes).
    """
    stride = max(1, round(interval_ms / WORLD_FRAME_PERIOD_MS))
    sparse = np.unique(np.append(np.arange(0, times.size, stride), times.size - 1))
    estimated = estimator(
        speech,
        np.ascontiguousarray(f0_hz[sparse]),
        np.ascontiguousarray(times[sparse]),
        ANALYSIS_SAMPLE_RATE_HZ,
        fft_size=fft_size,
    )
    if sparse.size == times.size:
        return estimated
    if in_log_domain:
        estimated = np.log(estimated)
    position = np.interp(np.arange(times.size), sparse, np.arange(sparse.size))
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, sparse.size - 1)
    weight = (position - lower)[:, None]
    interpolated = estimated[lower] * (1 - weight) + estimated[upper] * weight
    return np.exp(interpolated) if in_log_domain else interpolated


def encode_envelope(spectral_envelope: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Mel-cepstrum ``[frames, MCEP_DIMENSIONS]`` of a WORLD power envelope ``[frames, bins]``."""
    return pyworld.code_spectral_envelope(np.ascontiguousarray(spectral_envelope), sample_rate_hz, MCEP_DIMENSIONS)


def decode_envelope(mcep: np.ndarray, sample_rate_hz: int, fft_size: int) -> np.ndarray:
    """Inverse of :func:`encode_envelope`: power envelope ``[frames, fft_size // 2 + 1]``."""
    return pyworld.decode_spectral_envelope(np.ascontiguousarray(mcep, dtype=np.float64), sample_rate_hz, fft_size)


def build_profile(samples: list[np.ndarray], sample_rate_hz: int, encoder: SpeakerEncoder) -> VoiceProfile:
    """Build a profile from one speaker's mono ``[n]`` samples, all at ``sample_rate_hz``.

    A sample whose embedding is further than ``SAME_SPEAKER_MIN_SIMILARITY`` from the centroid of
    the others is flagged and left out of the statistics. Raises ``NoVoicedSpeechError`` for a
    sample without voice (noise, silence, whisper) and ``InconsistentSpeakerError`` when no
    sample agrees with the rest.
    """
    if not samples:
        raise InvalidAudioError("a voice profile needs at least one sample")
    features = [analyse_world(sample, sample_rate_hz, with_aperiodicity=True) for sample in samples]
    for index, feature in enumerate(features):
        _require_voice(index, feature)
    embeddings = encoder.embed_many(samples, sample_rate_hz)
    similarities = _leave_one_out_similarities(embeddings)
    consistent = _consistent_samples(similarities, len(samples))
    if not consistent:
        rounded = [round(similarity, 2) for similarity in similarities]
        raise InconsistentSpeakerError(f"the samples do not sound like one speaker (similarities {rounded})")
    kept_features = [features[index] for index in consistent]
    speech_duration_s = sum(assess_quality(samples[index], sample_rate_hz).speech_duration_s for index in consistent)
    return VoiceProfile(
        version=VOICE_PROFILE_VERSION,
        analysis_sample_rate_hz=ANALYSIS_SAMPLE_RATE_HZ,
        **_speaker_statistics(embeddings, similarities, consistent),
        **_pitch_statistics(kept_features),
        **_envelope_statistics(kept_features),
        **_timing_statistics(kept_features, speech_duration_s),
    )


def _require_voice(index: int, feature: WorldFeatures) -> None:
    voiced_s = feature.voiced.sum() * feature.frame_period_ms / 1000
    voiced_fraction = float(feature.voiced.mean())
    if voiced_fraction < MIN_VOICED_FRACTION or voiced_s < MIN_PROFILE_VOICED_S:
        raise NoVoicedSpeechError(
            f"sample {index} has {voiced_s:.1f} s of voiced speech ({voiced_fraction:.0%} of frames); "
            f"a profile needs at least {MIN_PROFILE_VOICED_S:.0f} s and {MIN_VOICED_FRACTION:.0%} per sample"
        )


def _leave_one_out_similarities(embeddings: np.ndarray) -> list[float]:
    """Each sample's cosine to the centroid of all the other samples; empty for a single sample."""
    if len(embeddings) < 2:
        return []
    total = embeddings.sum(axis=0)
    return [cosine_similarity(embedding, total - embedding) for embedding in embeddings]


def _consistent_samples(similarities: list[float], sample_count: int) -> list[int]:
    """Indices of the samples that agree with the others; a lone sample agrees with itself."""
    if sample_count == 1:
        return [0]
    return [index for index, similarity in enumerate(similarities) if similarity >= SAME_SPEAKER_MIN_SIMILARITY]


def _speaker_statistics(embeddings: np.ndarray, similarities: list[float], consistent: list[int]) -> dict[str, Any]:
    centroid = embeddings[consistent].mean(axis=0)
    centroid /= np.linalg.norm(centroid)
    return {
        "speaker_embedding": tuple(float(value) for value in centroid),
        "embedding_spread": float(np.mean([cosine_similarity(embeddings[index], centroid) for index in consistent])),
        "sample_similarities": tuple(similarities),
        "inconsistent_samples": tuple(index for index in range(len(embeddings)) if index not in consistent),
    }


def _pitch_statistics(features: list[WorldFeatures]) -> dict[str, float]:
    f0_hz = np.concatenate([feature.f0_hz[feature.voiced] for feature in features])
    log_f0 = np.log(f0_hz)
    low_hz, high_hz = np.percentile(f0_hz, [F0_RANGE_LOW_PERCENTILE, F0_RANGE_HIGH_PERCENTILE])
    return {
        "log_f0_mean": float(log_f0.mean()),
        "log_f0_std": float(log_f0.std()),
        "f0_median_hz": float(np.median(f0_hz)),
        "f0_low_hz": float(low_hz),
        "f0_high_hz": float(high_hz),
    }


def _envelope_statistics(features: list[WorldFeatures]) -> dict[str, tuple[float, ...]]:
    mcep = np.concatenate(
        [encode_envelope(feature.spectral_envelope[feature.voiced], feature.sample_rate_hz) for feature in features]
    )
    band_db = np.mean([band_aperiodicity_db(feature) for feature in features], axis=0)
    unvoiced = np.concatenate(
        [
            audible(encode_envelope(feature.spectral_envelope[~feature.voiced], feature.sample_rate_hz))
            for feature in features
        ]
    )
    has_unvoiced = len(unvoiced) >= MIN_UNVOICED_FRAMES
    return {
        "mcep_mean": as_floats(mcep.mean(axis=0)),
        "mcep_std": as_floats(mcep.std(axis=0)),
        "aperiodicity_band_db": as_floats(band_db),
        "unvoiced_mcep_mean": as_floats(unvoiced.mean(axis=0)) if has_unvoiced else (),
        "unvoiced_mcep_std": as_floats(unvoiced.std(axis=0)) if has_unvoiced else (),
    }


def audible(unvoiced_mcep: np.ndarray) -> np.ndarray:
    """The rows of unvoiced mel-cepstra ``[frames, MCEP_DIMENSIONS]`` louder (c0) than ``UNVOICED_LEVEL_PERCENTILE``."""
    if len(unvoiced_mcep) == 0:
        return unvoiced_mcep
    return unvoiced_mcep[unvoiced_mcep[:, 0] > np.percentile(unvoiced_mcep[:, 0], UNVOICED_LEVEL_PERCENTILE)]


def as_floats(values: np.ndarray) -> tuple[float, ...]:
    """A profile field's JSON-safe form: plain Python floats."""
    return tuple(float(value) for value in values)


def bin_frequencies_hz(sample_rate_hz: int, fft_size: int) -> np.ndarray:
    """Centre frequency of each of the ``fft_size // 2 + 1`` bins of a WORLD envelope or aperiodicity."""
    return np.arange(fft_size // 2 + 1) * sample_rate_hz / fft_size


def band_aperiodicity_db(feature: WorldFeatures) -> np.ndarray:
    """Mean aperiodicity (dB) of the voiced frames in each ``APERIODICITY_BAND_EDGES_HZ`` band, ``[bands]``."""
    if feature.aperiodicity is None:
        raise ValueError("band aperiodicity needs features analysed with aperiodicity")
    voiced_db = 20 * np.log10(np.clip(feature.aperiodicity[feature.voiced], APERIODICITY_FLOOR, 1.0))
    frequencies_hz = bin_frequencies_hz(feature.sample_rate_hz, feature.fft_size)
    edges = APERIODICITY_BAND_EDGES_HZ
    return np.array(
        [voiced_db[:, (frequencies_hz >= low) & (frequencies_hz < high)].mean() for low, high in zip(edges, edges[1:])]
    )


def _timing_statistics(features: list[WorldFeatures], speech_duration_s: float) -> dict[str, float]:
    segments = sum(_voiced_segment_count(feature.voiced, feature.frame_period_ms) for feature in features)
    return {
        "speech_duration_s": float(speech_duration_s),
        "voiced_duration_s": sum(int(f.voiced.sum()) * f.frame_period_ms for f in features) / 1000,
        "voiced_segments_per_s": segments / speech_duration_s if speech_duration_s > 0 else 0.0,
    }


def _voiced_segment_count(voiced: np.ndarray, frame_period_ms: float) -> int:
    """Voiced stretches of at least ``MIN_VOICED_SEGMENT_MS``: a rough syllable count."""
    edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int(np.sum(lengths * frame_period_ms >= MIN_VOICED_SEGMENT_MS))


def _check_sizes(profile: VoiceProfile) -> None:
    if len(profile.speaker_embedding) != EMBEDDING_SIZE:
        raise ValueError(f"speaker_embedding has {len(profile.speaker_embedding)} values, expected {EMBEDDING_SIZE}")
    if len(profile.mcep_mean) != MCEP_DIMENSIONS or len(profile.mcep_std) != MCEP_DIMENSIONS:
        raise ValueError(f"mel-cepstrum statistics must have {MCEP_DIMENSIONS} values each")
    if len(profile.unvoiced_mcep_mean) not in (0, MCEP_DIMENSIONS) or len(profile.unvoiced_mcep_std) != len(
        profile.unvoiced_mcep_mean
    ):
        raise ValueError(f"unvoiced mel-cepstrum statistics must have {MCEP_DIMENSIONS} values each or none")
    if len(profile.aperiodicity_band_db) not in (0, len(APERIODICITY_BAND_EDGES_HZ) - 1):
        raise ValueError(f"aperiodicity statistics must have {len(APERIODICITY_BAND_EDGES_HZ) - 1} values or none")
    numbers = [
        *profile.speaker_embedding,
        *profile.mcep_mean,
        *profile.mcep_std,
        *profile.aperiodicity_band_db,
        *profile.unvoiced_mcep_mean,
        *profile.unvoiced_mcep_std,
        profile.log_f0_mean,
        profile.log_f0_std,
    ]
    if not all(isinstance(value, (int, float)) and np.isfinite(value) for value in numbers):
        raise ValueError("profile statistics must be finite numbers")
