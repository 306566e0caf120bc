"""Where the speech is: silero-vad (MIT, its ONNX weights ship in the ``silero-vad`` wheel).

The model runs through onnxruntime directly: the ``silero_vad`` package imports torch on import,
and torch's CUDA build costs every worker ~600 MB resident. ``SpeechDetector`` reproduces
``silero_vad.get_speech_timestamps`` (6.2.3) with its ONNX wrapper, for no padding, no
maximum stretch length and 16 kHz audio.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np

from processors.audio.codec_quality import resample, to_mono
from processors.constants import VAD_MIN_SILENCE_MS, VAD_MIN_SPEECH_MS, VAD_SAMPLE_RATE_HZ, VAD_SPEECH_PROBABILITY
from processors.errors import SpeechDetectorUnavailableError

_WINDOW_SAMPLES = 512  # silero-vad's frame at 16 kHz
_CONTEXT_SAMPLES = 64  # the end of the previous window, fed in again ahead of each window
_STATE_SHAPE = (2, 1, 128)  # the recurrent state carried from window to window
_EXIT_MARGIN = 0.15  # a stretch ends below (VAD_SPEECH_PROBABILITY - this), as in silero-vad
_MIN_EXIT_PROBABILITY = 0.01
_INSTALL_HINT = "neural voice-activity detection needs silero-vad and onnxruntime (pip install silero-vad==6.2.3)"


class SpeechSpan(NamedTuple):
    """One stretch of speech as ``[start, stop)`` sample indices."""

    start: int
    stop: int


class SpeechDetector:
    """silero-vad's ONNX model on one CPU thread; the model loads once per instance.

    One instance may be shared between threads: the recurrent state carried from one 32 ms window
    to the next lives in each call, and onnxruntime sessions run concurrently.
    """

    name = "silero-vad"

    def __init__(self) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise SpeechDetectorUnavailableError(_INSTALL_HINT) from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(_packaged_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def speech_spans(self, samples: np.ndarray, sample_rate_hz: int) -> list[SpeechSpan]:
        """Stretches of speech in ``[n]`` or ``[channels, n]`` audio, as sample indices at ``sample_rate_hz``."""
        mono = to_mono(samples)
        at_vad_rate = resample(mono, sample_rate_hz, VAD_SAMPLE_RATE_HZ)
        if at_vad_rate.size == 0:
            return []
        probabilities = self._speech_probabilities(at_vad_rate)
        scale = sample_rate_hz / VAD_SAMPLE_RATE_HZ
        return [
            SpeechSpan(start=_at_rate(start, scale, mono.size), stop=_at_rate(stop, scale, mono.size))
            for start, stop in _stretches(probabilities, at_vad_rate.size)
        ]

    def _speech_probabilities(self, samples: np.ndarray) -> list[float]:
        """One speech probability per 512-sample window of 16 kHz ``[n]`` audio, the last window zero-padded."""
        padded = np.pad(samples, (_CONTEXT_SAMPLES, -samples.size % _WINDOW_SAMPLES)).astype(np.float32)
        state = np.zeros(_STATE_SHAPE, np.float32)
        rate = np.array(VAD_SAMPLE_RATE_HZ, dtype=np.int64)
        probabilities = []
        for start in range(0, samples.size, _WINDOW_SAMPLES):
            window = padded[None, start : start + _CONTEXT_SAMPLES + _WINDOW_SAMPLES]
            probability, state = self._session.run(None, {"input": window, "state": state, "sr": rate})
            probabilities.append(float(probability.item()))
        return probabilities


def _stretches(probabilities: list[float], sample_count: int) -> list[tuple[int, int]]:
    """Speech stretches ``[start, stop)`` at 16 kHz from per-window probabilities, by silero-vad's hysteresis.

    A stretch opens at a window at or above ``VAD_SPEECH_PROBABILITY``. It closes where the
    probability first fell below the lower exit probability, once ``VAD_MIN_SILENCE_MS`` pass from
    there without a window back at ``VAD_SPEECH_PROBABILITY``. Stretches no longer than
    ``VAD_MIN_SPEECH_MS`` are dropped.
    """
    exit_probability = max(VAD_SPEECH_PROBABILITY - _EXIT_MARGIN, _MIN_EXIT_PROBABILITY)
    min_speech_samples = VAD_SAMPLE_RATE_HZ * VAD_MIN_SPEECH_MS / 1000
    min_silence_samples = VAD_SAMPLE_RATE_HZ * VAD_MIN_SILENCE_MS / 1000
    stretches = []
    start: int | None = None
    silence_start: int | None = None
    for index, probability in enumerate(probabilities):
        position = index * _WINDOW_SAMPLES
        if probability >= VAD_SPEECH_PROBABILITY:
            silence_start = None
            if start is None:
                start = position
                continue
        if start is not None and probability < exit_probability:
            silence_start = position if silence_start is None else silence_start
            if position - silence_start >= min_silence_samples:
                if silence_start - start > min_speech_samples:
                    stretches.append((start, silence_start))
                start = silence_start = None
    if start is not None and sample_count - start > min_speech_samples:
        stretches.append((start, sample_count))
    return stretches


def _packaged_model_path() -> Path:
    """silero-vad's ONNX file, found without importing the package (its ``__init__`` imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise SpeechDetectorUnavailableError(_INSTALL_HINT)
    model_path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not model_path.is_file():
        raise SpeechDetectorUnavailableError(f"silero-vad is installed without its ONNX model ({model_path})")
    return model_path


def _at_rate(vad_sample_index: int, scale: float, sample_count: int) -> int:
    return min(sample_count, round(vad_sample_index * scale))
