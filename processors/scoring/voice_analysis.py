"""What a recording says about its voice: the ingest gate's figures, pitch, speaking rate, advice, and whether
two recordings are one speaker.

Audio is float32 mono ``[n]`` at ``ANALYSIS_SAMPLE_RATE_HZ`` (16 kHz) unless a function says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pyworld

from processors.audio.codec_quality import assess_quality
from processors.audio.vad import SpeechDetector
from processors.constants import (
    ANALYSIS_SAMPLE_RATE_HZ,
    F0_CEILING_HZ,
    F0_FLOOR_HZ,
    F0_RANGE_HIGH_PERCENTILE,
    F0_RANGE_LOW_PERCENTILE,
)
from processors.errors import InvalidEmbeddingError
from processors.scoring.quality import DnsmosEstimator
from processors.voice.speaker import cosine_similarity

F0_FRAME_PERIOD_MS = 10.0
# Syllable nuclei (after de Jong & Wempe): intensity peaks in voiced stretches that rise this far above the
# dip since the previous peak, at least this far apart.
NUCLEUS_MIN_DIP_DB = 2.0
NUCLEUS_MIN_GAP_MS = 100.0
INTENSITY_SMOOTHING_MS = 50.0
# Read speech runs at 3-5.5 syllables per second; outside this band a voice is harder to clone evenly.
SLOWEST_CLEAR_RATE_SYLLABLES_PER_S = 2.0
FASTEST_CLEAR_RATE_SYLLABLES_PER_S = 6.5
MONOTONE_RANGE_SEMITONES = 3.0  # p5-p95 pitch span below this sounds flat; natural reading spans 6-12

# Same speaker? Resemblyzer (GE2E) cosine, the encoder voice profiles store. Calibrated on 6 real speakers
# available offline (Asterisk en-US F, fr-CA F, it M, ru F; Fish Fillets' two Czech actors), 6 clips of 6 s
# each: 90 same-speaker pairs scored 0.783-0.97 (median 0.90), 540 different-speaker pairs 0.33-0.768
# (median 0.58; the two Czech actors at most 0.70). EER 0 % on that set for any threshold in (0.768, 0.783).
SAME_SPEAKER_ENCODER = "resemblyzer-ge2e"
SAME_SPEAKER_MIN_COSINE = 0.775
SAME_SPEAKER_CALIBRATION = (
    "Resemblyzer cosine; threshold 0.775 from 6 real speakers (Asterisk en-US, fr-CA, it, ru; two Czech actors), "
    "36 clips of 6 s: same speaker 0.783-0.97, different speakers <= 0.768, EER 0 % on that set"
)


@dataclass(frozen=True)
class F0Contour:
    """WORLD (dio + stonemask) pitch every ``F0_FRAME_PERIOD_MS``; ``f0_hz`` is 0 in unvoiced frames."""

    times_s: np.ndarray
    f0_hz: np.ndarray

    @property
    def voiced_hz(self) -> np.ndarray:
        return self.f0_hz[self.f0_hz > 0]


@dataclass(frozen=True)
class VoiceMetrics:
    """``speaking_rate`` is syllable nuclei per second of speech; ``f0_range_hz`` the 5th-95th percentile of the
    voiced pitch (``None`` for a recording without voiced sound)."""

    duration_s: float
    speech_s: float
    snr_db: float
    clipping_ratio: float
    dnsmos: float | None
    vad: str
    f0_range_hz: tuple[float, float] | None
    f0_median_hz: float | None
    speaking_rate: float | None
    accepted: bool
    reasons: list[str]
    suggestions: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SpeakerComparison:
    """``score`` is the encoder's cosine (1: same direction); ``verdict`` compares it with ``threshold``."""

    score: float
    verdict: Literal["same", "different"]
    threshold: float
    encoder: str
    calibration: str

    def to_dict(self) -> dict:
        return asdict(self)


def f0_contour(samples: np.ndarray) -> F0Contour:
    speech = np.ascontiguousarray(samples, dtype=np.float64)
    coarse_f0, times = pyworld.dio(speech, ANALYSIS_SAMPLE_RATE_HZ, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEILING_HZ,
                                   frame_period=F0_FRAME_PERIOD_MS)
    f0_hz = pyworld.stonemask(speech, coarse_f0, times, ANALYSIS_SAMPLE_RATE_HZ)
    return F0Contour(times_s=times.astype(np.float32), f0_hz=f0_hz.astype(np.float32))


def syllable_nuclei_count(samples: np.ndarray, contour: F0Contour) -> int:
    """Intensity peaks in voiced frames, each standing ``NUCLEUS_MIN_DIP_DB`` above the dip before it."""
    intensity_db = _frame_intensity_db(samples, contour.times_s.size)
    count, last_peak_frame, dip_db = 0, -np.inf, np.inf
    min_gap_frames = NUCLEUS_MIN_GAP_MS / F0_FRAME_PERIOD_MS
    for frame in range(1, intensity_db.size - 1):
        level = intensity_db[frame]
        dip_db = min(dip_db, level)
        is_peak = intensity_db[frame - 1] < level >= intensity_db[frame + 1]
        if (is_peak and contour.f0_hz[frame] > 0 and level - dip_db >= NUCLEUS_MIN_DIP_DB
                and frame - last_peak_frame >= min_gap_frames):
            count, last_peak_frame, dip_db = count + 1, frame, level
    return count


def measure_voice(samples: np.ndarray, *, vad: SpeechDetector | None = None,
                  dnsmos: DnsmosEstimator | None = None) -> tuple[VoiceMetrics, F0Contour]:
    """The ingest gate's report (speech found by ``vad``, DNSMOS by ``dnsmos``, as ingest judges uploads) plus
    pitch, speaking rate and advice, and the pitch contour the figures are drawn from."""
    gate = assess_quality(samples, ANALYSIS_SAMPLE_RATE_HZ, vad=vad, dnsmos=dnsmos)
    contour = f0_contour(samples)
    voiced = contour.voiced_hz
    f0_range = None
    if voiced.size:
        low, high = np.percentile(voiced, [F0_RANGE_LOW_PERCENTILE, F0_RANGE_HIGH_PERCENTILE])
        f0_range = (round(float(low), 1), round(float(high), 1))
    rate = None
    if gate.speech_duration_s > 0:
        rate = round(syllable_nuclei_count(samples, contour) / gate.speech_duration_s, 2)
    metrics = VoiceMetrics(
        duration_s=round(gate.duration_s, 3), speech_s=round(gate.speech_duration_s, 3), snr_db=round(gate.snr_db, 1),
        clipping_ratio=round(gate.clipping_ratio, 6), dnsmos=None if gate.dnsmos is None else round(gate.dnsmos, 2),
        vad=gate.vad, f0_range_hz=f0_range, f0_median_hz=round(float(np.median(voiced)), 1) if voiced.size else None,
        speaking_rate=rate, accepted=gate.accepted, reasons=list(gate.reasons),
        suggestions=list(gate.suggestions) + _delivery_suggestions(rate, f0_range),
    )
    return metrics, contour


def _delivery_suggestions(rate: float | None, f0_range: tuple[float, float] | None) -> list[str]:
    """Advice on how the voice is used, past what the ingest gate says about the recording."""
    suggestions = []
    if rate is not None and rate > FASTEST_CLEAR_RATE_SYLLABLES_PER_S:
        suggestions.append(f"speak a little more slowly: {rate:.1f} syllables per second, 3 to 5.5 reads most clearly")
    elif rate is not None and 0 < rate < SLOWEST_CLEAR_RATE_SYLLABLES_PER_S:
        suggestions.append(f"read at an even, natural pace: {rate:.1f} syllables per second is slow or halting")
    if f0_range is not None and 12 * np.log2(f0_range[1] / f0_range[0]) < MONOTONE_RANGE_SEMITONES:
        suggestions.append("read with natural intonation: your pitch barely moves, so a clone would sound flat")
    return suggestions


def compare_speakers(embedding: np.ndarray, other: np.ndarray) -> SpeakerComparison:
    """The calibrated same-speaker verdict on two Resemblyzer embeddings."""
    if np.shape(embedding) != np.shape(other):
        raise InvalidEmbeddingError(f"embeddings of shapes {np.shape(embedding)} and {np.shape(other)} do not compare")
    score = round(cosine_similarity(embedding, other), 4)
    return SpeakerComparison(score=score, verdict="same" if score >= SAME_SPEAKER_MIN_COSINE else "different",
                             threshold=SAME_SPEAKER_MIN_COSINE, encoder=SAME_SPEAKER_ENCODER,
                             calibration=SAME_SPEAKER_CALIBRATION)


def project_to_plane(embeddings: np.ndarray) -> np.ndarray:
    """``[n, 2]`` coordinates of ``[n, d]`` embeddings on their first two principal components."""
    centred = np.asarray(embeddings, dtype=np.float64) - np.mean(embeddings, axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    plane = centred @ components[:2].T
    return np.pad(plane, ((0, 0), (0, 2 - plane.shape[1])))  # fewer than 3 points span less than a plane


def _frame_intensity_db(samples: np.ndarray, frame_count: int) -> np.ndarray:
    """Power in dB of ``INTENSITY_SMOOTHING_MS`` windows centred on each F0 frame."""
    hop = int(ANALYSIS_SAMPLE_RATE_HZ * F0_FRAME_PERIOD_MS / 1000)
    half_window = int(ANALYSIS_SAMPLE_RATE_HZ * INTENSITY_SMOOTHING_MS / 2000)
    power = np.concatenate([[0.0], np.cumsum(np.asarray(samples, dtype=np.float64) ** 2)])
    centres = np.arange(frame_count) * hop
    starts = np.clip(centres - half_window, 0, samples.size)
    stops = np.clip(centres + half_window, 0, samples.size)
    mean_power = (power[stops] - power[starts]) / np.maximum(stops - starts, 1)
    return 10 * np.log10(mean_power + 1e-10)
