"""Decode, clean and judge uploaded voice samples.

Arrays are float32 in [-1, 1]: mono is shape ``[n]``, multichannel ``[channels, n]``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from processors.constants import (
    ANALYSIS_SAMPLE_RATE_HZ,
    CLIPPING_LEVEL,
    DNSMOS_EXCERPT_S,
    DNSMOS_MAX_EXCERPTS,
    ENERGY_FRAME_MS,
    FFMPEG_TIMEOUT_S,
    LEVEL_FLOOR_DBFS,
    MAX_CLIPPING_RATIO,
    MAX_DECODE_DURATION_S,
    MAX_SAMPLE_DURATION_S,
    MIN_INGEST_DNSMOS,
    MIN_SNR_DB,
    MIN_SPEECH_DURATION_S,
    MIN_VOICED_DURATION_S,
    NOISE_FLOOR_PERCENTILE,
    PEAK_CEILING_DBFS,
    QUIET_RMS_DBFS,
    RECOMMENDED_SPEECH_DURATION_S,
    SILENT_PEAK_DBFS,
    SPEECH_ABOVE_NOISE_DB,
    SPEECH_ABSOLUTE_FLOOR_DBFS,
    TARGET_RMS_DBFS,
    TRIM_PADDING_MS,
    VOICING_MAX_F0_HZ,
    VOICING_MAX_FRAMES,
    VOICING_MIN_F0_HZ,
    VOICING_THRESHOLD,
)
from processors.errors import (
    AudioDecodeError,
    AudioTooLongError,
    EmptyAudioError,
    ExternalToolMissingError,
    InvalidAudioError,
)

if TYPE_CHECKING:
    from processors.scoring.quality import DnsmosEstimator
    from processors.audio.vad import SpeechDetector

MAX_SNR_DB = 100.0  # reported for recordings whose pauses are digital silence
ENERGY_DETECTOR_NAME = "energy"  # QualityReport.vad when no neural detector was given


@dataclass(frozen=True)
class DecodedAudio:
    """Audio as stored in the upload: ``samples`` float32 ``[channels, n]`` at its own rate."""

    samples: np.ndarray
    sample_rate_hz: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.sample_rate_hz


@dataclass(frozen=True)
class QualityReport:
    """Whether a sample is good enough to learn a voice from, and what to do about it if not.

    ``vad`` names the detector that found the speech (``"energy"`` or ``"silero-vad"``); ``dnsmos``
    is the DNSMOS overall MOS (1-5) of the speech, ``None`` when no estimator was given or no speech was found.
    """

    duration_s: float
    speech_duration_s: float
    voiced_duration_s: float
    snr_db: float
    clipping_ratio: float
    peak_dbfs: float
    speech_rms_dbfs: float
    accepted: bool
    reasons: list[str]
    suggestions: list[str]
    dnsmos: float | None = None
    vad: str = ENERGY_DETECTOR_NAME

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PreparedSample:
    """A decoded upload as the voice pipeline uses it: mono, resampled, trimmed, loudness-normalised.

    ``samples`` is float32 ``[n]`` at ``sample_rate_hz``; the ``original_*`` fields describe the upload.
    """

    samples: np.ndarray
    sample_rate_hz: int
    report: QualityReport
    original_rate_hz: int
    original_channels: int
    original_duration_s: float


def decode_audio(data: bytes) -> DecodedAudio:
    """Decode WAV/FLAC/Ogg (Vorbis, Opus)/MP3 with libsndfile, anything else ffmpeg reads (m4a, …)."""
    if not data:
        raise EmptyAudioError("no audio bytes were given")
    try:
        decoded = _decode_with_soundfile(data)
    except (RuntimeError, ValueError):
        decoded = _decode_with_ffmpeg(data)
    if decoded.samples.shape[1] == 0:
        raise EmptyAudioError("the audio container holds no samples")
    if not np.all(np.isfinite(decoded.samples)):
        raise AudioDecodeError("the decoded audio contains non-finite samples")
    return decoded


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of ``[channels, n]`` audio; ``[n]`` passes through. Returns float32 ``[n]``."""
    array = _checked(samples)
    return array if array.ndim == 1 else array.mean(axis=0, dtype=np.float32)


def resample(samples: np.ndarray, orig_rate_hz: int, target_rate_hz: int) -> np.ndarray:
    """Band-limited resampling along the last axis; shape ``[..., n]`` becomes ``[..., ceil(n * target / orig)]``.

    soxr rather than torchaudio: torchaudio pulls the CUDA build of torch (~600 MB resident) into
    every worker that only needs a resampler.
    """
    array = _checked(samples)
    _check_rate(orig_rate_hz)
    _check_rate(target_rate_hz)
    if orig_rate_hz == target_rate_hz:
        return array
    length = -(-array.shape[-1] * target_rate_hz // orig_rate_hz)
    # soxr rounds its output length down where torchaudio rounds up; the trailing zeros let it
    # produce that last sample (zeros past the end are what it assumes anyway, so nothing else moves)
    padded = np.pad(array, [(0, 0)] * (array.ndim - 1) + [(0, -(-orig_rate_hz // target_rate_hz) + 1)])
    frames_by_channel = padded.reshape(-1, padded.shape[-1]).T
    resampled = soxr.resample(frames_by_channel, orig_rate_hz, target_rate_hz, quality="HQ")[:length]
    return np.ascontiguousarray(resampled.T.reshape(*array.shape[:-1], length), dtype=np.float32)


def normalise_loudness(
    samples: np.ndarray,
    target_rms_dbfs: float = TARGET_RMS_DBFS,
    peak_ceiling_dbfs: float = PEAK_CEILING_DBFS,
) -> np.ndarray:
    """Scale to ``target_rms_dbfs`` RMS, then down as far as needed to keep peaks under the ceiling.

    Silent input is returned unchanged, since no gain can give it a level.
    """
    array = _checked(samples)
    rms = float(np.sqrt(np.mean(np.square(array, dtype=np.float64)))) if array.size else 0.0
    if rms == 0.0:
        return array
    gain = _from_db(target_rms_dbfs) / rms
    peak = float(np.max(np.abs(array))) * gain
    gain *= min(1.0, _from_db(peak_ceiling_dbfs) / peak)
    return (array * gain).astype(np.float32)


def trim_silence(
    samples: np.ndarray,
    sample_rate_hz: int,
    padding_ms: float = TRIM_PADDING_MS,
    *,
    vad: SpeechDetector | None = None,
) -> np.ndarray:
    """Cut leading and trailing non-speech from mono ``[n]`` audio, keeping ``padding_ms`` either side.

    Speech is what ``vad`` hears, or without one, frames well above the noise floor.
    Returns an empty array when no frame holds speech.
    """
    array = _checked(samples)
    _check_rate(sample_rate_hz)
    return _trimmed(array, sample_rate_hz, _speech_frame_mask(array, sample_rate_hz, vad), padding_ms)


def assess_quality(
    samples: np.ndarray,
    sample_rate_hz: int,
    *,
    vad: SpeechDetector | None = None,
    dnsmos: DnsmosEstimator | None = None,
) -> QualityReport:
    """Measure a recording and accept or reject it as voice-cloning material, saying why.

    Speech is what ``vad`` hears, or without one, frames well above the noise floor. With ``dnsmos``
    the report carries the DNSMOS of the speech, and a low one adds a suggestion, never a rejection.
    """
    mono = to_mono(samples)
    _check_rate(sample_rate_hz)
    speech = _speech_frame_mask(mono, sample_rate_hz, vad)
    return _assess(mono, sample_rate_hz, speech, _detector_name(vad), dnsmos)


def prepare_sample(
    data: bytes,
    target_rate_hz: int = ANALYSIS_SAMPLE_RATE_HZ,
    *,
    vad: SpeechDetector | None = None,
    dnsmos: DnsmosEstimator | None = None,
) -> PreparedSample:
    """Decode an upload, down-mix, resample to ``target_rate_hz`` and judge it.

    The quality report is measured before trimming and normalisation, so clipping and level are
    those of the upload; speech is found (and trimmed to) as ``assess_quality`` does. A rejected
    sample is still returned, with the report saying why.
    """
    decoded = decode_audio(data)
    mono = resample(to_mono(decoded.samples), decoded.sample_rate_hz, target_rate_hz)
    speech = _speech_frame_mask(mono, target_rate_hz, vad)
    report = _assess(mono, target_rate_hz, speech, _detector_name(vad), dnsmos)
    trimmed = _trimmed(mono, target_rate_hz, speech, TRIM_PADDING_MS)
    return PreparedSample(
        samples=normalise_loudness(trimmed) if trimmed.size else mono,
        sample_rate_hz=target_rate_hz,
        report=report,
        original_rate_hz=decoded.sample_rate_hz,
        original_channels=decoded.channels,
        original_duration_s=decoded.duration_s,
    )


def encode_wav(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    """16-bit PCM WAV bytes of ``[n]`` or ``[channels, n]`` audio; samples outside [-1, 1] are clipped."""
    array = _checked(samples)
    _check_rate(sample_rate_hz)
    buffer = io.BytesIO()
    frames_by_channel = np.clip(array if array.ndim == 1 else array.T, -1.0, 1.0)
    sf.write(buffer, frames_by_channel, sample_rate_hz, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _decode_with_soundfile(data: bytes) -> DecodedAudio:
    with sf.SoundFile(io.BytesIO(data)) as audio_file:
        _check_decode_duration(audio_file.frames / audio_file.samplerate)
        frames = audio_file.read(dtype="float32", always_2d=True)
        return DecodedAudio(samples=np.ascontiguousarray(frames.T), sample_rate_hz=int(audio_file.samplerate))


def _decode_with_ffmpeg(data: bytes) -> DecodedAudio:
    """Decode through ffmpeg, handing it the bytes as a seekable in-memory file (m4a needs seeking)."""
    if shutil.which("ffmpeg") is None:
        raise ExternalToolMissingError("decoding this format needs ffmpeg on PATH (apt-get install -y ffmpeg)")
    memory_fd = os.memfd_create("voxflow-audio")
    try:
        os.write(memory_fd, data)
        os.lseek(memory_fd, 0, os.SEEK_SET)
        # -t stops a stream just past the limit, so an over-long upload is refused without filling memory
        input_args = ["-i", f"/dev/fd/{memory_fd}", "-t", str(MAX_DECODE_DURATION_S + 1)]
        command = ["ffmpeg", "-nostdin", "-v", "error", *input_args, "-f", "wav", "-c:a", "pcm_f32le", "pipe:1"]
        completed = subprocess.run(
            command, pass_fds=(memory_fd,), capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as timeout:
        raise AudioDecodeError(f"ffmpeg did not finish decoding within {FFMPEG_TIMEOUT_S} s") from timeout
    finally:
        os.close(memory_fd)
    if completed.returncode != 0 or not completed.stdout:
        detail = completed.stderr.decode(errors="replace").strip().splitlines()
        last_line = detail[-1].removeprefix(f"/dev/fd/{memory_fd}: ") if detail else "no audio stream"
        raise AudioDecodeError(f"not a supported audio format ({last_line})")
    try:
        return _decode_with_soundfile(completed.stdout)
    except (RuntimeError, ValueError) as error:
        raise AudioDecodeError("ffmpeg produced no readable audio stream") from error


def _assess(
    mono: np.ndarray, sample_rate_hz: int, speech: np.ndarray, detector_name: str, dnsmos: DnsmosEstimator | None
) -> QualityReport:
    """The quality report of mono ``[n]`` audio whose speech frames (``ENERGY_FRAME_MS`` each) are ``speech``."""
    duration_s = mono.size / sample_rate_hz
    levels_db = _frame_levels_db(mono, sample_rate_hz)
    speech_duration_s = float(speech.sum()) * ENERGY_FRAME_MS / 1000
    voiced_duration_s = _voiced_duration_s(mono, sample_rate_hz, speech)
    peak_dbfs = _to_db(float(np.max(np.abs(mono)))) if mono.size else LEVEL_FLOOR_DBFS
    speech_rms_dbfs = (
        _power_to_db(float(np.mean(_db_to_power(levels_db[speech])))) if speech.any() else LEVEL_FLOOR_DBFS
    )
    clipping_ratio = float(np.mean(np.abs(mono) >= CLIPPING_LEVEL)) if mono.size else 0.0
    snr_db = _estimate_snr_db(levels_db, speech)
    dnsmos_overall = (
        _dnsmos_overall(_trimmed(mono, sample_rate_hz, speech, TRIM_PADDING_MS), sample_rate_hz, dnsmos)
        if dnsmos is not None and speech.any()
        else None
    )
    reasons, suggestions = _judge(
        duration_s,
        speech_duration_s,
        voiced_duration_s,
        snr_db,
        clipping_ratio,
        peak_dbfs,
        speech_rms_dbfs,
        dnsmos_overall,
    )
    return QualityReport(
        duration_s=duration_s,
        speech_duration_s=speech_duration_s,
        voiced_duration_s=voiced_duration_s,
        snr_db=snr_db,
        clipping_ratio=clipping_ratio,
        peak_dbfs=peak_dbfs,
        speech_rms_dbfs=speech_rms_dbfs,
        accepted=not reasons,
        reasons=reasons,
        suggestions=suggestions,
        dnsmos=dnsmos_overall,
        vad=detector_name,
    )


def _speech_frame_mask(mono: np.ndarray, sample_rate_hz: int, vad: SpeechDetector | None) -> np.ndarray:
    """Which ``ENERGY_FRAME_MS`` frames of mono ``[n]`` audio hold speech, by ``vad`` or else by energy."""
    if vad is None:
        return _speech_frames(_frame_levels_db(mono, sample_rate_hz))
    frame_length = _frame_length(sample_rate_hz)
    midpoints = np.arange(mono.size // frame_length) * frame_length + frame_length // 2
    spans = vad.speech_spans(mono, sample_rate_hz)
    if not spans:
        return np.zeros(midpoints.size, dtype=bool)
    starts = np.array([span.start for span in spans])
    stops = np.array([span.stop for span in spans])
    latest_span = np.searchsorted(starts, midpoints, side="right") - 1
    return (latest_span >= 0) & (midpoints < stops[np.maximum(latest_span, 0)])


def _trimmed(array: np.ndarray, sample_rate_hz: int, speech: np.ndarray, padding_ms: float) -> np.ndarray:
    if not speech.any():
        return array[:0]
    frame_length = _frame_length(sample_rate_hz)
    padding = int(padding_ms * sample_rate_hz / 1000)
    speech_indices = np.flatnonzero(speech)
    start = max(0, speech_indices[0] * frame_length - padding)
    stop = min(array.size, (speech_indices[-1] + 1) * frame_length + padding)
    return array[start:stop]


def _dnsmos_overall(speech: np.ndarray, sample_rate_hz: int, dnsmos: DnsmosEstimator) -> float:
    """Mean DNSMOS overall of up to ``DNSMOS_MAX_EXCERPTS`` excerpts spread evenly over mono ``[n]`` speech.

    DNSMOS slides a 9 s window in 1 s hops, and doubles a short clip until it is 9 s long, so scoring
    the whole upload would cost up to a window per second; one ``DNSMOS_EXCERPT_S`` excerpt is one window.
    """
    excerpt_length = int(DNSMOS_EXCERPT_S * sample_rate_hz)
    if speech.size < excerpt_length:
        speech = np.resize(speech, excerpt_length)  # repeats the clip, as DNSMOS itself would
    excerpt_count = min(DNSMOS_MAX_EXCERPTS, speech.size // excerpt_length)
    starts = np.linspace(0, speech.size - excerpt_length, excerpt_count).astype(int)
    scores = [dnsmos.score(speech[start : start + excerpt_length], sample_rate_hz).overall for start in starts]
    return float(np.mean(scores))


def _detector_name(vad: SpeechDetector | None) -> str:
    return vad.name if vad is not None else ENERGY_DETECTOR_NAME


def _check_decode_duration(duration_s: float) -> None:
    if duration_s > MAX_DECODE_DURATION_S:
        raise AudioTooLongError(f"audio is {duration_s:.0f} s long; at most {MAX_DECODE_DURATION_S:.0f} s is decoded")


def _judge(
    duration_s: float,
    speech_duration_s: float,
    voiced_duration_s: float,
    snr_db: float,
    clipping_ratio: float,
    peak_dbfs: float,
    speech_rms_dbfs: float,
    dnsmos: float | None,
) -> tuple[list[str], list[str]]:
    reasons: list[str] = []
    suggestions: list[str] = []
    if peak_dbfs < SILENT_PEAK_DBFS:
        reasons.append(f"the recording is silent (peak {peak_dbfs:.0f} dBFS)")
        suggestions.append("check that the microphone is connected, selected and not muted")
        return reasons, suggestions
    if duration_s > MAX_SAMPLE_DURATION_S:
        reasons.append(f"the recording is {duration_s / 60:.1f} min long; at most {MAX_SAMPLE_DURATION_S / 60:.0f} min")
        suggestions.append(f"split it into parts of at most {MAX_SAMPLE_DURATION_S / 60:.0f} minutes")
    if speech_duration_s < MIN_SPEECH_DURATION_S:
        reasons.append(f"only {speech_duration_s:.1f} s of speech; at least {MIN_SPEECH_DURATION_S:.0f} s is needed")
    elif voiced_duration_s < MIN_VOICED_DURATION_S:
        reasons.append(f"only {voiced_duration_s:.1f} s of voiced sound: this sounds like noise rather than a voice")
        suggestions.append("record your own voice speaking normally, not whispering")
    if clipping_ratio > MAX_CLIPPING_RATIO:
        reasons.append(f"{clipping_ratio:.1%} of samples are clipped; at most {MAX_CLIPPING_RATIO:.0%}")
        suggestions.append("lower the input gain or move a little further from the microphone")
    if snr_db < MIN_SNR_DB:
        reasons.append(f"too noisy: signal-to-noise ratio {snr_db:.0f} dB, at least {MIN_SNR_DB:.0f} dB is needed")
        suggestions.append("record in a quieter room, away from fans, traffic and other voices")
    elif dnsmos is not None and dnsmos < MIN_INGEST_DNSMOS:
        suggestions.append(
            f"it sounds noisy or distant (DNSMOS {dnsmos:.1f} of 5): record in a quieter room, closer to the microphone"
        )
    if speech_duration_s > 0 and speech_rms_dbfs < QUIET_RMS_DBFS:
        suggestions.append("speak up or move closer to the microphone")
    if speech_duration_s < RECOMMENDED_SPEECH_DURATION_S:
        missing_s = np.ceil(RECOMMENDED_SPEECH_DURATION_S - speech_duration_s)
        suggestions.append(f"add {missing_s:.0f} s more speech for a more faithful voice")
    return reasons, suggestions


def _estimate_snr_db(levels_db: np.ndarray, speech: np.ndarray) -> float:
    """Speech power over noise power, the noise measured in the quietest frames."""
    if not speech.any():
        return 0.0
    powers = _db_to_power(levels_db)
    noise_power = float(np.mean(powers[levels_db <= np.percentile(levels_db, NOISE_FLOOR_PERCENTILE)]))
    signal_power = float(np.mean(powers[speech])) - noise_power
    if signal_power <= 0:
        return 0.0
    return min(MAX_SNR_DB, _power_to_db(signal_power) - _power_to_db(noise_power))


def _voiced_duration_s(mono: np.ndarray, sample_rate_hz: int, speech: np.ndarray) -> float:
    """Seconds of speech frames that are periodic at a voice pitch, from at most ``VOICING_MAX_FRAMES`` of them."""
    frame_length = _frame_length(sample_rate_hz)
    window_length = 2 * frame_length
    speech_indices = np.flatnonzero(speech[: max(0, speech.size - 1)])
    if speech_indices.size == 0:
        return 0.0
    checked = speech_indices[
        np.linspace(0, speech_indices.size - 1, min(speech_indices.size, VOICING_MAX_FRAMES)).astype(int)
    ]
    windows = mono[checked[:, None] * frame_length + np.arange(window_length)[None, :]].astype(np.float64)
    periodicity = _autocorrelation_peaks(windows, sample_rate_hz)
    voiced_fraction = float(np.mean(periodicity > VOICING_THRESHOLD))
    return voiced_fraction * speech_indices.size * ENERGY_FRAME_MS / 1000


def _autocorrelation_peaks(windows: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Highest normalised autocorrelation of each window at a voice-pitch lag, past its first zero crossing.

    Looking only past the first zero crossing keeps low-frequency noise, whose autocorrelation
    decays slowly from lag 0, from passing as periodic.
    """
    window_length = windows.shape[1]
    shortest_lag = int(sample_rate_hz / VOICING_MAX_F0_HZ)
    longest_lag = min(window_length // 2, int(sample_rate_hz / VOICING_MIN_F0_HZ))
    taper = np.hanning(window_length)
    tapered = (windows - windows.mean(axis=1, keepdims=True)) * taper
    fft_size = 1 << int(np.ceil(np.log2(2 * window_length)))
    autocorrelation = np.fft.irfft(np.abs(np.fft.rfft(tapered, fft_size)) ** 2, fft_size)[:, : longest_lag + 1]
    taper_autocorrelation = np.fft.irfft(np.abs(np.fft.rfft(taper, fft_size)) ** 2, fft_size)[: longest_lag + 1]
    # dividing by the taper's own autocorrelation undoes the bias toward short lags
    normalised = (
        autocorrelation / np.maximum(autocorrelation[:, :1], 1e-20) * (taper_autocorrelation[0] / taper_autocorrelation)
    )
    negative = normalised < 0
    first_zero_crossing = np.where(negative.any(axis=1), negative.argmax(axis=1), longest_lag + 1)
    lags = np.arange(longest_lag + 1)[None, :]
    past_crossing = np.where(lags >= first_zero_crossing[:, None], normalised, -1.0)
    return past_crossing[:, shortest_lag:].max(axis=1)


def _frame_levels_db(mono: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Mean power of consecutive ``ENERGY_FRAME_MS`` frames, in dBFS (power, so 10·log10)."""
    frame_length = _frame_length(sample_rate_hz)
    frame_count = mono.size // frame_length
    if frame_count == 0:
        return np.zeros(0)
    frames = mono[: frame_count * frame_length].reshape(frame_count, frame_length).astype(np.float64)
    powers = np.mean(frames * frames, axis=1)
    return 10 * np.log10(np.maximum(powers, _db_to_power(np.float64(LEVEL_FLOOR_DBFS))))


def _speech_frames(levels_db: np.ndarray) -> np.ndarray:
    if levels_db.size == 0:
        return np.zeros(0, dtype=bool)
    noise_floor_db = np.percentile(levels_db, NOISE_FLOOR_PERCENTILE)
    return levels_db > max(noise_floor_db + SPEECH_ABOVE_NOISE_DB, SPEECH_ABSOLUTE_FLOOR_DBFS)


def _frame_length(sample_rate_hz: int) -> int:
    return max(1, int(sample_rate_hz * ENERGY_FRAME_MS / 1000))


def _checked(samples: np.ndarray) -> np.ndarray:
    array = np.asarray(samples)
    if array.ndim not in (1, 2):
        raise InvalidAudioError(f"audio must be [n] or [channels, n], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidAudioError(f"audio must be floating point in [-1, 1], got {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        raise InvalidAudioError("audio contains NaN or infinite samples")
    return array


def _check_rate(sample_rate_hz: int) -> None:
    if not isinstance(sample_rate_hz, (int, np.integer)) or sample_rate_hz <= 0:
        raise InvalidAudioError(f"sample rate must be a positive integer in Hz, got {sample_rate_hz!r}")


def _to_db(amplitude: float) -> float:
    return _power_to_db(amplitude * amplitude)


def _from_db(level_db: float) -> float:
    return 10 ** (level_db / 20)


def _power_to_db(power: float) -> float:
    return max(LEVEL_FLOOR_DBFS, 10 * float(np.log10(power))) if power > 0 else LEVEL_FLOOR_DBFS


def _db_to_power(levels_db: np.ndarray) -> np.ndarray:
    return np.power(10.0, levels_db / 10)
