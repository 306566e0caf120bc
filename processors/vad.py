"""Where the speech is: silero-vad (MIT, its ONNX weights ship in the ``silero-vad`` wheel)."""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
import torch

from processors.audio import resample, to_mono
from processors.constants import VAD_MIN_SILENCE_MS, VAD_MIN_SPEECH_MS, VAD_SAMPLE_RATE_HZ, VAD_SPEECH_PROBABILITY
from processors.errors import SpeechDetectorUnavailableError


class SpeechSpan(NamedTuple):
    """One stretch of speech as ``[start, stop)`` sample indices."""

    start: int
    stop: int


class SpeechDetector:
    """silero-vad's ONNX model on one CPU thread; the model loads once per instance.

    Importing silero-vad sets torch's process-wide thread count to 1, so the count is put back
    afterwards. One instance may be shared between threads: calls take turns, because the model
    carries recurrent state from one 32 ms window to the next.
    """

    name = "silero-vad"

    def __init__(self) -> None:
        torch_threads = torch.get_num_threads()
        try:
            import silero_vad
        except ImportError as error:
            raise SpeechDetectorUnavailableError(
                "neural voice-activity detection needs silero-vad (pip install silero-vad==6.2.3)"
            ) from error
        finally:
            torch.set_num_threads(torch_threads)
        self._model = silero_vad.load_silero_vad(onnx=True)
        self._speech_timestamps = silero_vad.get_speech_timestamps
        self._lock = threading.Lock()

    def speech_spans(self, samples: np.ndarray, sample_rate_hz: int) -> list[SpeechSpan]:
        """Stretches of speech in ``[n]`` or ``[channels, n]`` audio, as sample indices at ``sample_rate_hz``."""
        mono = to_mono(samples)
        at_vad_rate = resample(mono, sample_rate_hz, VAD_SAMPLE_RATE_HZ)
        if at_vad_rate.size == 0:
            return []
        with self._lock:
            timestamps = self._speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(at_vad_rate)),
                self._model,
                threshold=VAD_SPEECH_PROBABILITY,
                sampling_rate=VAD_SAMPLE_RATE_HZ,
                min_speech_duration_ms=VAD_MIN_SPEECH_MS,
                min_silence_duration_ms=VAD_MIN_SILENCE_MS,
                speech_pad_ms=0,
            )
        scale = sample_rate_hz / VAD_SAMPLE_RATE_HZ
        return [
            SpeechSpan(start=_at_rate(stamp["start"], scale, mono.size), stop=_at_rate(stamp["end"], scale, mono.size))
            for stamp in timestamps
        ]


def _at_rate(vad_sample_index: int, scale: float, sample_count: int) -> int:
    return min(sample_count, round(vad_sample_index * scale))
