import subprocess
import sys

import numpy as np
import pytest

from processors.audio.codec_quality import resample
from processors.constants import VAD_MIN_SILENCE_MS, VAD_MIN_SPEECH_MS, VAD_SPEECH_PROBABILITY

RATE_HZ = 16000


def _speech_seconds(spans, sample_rate_hz):
    return sum(span.stop - span.start for span in spans) / sample_rate_hz


def _swelling_noise(colour, seconds):
    """White or pink noise rising and falling like a fan, with loud and quiet stretches like speech and pauses."""
    rng = np.random.default_rng(7)
    spectrum = np.fft.rfft(rng.standard_normal(seconds * RATE_HZ))
    if colour == "pink":
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
    noise = np.fft.irfft(spectrum)
    swell = 1 + 0.9 * np.sin(2 * np.pi * 0.7 * np.arange(noise.size) / RATE_HZ)
    return (0.2 * noise / np.abs(noise).max() * swell).astype(np.float32)


def test_finds_most_of_real_read_speech(speech_detector, english_speech_8s, czech_male_speech):
    czech, czech_rate_hz = czech_male_speech
    czech_spans = speech_detector.speech_spans(czech, czech_rate_hz)

    assert _speech_seconds(speech_detector.speech_spans(english_speech_8s, RATE_HZ), RATE_HZ) > 6.5
    assert _speech_seconds(czech_spans, czech_rate_hz) > 0.6 * czech.size / czech_rate_hz


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_hears_no_speech_in_noise(speech_detector, colour):
    assert _speech_seconds(speech_detector.speech_spans(_swelling_noise(colour, 10), RATE_HZ), RATE_HZ) < 0.3


def test_hears_no_speech_in_silence_or_faint_hiss(speech_detector):
    hiss = (1e-4 * np.random.default_rng(1).standard_normal(5 * RATE_HZ)).astype(np.float32)

    assert speech_detector.speech_spans(np.zeros(5 * RATE_HZ, np.float32), RATE_HZ) == []
    assert speech_detector.speech_spans(hiss, RATE_HZ) == []
    assert speech_detector.speech_spans(np.zeros(0, np.float32), RATE_HZ) == []


def test_spans_are_sample_indices_at_the_callers_rate(speech_detector, english_speech_8s):
    at_44k = resample(english_speech_8s, RATE_HZ, 44100)

    spans_44k = np.array(speech_detector.speech_spans(at_44k, 44100))
    spans_heard_at_16k = np.array(speech_detector.speech_spans(resample(at_44k, 44100, RATE_HZ), RATE_HZ))

    assert len(spans_44k) > 1
    assert np.max(np.abs(spans_44k - spans_heard_at_16k * 44100 / RATE_HZ)) <= 1


def test_the_callers_rate_barely_changes_what_is_heard(speech_detector, english_speech_8s):
    # not span for span: a pause whose probability sits at the exit threshold may close a stretch at one rate only
    spans_16k = speech_detector.speech_spans(english_speech_8s, RATE_HZ)
    spans_44k = speech_detector.speech_spans(resample(english_speech_8s, RATE_HZ, 44100), 44100)

    assert _speech_seconds(spans_44k, 44100) == pytest.approx(_speech_seconds(spans_16k, RATE_HZ), abs=0.25)
    starts_16k = np.array([span.start for span in spans_16k]) / RATE_HZ
    for span in spans_44k:
        assert np.min(np.abs(starts_16k - span.start / 44100)) < 0.05


def _silero_spans(samples):
    """silero-vad's own torch-side pipeline with the detector's settings, as ``(start, stop)`` at 16 kHz."""
    torch = pytest.importorskip("torch")
    silero_vad = pytest.importorskip("silero_vad")

    stamps = silero_vad.get_speech_timestamps(
        torch.from_numpy(samples),
        silero_vad.load_silero_vad(onnx=True),
        threshold=VAD_SPEECH_PROBABILITY,
        sampling_rate=RATE_HZ,
        min_speech_duration_ms=VAD_MIN_SPEECH_MS,
        min_silence_duration_ms=VAD_MIN_SILENCE_MS,
        speech_pad_ms=0,
    )
    return [(stamp["start"], stamp["end"]) for stamp in stamps]


def _with_silences(speech):
    """Speech cut apart by silences longer and shorter than the minimum pause, and an odd-length tail."""
    long_pause, short_pause = np.zeros(int(0.7 * RATE_HZ), np.float32), np.zeros(int(0.08 * RATE_HZ), np.float32)
    pieces = [speech[: 3 * RATE_HZ], long_pause, speech[3 * RATE_HZ : 5 * RATE_HZ], short_pause]
    return np.concatenate([*pieces, speech[5 * RATE_HZ : 7 * RATE_HZ], long_pause, speech[7 * RATE_HZ : -1234]])


@pytest.mark.parametrize("make_clip", [lambda speech: speech, _with_silences], ids=["read speech", "with silences"])
def test_spans_match_silero_vads_own_timestamps(speech_detector, english_speech_8s, make_clip):
    clip = make_clip(english_speech_8s)

    ours = speech_detector.speech_spans(clip, RATE_HZ)
    theirs = _silero_spans(clip)

    assert len(ours) == len(theirs) > 1
    assert np.max(np.abs(np.array(ours) - np.array(theirs))) <= 512


def test_spans_match_silero_vads_own_timestamps_for_another_speaker(speech_detector, czech_male_speech):
    czech, czech_rate_hz = czech_male_speech
    assert czech_rate_hz == RATE_HZ

    ours = speech_detector.speech_spans(czech, czech_rate_hz)
    theirs = _silero_spans(czech)

    assert len(ours) == len(theirs) > 1
    assert np.max(np.abs(np.array(ours) - np.array(theirs))) <= 512


def test_the_detector_does_not_load_torch():
    # silero-vad's package imports torch, whose CUDA build costs every worker ~600 MB resident
    script = "import sys; from processors.audio.vad import SpeechDetector; SpeechDetector(); print('torch' in sys.modules)"

    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert completed.stdout.strip() == "False"
