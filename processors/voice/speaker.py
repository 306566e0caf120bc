"""Speaker embeddings: who is speaking, as a 256-d unit vector (Resemblyzer's GE2E encoder, run in numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from processors.audio.codec_quality import resample, to_mono
from processors.constants import (
    ANALYSIS_SAMPLE_RATE_HZ,
    EMBEDDING_MIN_PARTIAL_COVERAGE,
    EMBEDDING_PARTIALS_PER_S,
    MIN_EMBEDDING_SPEECH_S,
    SILENT_PEAK_DBFS,
)
from processors.errors import InvalidAudioError, InvalidEmbeddingError, SpeechTooShortError
from processors.voice.ge2e import Ge2eEncoder, compute_partial_slices, preprocess_wav, wav_to_mel_spectrogram


class SpeakerEncoder:
    """Resemblyzer's voice encoder on CPU: its weights (shipped in the wheel) load once per instance.

    Raises ``SpeakerModelError`` when those weights are missing or unreadable.
    """

    def __init__(self) -> None:
        self._model = Ge2eEncoder()

    def embed(self, samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """L2-normalised float32 ``(256,)`` embedding of mono ``[n]`` speech at any sample rate.

        Raises ``SpeechTooShortError`` when less than ``MIN_EMBEDDING_SPEECH_S`` of speech remains
        once long silences are removed.
        """
        return self.embed_many([samples], sample_rate_hz)[0]

    def embed_many(self, clips: Sequence[np.ndarray], sample_rate_hz: int) -> np.ndarray:
        """Embeddings of several clips, float32 ``[len(clips), 256]``, in one batch through the encoder."""
        if len(clips) == 0:
            raise InvalidAudioError("no clips to embed")
        partial_mels = [self._partial_mels(clip, sample_rate_hz) for clip in clips]
        partial_embeddings = self._model(np.concatenate(partial_mels))
        boundaries = np.cumsum([len(mels) for mels in partial_mels])[:-1]
        means = np.stack([group.mean(axis=0) for group in np.split(partial_embeddings, boundaries)])
        return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)

    def _partial_mels(self, samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """Mel spectrograms of the overlapping 1.6 s windows of one clip, ``[windows, 160, 40]``."""
        clip = resample(to_mono(samples), sample_rate_hz, ANALYSIS_SAMPLE_RATE_HZ)
        if clip.size == 0 or np.max(np.abs(clip)) < 10 ** (SILENT_PEAK_DBFS / 20):
            raise SpeechTooShortError("the clip is silent; a speaker embedding needs speech")
        speech = preprocess_wav(clip)
        if speech.size < MIN_EMBEDDING_SPEECH_S * ANALYSIS_SAMPLE_RATE_HZ:
            raise SpeechTooShortError(
                f"{speech.size / ANALYSIS_SAMPLE_RATE_HZ:.2f} s of speech after removing silence; "
                f"a speaker embedding needs at least {MIN_EMBEDDING_SPEECH_S} s"
            )
        wav_slices, mel_slices = compute_partial_slices(
            speech.size, EMBEDDING_PARTIALS_PER_S, EMBEDDING_MIN_PARTIAL_COVERAGE
        )
        padded = np.pad(speech, (0, max(0, wav_slices[-1].stop - speech.size)))
        mel = wav_to_mel_spectrogram(padded)
        return np.stack([mel[mel_slice] for mel_slice in mel_slices])


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two embeddings of equal shape ``(d,)``; 1.0 means the same direction."""
    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if first.ndim != 1 or first.shape != second.shape:
        raise InvalidEmbeddingError(
            f"embeddings must be two vectors of one length, got {first.shape} and {second.shape}"
        )
    norms = np.linalg.norm(first) * np.linalg.norm(second)
    if not np.isfinite(norms) or norms == 0:
        raise InvalidEmbeddingError("an embedding is all zeros or not finite")
    return float(np.dot(first, second) / norms)
