"""Resemblyzer's GE2E speaker encoder in numpy: its preprocessing, its weights and its forward pass.

Resemblyzer runs this model with torch, and its package ``__init__`` imports torch even for the
numpy-only audio helpers; torch's CUDA build costs a worker ~600 MB resident. This module reads
the same ``pretrained.pt`` shipped in the Resemblyzer wheel without torch and reproduces
``resemblyzer.audio.preprocess_wav``, ``wav_to_mel_spectrogram``,
``VoiceEncoder.compute_partial_slices`` and ``VoiceEncoder.forward`` (Resemblyzer 0.1.4).
"""

from __future__ import annotations

import importlib.util
import pickle
import struct
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO, NamedTuple

import librosa
import numpy as np
import webrtcvad
from scipy.ndimage import binary_dilation
from threadpoolctl import ThreadpoolController

from processors.errors import SpeakerModelError

SAMPLE_RATE_HZ = 16000
MEL_WINDOW_SAMPLES = 400  # 25 ms
MEL_HOP_SAMPLES = 160  # 10 ms
MEL_CHANNELS = 40
PARTIAL_FRAMES = 160  # 1.6 s of mel frames per partial utterance
_LSTM_LAYERS = 3
_TARGET_VOLUME_DBFS = -30.0
_INT16_MAX = 2**15 - 1
_VAD_WINDOW_SAMPLES = 480  # 30 ms, one webrtcvad frame
_VAD_MOVING_AVERAGE_WIDTH = 8
_VAD_MAX_SILENCE_WINDOWS = 6
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_TORCH_PROTOCOL = 1001


def preprocess_wav(wav: np.ndarray) -> np.ndarray:
    """16 kHz ``[n]`` speech raised to -30 dBFS RMS (never lowered), with pauses over ~0.2 s cut out."""
    return _trim_long_silences(_raise_volume(wav, _TARGET_VOLUME_DBFS))


def wav_to_mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """Power (not log) mel spectrogram of 16 kHz ``[n]`` audio, float32 ``[frames, 40]``."""
    frames = librosa.feature.melspectrogram(
        y=wav, sr=SAMPLE_RATE_HZ, n_fft=MEL_WINDOW_SAMPLES, hop_length=MEL_HOP_SAMPLES, n_mels=MEL_CHANNELS
    )
    return frames.astype(np.float32).T


def compute_partial_slices(
    sample_count: int, partials_per_s: float, min_coverage: float
) -> tuple[list[slice], list[slice]]:
    """Waveform and mel-frame slices of the overlapping 1.6 s partial utterances of a clip.

    The last waveform slice may run past ``sample_count``: pad the clip with zeros up to its stop.
    A trailing partial less than ``min_coverage`` full is dropped unless it is the only one.
    """
    frame_count = int(np.ceil((sample_count + 1) / MEL_HOP_SAMPLES))
    frame_step = int(np.round((SAMPLE_RATE_HZ / partials_per_s) / MEL_HOP_SAMPLES))
    if not 0 < frame_step <= PARTIAL_FRAMES or not 0 < min_coverage <= 1:
        raise ValueError(f"unusable partial rate {partials_per_s}/s or coverage {min_coverage}")
    steps = max(1, frame_count - PARTIAL_FRAMES + frame_step + 1)
    mel_slices = [slice(start, start + PARTIAL_FRAMES) for start in range(0, steps, frame_step)]
    wav_slices = [slice(mel.start * MEL_HOP_SAMPLES, mel.stop * MEL_HOP_SAMPLES) for mel in mel_slices]
    last = wav_slices[-1]
    coverage = (sample_count - last.start) / (last.stop - last.start)
    if coverage < min_coverage and len(mel_slices) > 1:
        return wav_slices[:-1], mel_slices[:-1]
    return wav_slices, mel_slices


class Ge2eEncoder:
    """The GE2E network: a 3-layer LSTM (40 -> 256) whose last hidden state goes through Linear + ReLU."""

    def __init__(self, weights_path: Path | None = None) -> None:
        state = load_legacy_torch_state(weights_path or packaged_weights_path())
        try:
            self._layers = [
                _LstmLayer.from_torch(
                    state[f"lstm.weight_ih_l{layer}"],
                    state[f"lstm.weight_hh_l{layer}"],
                    state[f"lstm.bias_ih_l{layer}"] + state[f"lstm.bias_hh_l{layer}"],
                )
                for layer in range(_LSTM_LAYERS)
            ]
            self._linear_weights = state["linear.weight"].T.copy()
            self._linear_bias = state["linear.bias"]
        except KeyError as error:
            raise SpeakerModelError(f"the GE2E weights lack {error}") from error
        self._thread_pools = ThreadpoolController()

    def __call__(self, mels: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings, float32 ``[batch, 256]``, of mel partials ``[batch, frames, 40]``.

        BLAS runs on one thread here: on a small, shared CPU its threads spin against each other
        over these small per-frame matmuls (seven times slower on two threads than on one).
        """
        sequence = np.ascontiguousarray(np.asarray(mels, dtype=np.float32).transpose(1, 0, 2))
        with self._thread_pools.limit(limits=1, user_api="blas"), np.errstate(over="ignore"):
            for layer in self._layers:
                sequence = layer.run(sequence)
            embeddings = np.maximum(sequence[-1] @ self._linear_weights + self._linear_bias, 0)
        return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def packaged_weights_path() -> Path:
    """Where the Resemblyzer wheel keeps ``pretrained.pt``, found without importing the package (it imports torch)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SpeakerModelError("the speaker encoder needs Resemblyzer's weights (pip install resemblyzer==0.1.4)")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def load_legacy_torch_state(path: Path) -> dict[str, np.ndarray]:
    """The ``model_state`` tensors of a checkpoint in torch's pre-1.6 (non-zip) format, as float32 arrays.

    That format is a run of pickles (magic number, protocol version, system info, the checkpoint
    whose tensors point at storages by key, the list of storage keys) followed by each storage's raw
    little-endian data in that order, led by its int64 element count.
    Resemblyzer's state holds ``lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l{0,1,2}``,
    ``linear.{weight,bias}`` and the unused ``similarity_{weight,bias}``.
    """
    try:
        with open(path, "rb") as file:
            _check_legacy_header(file)
            checkpoint = _CheckpointUnpickler(file).load()
            storages = _read_storages(file, _CheckpointUnpickler(file).load())
        return {name: tensor.materialise(storages) for name, tensor in checkpoint["model_state"].items()}
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, struct.error) as error:
        raise SpeakerModelError(f"{path} is not a readable torch checkpoint: {error}") from error


class _LstmLayer(NamedTuple):
    """One LSTM layer with its gates reordered input, forget, output, cell and the cell gate doubled.

    Then one logistic over all four gates serves: the sigmoid gates directly, and the cell gate
    through tanh(z) = 2 * sigmoid(2z) - 1.
    """

    input_weights: np.ndarray  # [inputs, 4 * hidden]
    recurrent_weights: np.ndarray  # [hidden, 4 * hidden]
    bias: np.ndarray  # [4 * hidden], torch's two biases summed

    @classmethod
    def from_torch(cls, input_weights: np.ndarray, recurrent_weights: np.ndarray, bias: np.ndarray) -> _LstmLayer:
        """From torch's ``[4 * hidden, ...]`` parameters, gates ordered input, forget, cell, output."""

        def reordered(parameter: np.ndarray) -> np.ndarray:
            input_gate, forget_gate, cell_gate, output_gate = np.split(parameter, 4)
            return np.concatenate([input_gate, forget_gate, output_gate, 2 * cell_gate])

        return cls(reordered(input_weights).T.copy(), reordered(recurrent_weights).T.copy(), reordered(bias))

    def run(self, sequence: np.ndarray) -> np.ndarray:
        """Hidden states ``[frames, batch, hidden]`` over a time-major ``[frames, batch, inputs]`` sequence."""
        frame_count, batch, inputs = sequence.shape
        hidden_size = self.recurrent_weights.shape[0]
        # the input projection of every frame is one large matmul; only the recurrence must loop
        projected = (sequence.reshape(-1, inputs) @ self.input_weights + self.bias).reshape(frame_count, batch, -1)
        outputs = np.empty((frame_count, batch, hidden_size), np.float32)
        hidden = np.zeros((batch, hidden_size), np.float32)
        cell = np.zeros((batch, hidden_size), np.float32)
        gates = np.empty((batch, 4 * hidden_size), np.float32)
        for frame in range(frame_count):
            np.matmul(hidden, self.recurrent_weights, out=gates)
            gates += projected[frame]
            _logistic_in_place(gates)
            input_gate, forget_gate, output_gate, cell_gate = np.split(gates, 4, axis=1)
            cell = forget_gate * cell + input_gate * (2 * cell_gate - 1)
            hidden = outputs[frame]
            np.multiply(output_gate, np.tanh(cell), out=hidden)
        return outputs


def _logistic_in_place(values: np.ndarray) -> None:
    """1 / (1 + exp(-x)); exp overflows to inf for very negative x, which correctly gives 0."""
    np.negative(values, out=values)
    np.exp(values, out=values)
    values += 1
    np.reciprocal(values, out=values)


def _raise_volume(wav: np.ndarray, target_dbfs: float) -> np.ndarray:
    rms = np.sqrt(np.mean((wav * _INT16_MAX) ** 2))
    change_db = target_dbfs - 20 * np.log10(rms / _INT16_MAX)
    if change_db < 0:
        return wav
    return wav * (10 ** (change_db / 20))


def _trim_long_silences(wav: np.ndarray) -> np.ndarray:
    """The clip without the stretches webrtcvad (mode 3), smoothed and dilated, hears no voice in."""
    wav = wav[: len(wav) - len(wav) % _VAD_WINDOW_SAMPLES]
    # float to int16 exactly as Resemblyzer does it, wrap-around of overdriven samples included
    pcm = np.round(wav * _INT16_MAX).astype(np.int16).tobytes()
    vad = webrtcvad.Vad(mode=3)
    window_bytes = 2 * _VAD_WINDOW_SAMPLES
    voiced = np.array(
        [
            vad.is_speech(pcm[start : start + window_bytes], sample_rate=SAMPLE_RATE_HZ)
            for start in range(0, len(pcm), window_bytes)
        ]
    )
    mask = np.round(_moving_average(voiced, _VAD_MOVING_AVERAGE_WIDTH)).astype(bool)
    mask = binary_dilation(mask, np.ones(_VAD_MAX_SILENCE_WINDOWS + 1))
    return wav[np.repeat(mask, _VAD_WINDOW_SAMPLES)]


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    padded = np.concatenate((np.zeros((width - 1) // 2), values, np.zeros(width // 2)))
    sums = np.cumsum(padded, dtype=float)
    sums[width:] = sums[width:] - sums[:-width]
    return sums[width - 1 :] / width


class _StorageView(NamedTuple):
    key: str
    offset: int  # elements into the root storage
    size: int  # elements


class _PendingTensor(NamedTuple):
    """A tensor whose storage bytes come after the pickle that describes it."""

    storage: _StorageView
    storage_offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements

    def materialise(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        storage = storages[self.storage.key][self.storage.offset : self.storage.offset + self.storage.size]
        extent = self.storage_offset + 1 + sum((dim - 1) * stride for dim, stride in zip(self.shape, self.strides))
        if min(self.shape, default=1) > 0 and (extent > storage.size or min(self.strides, default=0) < 0):
            raise ValueError(f"a tensor of shape {self.shape} runs past its storage")
        strided = np.lib.stride_tricks.as_strided(
            storage[self.storage_offset :],
            shape=self.shape,
            strides=[stride * storage.itemsize for stride in self.strides],
            writeable=False,
        )
        return np.array(strided, dtype=np.float32)


_FLOAT_STORAGE = object()


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    if not isinstance(storage, _StorageView):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _PendingTensor(storage, int(storage_offset), tuple(size), tuple(stride))


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles only what a state dict of float32 tensors needs, so a tampered file cannot run code."""

    _ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch", "FloatStorage"): _FLOAT_STORAGE,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a GE2E checkpoint") from None

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, numel, view = saved_id
        if kind != "storage" or storage_type is not _FLOAT_STORAGE:
            raise pickle.UnpicklingError(f"unsupported storage {kind!r} of {storage_type!r}")
        if view is None:
            return _StorageView(key, 0, numel)
        _view_key, offset, view_size = view
        return _StorageView(key, offset, view_size)


def _check_legacy_header(file: BinaryIO) -> None:
    if _CheckpointUnpickler(file).load() != _LEGACY_TORCH_MAGIC:
        raise ValueError("not a legacy torch checkpoint")
    if _CheckpointUnpickler(file).load() != _LEGACY_TORCH_PROTOCOL:
        raise ValueError("an unknown legacy checkpoint protocol")
    system = _CheckpointUnpickler(file).load()
    if not isinstance(system, dict) or not system.get("little_endian", False):
        raise ValueError("a big-endian checkpoint")


def _read_storages(file: BinaryIO, keys: list[str]) -> dict[str, np.ndarray]:
    storages = {}
    for key in keys:
        (numel,) = struct.unpack("<q", file.read(8))
        data = file.read(4 * numel)
        if len(data) != 4 * numel:
            raise ValueError(f"storage {key} is cut short")
        storages[key] = np.frombuffer(data, dtype="<f4")
    return storages
