import subprocess
import sys

import numpy as np
import pytest

from processors.audio import resample

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
    at_16k = speech_detector.speech_spans(english_speech_8s, RATE_HZ)
    at_44k = speech_detector.speech_spans(resample(english_speech_8s, RATE_HZ, 44100), 44100)

    assert len(at_44k) == len(at_16k)
    starts_16k = np.array([span.start for span in at_16k]) / RATE_HZ
    starts_44k = np.array([span.start for span in at_44k]) / 44100
    assert np.max(np.abs(starts_16k - starts_44k)) < 0.05


def test_loading_the_detector_leaves_torchs_thread_count_alone():
    # a fresh interpreter, because silero-vad changes the thread count only on its first import
    script = (
        "import torch; torch.set_num_threads(2); "
        "from processors.vad import SpeechDetector; SpeechDetector(); print(torch.get_num_threads())"
    )

    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert completed.stdout.strip() == "2"
