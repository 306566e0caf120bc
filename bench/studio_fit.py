"""Studio-voice prototype: render Kokoro's decoder on a *real* reference segment's alignment, F0 and energy.

The refined tier (:mod:`processors.voice.refinement`) renders phrases with Kokoro's own predicted
durations, pitch and energy and can only compare speaker embeddings. Reconstructing the reference
itself needs the decoder driven by the reference's prosody, so the render and the real audio line
up sample for sample and a spectral loss can compare them. Kokoro's ONNX graph makes that cheap:
the decoder reads three values the frontend computes,

- ``asr``  ``[1, 512, F]``: the text encoder's features ``t_en [1, 512, T]`` times the alignment ``[T, F]``
  (``F`` decoder frames of 600 samples, 25 ms at 24 kHz);
- ``F0``   ``[1, 2F]``: the pitch curve in Hz (12.5 ms frames; 0 is unvoiced);
- ``N``    ``[1, 2F]``: the energy curve (StyleTTS2's ``log_norm`` of an 80-band mel),

and everything from those three to the decoder's frontier (:class:`KokoroGraph.frontier`: the
F0/N convolutions, the harmonic source and its noise branches) reads neither the tokens nor the
style. :func:`studio_graphs` cuts the shipped graph twice: an *analysis* model (tokens, style ->
``t_en``, predicted alignment, F0, N) and a *conditioning* model (``asr``, F0, N -> the frontier),
so a :class:`~processors.voice.kokoro_torch.PreparedPhrase` can be built from any alignment and
any curves and rendered by :class:`~processors.voice.kokoro_torch.DifferentiableKokoro` unchanged.

The alignment here is a forced alignment by DTW (:func:`dtw_alignment`): Kokoro's own render at
its predicted durations is warped onto the real segment on MFCCs and each token's frames follow
the warp. Pure functions over arrays and tensors; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import librosa
import numpy as np
import pyworld
import torch
import torch.nn.functional as F

from processors.voice.kokoro_torch import PreparedPhrase

TEXT_FEATURES = "/encoder/text_encoder/Transpose_2_output_0"  # t_en [1, 512, T]
ALIGNMENT = "/encoder/Cast_4_output_0"  # predicted alignment [T, F], one-hot per frame
ALIGNED_TEXT = "/encoder/MatMul_1_output_0"  # asr = t_en @ alignment [1, 512, F]
F0_CURVE = "/encoder/Reshape_output_0"  # [1, 2F] Hz
ENERGY_CURVE = "/encoder/Reshape_1_output_0"  # [1, 2F]
SAMPLES_PER_FRAME = 600  # decoder frame at 24 kHz; the F0 / energy curves have two per frame
CURVE_HOP = SAMPLES_PER_FRAME // 2
KOKORO_RATE_HZ = 24000
MFCC_HOP_S = 0.005  # DTW resolution: finer than a decoder frame so boundaries land within a frame
STFT_RESOLUTIONS = ((512, 128), (1024, 256), (256, 64))  # (n_fft, hop) at 16 kHz, window = n_fft


@dataclass(frozen=True)
class Analysis:
    """What Kokoro's frontend predicts for a phrase: text features, alignment and prosody curves."""

    text_features: np.ndarray  # [1, 512, T]
    alignment: np.ndarray  # [T, F] float32 one-hot columns
    f0: np.ndarray  # [1, 2F]
    energy: np.ndarray  # [1, 2F]


def studio_graphs(model, frontier: Sequence[str]) -> tuple[bytes, bytes]:
    """The analysis model (tokens, style, speed -> t_en, alignment, F0, N) and the conditioning model
    (asr, F0, N -> ``frontier``) of the ONNX ``model`` (an ``onnx.ModelProto``)."""
    from onnx import helper

    value_types = {info.name: info for info in model.graph.value_info}
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}

    def pruned(outputs: Sequence[str], cut: set[str], inputs: list) -> bytes:
        needed, kept = set(outputs), []
        for node in reversed(model.graph.node):
            if needed.intersection(node.output):
                kept.append(node)
                needed.update(name for name in node.input if name and name not in cut)
        graph = helper.make_graph(
            list(reversed(kept)), "kokoro_studio", inputs, [value_types[name] for name in outputs],
            [tensor for name, tensor in initializers.items() if name in needed],
        )
        return helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version).SerializeToString()

    analysis = pruned((TEXT_FEATURES, ALIGNMENT, F0_CURVE, ENERGY_CURVE), set(), list(model.graph.input))
    cut = (ALIGNED_TEXT, F0_CURVE, ENERGY_CURVE)
    conditioning = pruned(tuple(frontier), set(cut), [value_types[name] for name in cut])
    return analysis, conditioning


class StudioFrontend:
    """Kokoro's frontend split at the alignment and the prosody curves (onnxruntime, CPU)."""

    def __init__(self, model, frontier: Sequence[str], device: torch.device, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        analysis, conditioning = studio_graphs(model, frontier)
        self._analysis = onnxruntime.InferenceSession(analysis, options, providers=["CPUExecutionProvider"])
        self._conditioning = onnxruntime.InferenceSession(conditioning, options, providers=["CPUExecutionProvider"])
        self._frontier, self._device = tuple(frontier), device

    def analyse(self, tokens: Sequence[int], style_row: np.ndarray) -> Analysis:
        feed = {
            "tokens": np.pad(np.asarray(tokens, dtype=np.int64), 1).reshape(1, -1),
            "style": np.asarray(style_row, dtype=np.float32).reshape(1, -1),
            "speed": np.array([1.0], dtype=np.float32),
        }
        text_features, alignment, f0, energy = self._analysis.run([TEXT_FEATURES, ALIGNMENT, F0_CURVE, ENERGY_CURVE], feed)
        return Analysis(text_features, alignment.astype(np.float32), f0, energy)

    def condition(self, text_features: np.ndarray, alignment: np.ndarray, f0: np.ndarray, energy: np.ndarray) -> PreparedPhrase:
        """The decoder's inputs for text features on ``alignment`` ``[T, F]`` with curves ``[1, 2F]``."""
        feed = {
            ALIGNED_TEXT: (text_features @ alignment).astype(np.float32),
            F0_CURVE: np.asarray(f0, dtype=np.float32).reshape(1, -1),
            ENERGY_CURVE: np.asarray(energy, dtype=np.float32).reshape(1, -1),
        }
        outputs = self._conditioning.run(list(self._frontier), feed)
        return PreparedPhrase({name: torch.from_numpy(value).to(self._device) for name, value in zip(self._frontier, outputs)})


def dtw_alignment(predicted: np.ndarray, synthetic: np.ndarray, real: np.ndarray, rate_hz: int) -> np.ndarray:
    """Forced alignment ``[T, F_real]`` of the tokens to ``real`` speech.

    ``predicted`` ``[T, F]``: Kokoro's alignment of its own render ``synthetic`` (both signals at
    ``rate_hz``). The two are matched by DTW on MFCCs (mean and variance normalised per signal,
    which removes most of the speaker); each real frame takes the token of the synthetic frame its
    centre is warped to. ``F_real`` is the real speech's length in decoder frames.
    """
    hop = int(MFCC_HOP_S * rate_hz)

    def features(audio: np.ndarray) -> np.ndarray:
        mfcc = librosa.feature.mfcc(y=audio.astype(np.float32), sr=rate_hz, n_mfcc=20, hop_length=hop, n_fft=512)[1:]
        return (mfcc - mfcc.mean(axis=1, keepdims=True)) / (mfcc.std(axis=1, keepdims=True) + 1e-6)

    _, path = librosa.sequence.dtw(X=features(synthetic), Y=features(real), metric="euclidean")
    path = path[::-1]  # (synthetic index, real index), in time order
    synthetic_of_real = np.zeros(path[:, 1].max() + 1)
    for real_index in range(synthetic_of_real.size):  # the mean synthetic time each real MFCC frame is matched to
        synthetic_of_real[real_index] = path[path[:, 1] == real_index, 0].mean()
    token_of_frame = predicted.argmax(axis=0)  # [F] token of each synthetic decoder frame
    frames_real = int(real.size * KOKORO_RATE_HZ / rate_hz) // SAMPLES_PER_FRAME
    centres_s = (np.arange(frames_real) + 0.5) * SAMPLES_PER_FRAME / KOKORO_RATE_HZ
    mfcc_index = np.clip(np.round(centres_s / MFCC_HOP_S).astype(int), 0, synthetic_of_real.size - 1)
    synthetic_frame = np.clip((synthetic_of_real[mfcc_index] * MFCC_HOP_S * KOKORO_RATE_HZ / SAMPLES_PER_FRAME).astype(int),
                              0, token_of_frame.size - 1)
    tokens = np.maximum.accumulate(token_of_frame[synthetic_frame])  # tokens never go back in time
    alignment = np.zeros((predicted.shape[0], frames_real), dtype=np.float32)
    alignment[tokens, np.arange(frames_real)] = 1.0
    return alignment


def f0_curve(audio: np.ndarray, rate_hz: int, points: int) -> np.ndarray:
    """pyworld Harvest F0 in Hz (0 unvoiced) at 12.5 ms, ``[1, points]`` (two per decoder frame)."""
    frame_ms = CURVE_HOP / KOKORO_RATE_HZ * 1000
    f0, _ = pyworld.harvest(audio.astype(np.float64), rate_hz, f0_floor=60.0, f0_ceil=600.0, frame_period=frame_ms)
    f0 = np.pad(f0, (0, max(0, points - f0.size)))[:points]
    return f0.astype(np.float32).reshape(1, -1)


def energy_curve(audio_24k: np.ndarray, points: int) -> np.ndarray:
    """StyleTTS2's energy: ``log || mel_power + 1e-5 ||_2`` over an 80-band mel (n_fft 2048, win 1200, hop 300), ``[1, points]``."""
    mel = librosa.feature.melspectrogram(
        y=audio_24k.astype(np.float32), sr=KOKORO_RATE_HZ, n_fft=2048, win_length=1200, hop_length=CURVE_HOP,
        n_mels=80, power=2.0, center=True, htk=True, norm=None, fmin=0.0, fmax=KOKORO_RATE_HZ / 2,
    )
    energy = np.log(np.linalg.norm(mel + 1e-5, axis=0))
    energy = np.pad(energy, (0, max(0, points - energy.size)), mode="edge")[:points]
    return energy.astype(np.float32).reshape(1, -1)


def multi_resolution_stft_loss(render: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over ``STFT_RESOLUTIONS`` of spectral convergence + L1 log-magnitude distance (both ``[n]``, same rate)."""
    length = min(render.numel(), target.numel())
    render, target = render[:length], target[:length]
    total = render.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        window = torch.hann_window(n_fft, device=render.device)
        rendered = torch.stft(render, n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-5)
        real = torch.stft(target, n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-5)
        convergence = torch.linalg.norm(real - rendered) / torch.linalg.norm(real)
        total = total + convergence + F.l1_loss(rendered.log(), real.log())
    return total / len(STFT_RESOLUTIONS)
