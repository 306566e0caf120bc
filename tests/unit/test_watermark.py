"""The watermark on real speech: payloads come back after the damage a shared clip goes through,
and nothing is found where no mark (or another key's mark) was put."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from scipy.signal import butter, resample_poly, sosfilt

from infra.speech_assets import czech_actor_utterance
from processors.errors import InvalidWatermarkInputError, WatermarkAudioTooShortError
from processors.trust.watermark import (
    WATERMARK_SAMPLE_RATE_HZ,
    detect_watermark,
    embed_watermark,
    mark_snr_db,
    watermark_presence,
)

RATE_HZ = WATERMARK_SAMPLE_RATE_HZ
KEY = bytes(range(32))
PAYLOAD = bytes.fromhex("0123456789abcdef")
CLIP_S = 5.0


def at_24k(samples: np.ndarray, rate_hz: int, seconds: float, start_s: float = 0.0) -> np.ndarray:
    """A peak-normalised (0.5, so +6 dB does not clip) excerpt at 24 kHz."""
    excerpt = samples[int(start_s * rate_hz):int((start_s + seconds) * rate_hz)]
    upsampled = resample_poly(excerpt, RATE_HZ, rate_hz) if rate_hz != RATE_HZ else excerpt
    return (0.5 * upsampled / np.max(np.abs(upsampled))).astype(np.float32)


@pytest.fixture(scope="module")
def english(english_heldout_speech) -> np.ndarray:
    return at_24k(*english_heldout_speech, CLIP_S)


@pytest.fixture(scope="module")
def czech(czech_male_speech) -> np.ndarray:
    return at_24k(*czech_male_speech, CLIP_S)


@pytest.fixture(scope="module")
def synthetic(espeak_tts) -> np.ndarray:
    """Rule-based text-to-speech, standing in for a cloned voice."""
    samples, rate_hz = espeak_tts.synthesize("This voice was cloned with the owner's signed consent.", "en")
    return at_24k(samples, rate_hz, len(samples) / rate_hz)


@pytest.fixture(scope="module")
def marked_english(english) -> np.ndarray:
    return embed_watermark(english, RATE_HZ, KEY, PAYLOAD)


@pytest.fixture(scope="module")
def marked_czech(czech) -> np.ndarray:
    return embed_watermark(czech, RATE_HZ, KEY, PAYLOAD)


@pytest.mark.parametrize("clip", ["english", "czech", "synthetic"])
def test_marked_speech_gives_back_its_payload(clip, request):
    speech = request.getfixturevalue(clip)
    payload = bytes.fromhex("fedcba9876543210") if clip == "synthetic" else PAYLOAD
    detection = detect_watermark(embed_watermark(speech, RATE_HZ, KEY, payload), RATE_HZ, KEY)
    assert detection.detected and detection.payload == payload and detection.reason is None
    assert detection.confidence > 0.95


def test_the_mark_stays_25_db_under_the_speech(english, marked_english, czech, marked_czech):
    for speech, marked in ((english, marked_english), (czech, marked_czech)):
        assert marked.dtype == np.float32 and marked.shape == speech.shape
        assert np.max(np.abs(marked)) <= 1.0
        assert mark_snr_db(speech, marked) >= 25.0


def resampled_to_16k_and_back(samples):
    return resample_poly(resample_poly(samples, 2, 3), 3, 2)


def with_noise_at_20_db(samples):
    noise = np.random.default_rng(7).normal(0.0, np.sqrt(np.mean(samples**2) / 100), samples.shape)
    return samples + noise


def low_passed_at_8_khz(samples):
    return sosfilt(butter(8, 8000, fs=RATE_HZ, output="sos"), samples)


def low_passed_at_4_khz(samples):
    return sosfilt(butter(8, 4000, fs=RATE_HZ, output="sos"), samples)


def over_a_phone_line(samples):
    """300-3400 Hz, 8 kHz, 8-bit G.711 μ-law (μ = 255): what a telephone call delivers."""
    band = sosfilt(butter(4, (300, 3400), btype="bandpass", fs=RATE_HZ, output="sos"), samples)
    at_8k = np.clip(resample_poly(band, 1, 3), -1.0, 1.0)
    companded = np.round(127 * np.sign(at_8k) * np.log1p(255 * np.abs(at_8k)) / np.log1p(255)) / 127
    return (np.sign(companded) * np.expm1(np.abs(companded) * np.log1p(255)) / 255).astype(np.float32)


ATTACKS = {
    "resampled to 16 kHz and back": resampled_to_16k_and_back,
    "white noise at 20 dB SNR": with_noise_at_20_db,
    "6 dB louder": lambda samples: samples * 2.0,
    "6 dB quieter": lambda samples: samples * 0.5,
    "low-passed at 8 kHz": low_passed_at_8_khz,
    "low-passed at 4 kHz": low_passed_at_4_khz,
    "first 10 % cut off": lambda samples: samples[samples.size // 10:],
    "last 10 % cut off": lambda samples: samples[:samples.size - samples.size // 10],
}


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
@pytest.mark.parametrize("clip", ["marked_english", "marked_czech"])
def test_payload_survives(attack, clip, request):
    damaged = ATTACKS[attack](request.getfixturevalue(clip)).astype(np.float32)
    detection = detect_watermark(damaged, RATE_HZ, KEY)
    assert detection.detected and detection.payload == PAYLOAD


def rubber_band(samples, option):
    """Rubber Band (ffmpeg's ``rubberband`` filter), the time-stretch and pitch shift editors use."""
    raw = ["-f", "f32le", "-ac", "1", "-ar", str(RATE_HZ)]
    command = ["ffmpeg", "-v", "error", *raw, "-i", "pipe:0", "-af", f"rubberband={option}", *raw, "pipe:1"]
    output = subprocess.run(command, input=samples.astype(np.float32).tobytes(), capture_output=True, check=True)
    return np.frombuffer(output.stdout, dtype=np.float32).copy()


SEMITONE = 2 ** (1 / 12)
RESCALINGS = {
    "5 % faster": "tempo=1.05",
    "5 % slower": "tempo=0.95",
    "a semitone higher": f"pitch={SEMITONE:.6f}",
    "a semitone lower": f"pitch={1 / SEMITONE:.6f}",
}


@pytest.fixture(scope="module", params=["english_heldout_speech", "czech_male_speech"], ids=["english", "czech"])
def marked_six_seconds(request) -> np.ndarray:
    """6 s, shorter than most shared clips: the less audio, the fewer repeats of each coded bit."""
    return embed_watermark(at_24k(*request.getfixturevalue(request.param), 6.0), RATE_HZ, KEY, PAYLOAD)


@pytest.mark.parametrize("rescaling", RESCALINGS, ids=list(RESCALINGS))
def test_payload_survives_time_stretch_and_pitch_shift(rescaling, marked_six_seconds):
    detection = detect_watermark(rubber_band(marked_six_seconds, RESCALINGS[rescaling]), RATE_HZ, KEY)
    assert detection.detected and detection.payload == PAYLOAD


@pytest.mark.parametrize("rescaling", RESCALINGS, ids=list(RESCALINGS))
def test_stretched_or_shifted_unmarked_speech_is_not_detected(rescaling, english_heldout_speech):
    rescaled = rubber_band(at_24k(*english_heldout_speech, 12.0), RESCALINGS[rescaling])
    detection = detect_watermark(rescaled, RATE_HZ, KEY)
    assert not detection.detected and detection.confidence < 0.5


def test_detection_reads_16_khz_audio_directly(marked_english):
    detection = detect_watermark(resample_poly(marked_english, 2, 3).astype(np.float32), 16000, KEY)
    assert detection.payload == PAYLOAD


@pytest.mark.parametrize("clip", ["marked_english", "marked_czech"])
def test_a_phone_call_recording_at_8_khz_gives_back_its_payload(clip, request):
    detection = detect_watermark(over_a_phone_line(request.getfixturevalue(clip)), 8000, KEY)
    assert detection.detected and detection.payload == PAYLOAD


def test_audio_at_16_khz_can_be_marked(english_heldout_speech):
    samples, rate_hz = english_heldout_speech
    speech = (0.5 * samples[:int(CLIP_S * rate_hz)]).astype(np.float32)
    marked = embed_watermark(speech, rate_hz, KEY, PAYLOAD)
    assert marked.shape == speech.shape and mark_snr_db(speech, marked) >= 25.0
    assert detect_watermark(marked, rate_hz, KEY).payload == PAYLOAD


def test_clips_marked_one_by_one_and_joined_with_pauses_are_read(english, czech, synthetic):
    pause = np.zeros(int(0.25 * RATE_HZ), dtype=np.float32)
    pieces = [embed_watermark(clip[:int(3.0 * RATE_HZ)], RATE_HZ, KEY, PAYLOAD) for clip in (czech, synthetic, english)]
    joined = np.concatenate([pieces[0], pause, pieces[1], pause, pieces[2]])
    assert detect_watermark(joined, RATE_HZ, KEY).payload == PAYLOAD


def test_another_key_finds_nothing(marked_english, marked_czech):
    for marked in (marked_english, marked_czech):
        detection = detect_watermark(marked, RATE_HZ, b"someone else's key")
        assert not detection.detected and detection.payload is None and detection.confidence < 0.5


def test_unmarked_speech_is_not_detected(english_heldout_speech, czech_male_speech, synthetic):
    small_fish = czech_actor_utterance("small_fish", 12.0)
    clips = [at_24k(*source, seconds, start)
             for source in (english_heldout_speech, czech_male_speech, small_fish)
             for seconds, start in ((1.5, 0.0), (3.0, 2.0), (6.0, 5.0), (12.0, 0.0))]
    detections = [detect_watermark(clip, RATE_HZ, KEY) for clip in [*clips, synthetic]]
    assert not any(detection.detected for detection in detections)
    assert max(detection.confidence for detection in detections) < 0.5


def test_presence_tells_cloned_from_original_audio(synthetic, english):
    for original in (synthetic, english):
        marked = embed_watermark(original, RATE_HZ, KEY, PAYLOAD)
        assert watermark_presence(marked, RATE_HZ, KEY) > 0.9
        assert watermark_presence(original, RATE_HZ, KEY) < 0.2


def test_a_two_and_a_half_second_clip_carries_its_payload(czech, english):
    for speech in (czech, english):
        clip = speech[:int(2.5 * RATE_HZ)]
        assert detect_watermark(embed_watermark(clip, RATE_HZ, KEY, PAYLOAD), RATE_HZ, KEY).payload == PAYLOAD


def test_a_one_second_clip_is_marked_quietly_and_never_misread(czech):
    clip = czech[:RATE_HZ]
    marked = embed_watermark(clip, RATE_HZ, KEY, PAYLOAD)
    assert mark_snr_db(clip, marked) >= 25.0
    detection = detect_watermark(marked, RATE_HZ, KEY)
    assert detection.payload in (PAYLOAD, None)


@pytest.mark.parametrize("samples, reason", [
    (np.zeros(0, dtype=np.float32), "empty"),
    (np.full(RATE_HZ * 2, np.nan, dtype=np.float32), "NaN"),
    (np.zeros((2, RATE_HZ * 2), dtype=np.float32), "1-D"),
    (np.zeros(RATE_HZ * 2, dtype=np.int16), "float"),
])
def test_malformed_audio_is_refused_by_name(samples, reason):
    with pytest.raises(InvalidWatermarkInputError, match=reason):
        embed_watermark(samples, RATE_HZ, KEY, PAYLOAD)
    with pytest.raises(InvalidWatermarkInputError, match=reason):
        detect_watermark(samples, RATE_HZ, KEY)


def test_bad_rate_key_or_payload_is_refused(english):
    with pytest.raises(InvalidWatermarkInputError, match="sample rate"):
        embed_watermark(english, 8000, KEY, PAYLOAD)
    with pytest.raises(InvalidWatermarkInputError, match="sample rate"):
        detect_watermark(english, 4000, KEY)
    with pytest.raises(InvalidWatermarkInputError, match="key"):
        detect_watermark(english, RATE_HZ, b"")
    with pytest.raises(InvalidWatermarkInputError, match="8 bytes"):
        embed_watermark(english, RATE_HZ, KEY, b"short")
    with pytest.raises(InvalidWatermarkInputError, match="silent"):
        embed_watermark(np.zeros(RATE_HZ * 2, dtype=np.float32), RATE_HZ, KEY, PAYLOAD)


def test_too_short_audio_is_refused_for_marking_and_reported_for_detection(english):
    with pytest.raises(WatermarkAudioTooShortError):
        embed_watermark(english[:RATE_HZ // 2], RATE_HZ, KEY, PAYLOAD)
    detection = detect_watermark(english[:RATE_HZ // 2], RATE_HZ, KEY)
    assert not detection.detected and "too short" in detection.reason
    assert watermark_presence(english[:RATE_HZ // 2], RATE_HZ, KEY) == 0.0
    silent = detect_watermark(np.zeros(RATE_HZ * 2, dtype=np.float32), RATE_HZ, KEY)
    assert not silent.detected and "silent" in silent.reason
