"""The refined voice tier: a Kokoro style offset fitted to a speaker by gradient ascent on speaker similarity.

:func:`refine_style` renders a few phrases through :class:`~processors.voice.kokoro_torch.DifferentiableKokoro`
with ``table[len(phrase) - 1] + offset``, embeds each render with Resemblyzer's GE2E encoder in torch
(:class:`DifferentiableSpeakerEncoder`) and moves the offset's timbre half (dims 0-127) with Adam to
raise the mean cosine to the target embedding, less a pull toward the stock packs (the mean squared
offset measured in the packs' spread of each dimension), which keeps the voice intelligible. The
prosody half stays zero, so durations, pitch and energy keep what the starting table gives them,
computed once per phrase.

Child-process protocol (the worker stays torch-free): ``python -m processors.voice.refinement`` reads
one request from stdin, an ``.npz`` stream (``numpy.savez``) holding

- ``style_table`` float32 ``[510, 256]`` and ``target_embedding`` float32 ``[256]``;
- ``phrase_tokens`` int ``[sum of lengths]`` (the phrases' token ids end to end, no padding zeros)
  and ``phrase_lengths`` int ``[phrases]``;
- optionally ``steps``, ``learning_rate``, ``manifold_weight`` (0-d arrays) and ``pack_tables``
  float32 ``[P, 510, 256]`` (default: the 54 stock packs).

It writes JSON lines to stdout: ``{"step": i, "steps": n, "similarity": s}`` after each step, then
either ``{"style_offset": [256 floats], "similarity_before": .., "similarity_after": .., "steps": n,
"seconds": ..}`` (exit status 0) or ``{"error": "...", "kind": "diverged" | "failed"}`` (exit status 1).
It runs on CUDA when torch sees a GPU.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import librosa
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as audio_functional

from processors.constants import (
    ANALYSIS_SAMPLE_RATE_HZ,
    EMBEDDING_MIN_PARTIAL_COVERAGE,
    EMBEDDING_PARTIALS_PER_S,
    EMBEDDING_SIZE,
    KOKORO_DECODER_STYLE_DIMS,
    KOKORO_SAMPLE_RATE_HZ,
    KOKORO_STYLE_ROWS,
    KOKORO_STYLE_SIZE,
    KOKORO_TRIM_LEVEL,
    KOKORO_TRIM_PADDING_MS,
    MIN_EMBEDDING_SPEECH_S,
    REFINEMENT_STEPS,
)
from processors.errors import FittingDivergedError, ProcessorError, VoiceFittingError
from processors.voice.ge2e import (
    MEL_CHANNELS,
    MEL_HOP_SAMPLES,
    MEL_WINDOW_SAMPLES,
    compute_partial_slices,
    load_legacy_torch_state,
    packaged_weights_path,
)
from processors.voice.kokoro_torch import DifferentiableKokoro, KokoroGraph, PreparedPhrase

DEFAULT_LEARNING_RATE = 0.3  # Adam step, in units of the packs' spread of each style dimension
DEFAULT_MANIFOLD_WEIGHT = 0.15  # objective lost per unit of mean squared offset (in those units)
STOCK_TIMBRE_SPREAD = 0.14  # median standard deviation of a timbre dimension over Kokoro v1.0's stock packs
GE2E_TARGET_DBFS = -30.0  # Resemblyzer raises quieter speech to this RMS before embedding
_GE2E_LAYERS = 3
_GE2E_HIDDEN = 256


@dataclass(frozen=True)
class RefinementResult:
    """A fitted offset and what it did to the mean GE2E cosine between the phrases' renders and the target."""

    style_offset: np.ndarray  # float32 [256]; added to every row of the starting table; only dims 0-127 non-zero
    similarity_before: float  # mean GE2E cosine to the target over the phrases at the start (offset zero)
    similarity_after: float  # the same at the returned offset
    steps: int
    seconds: float


class DifferentiableSpeakerEncoder:
    """Resemblyzer's GE2E encoder in torch, differentiable in the audio.

    Follows :class:`processors.voice.speaker.SpeakerEncoder` (same weights, mel front-end and
    partial windows) except that it does not cut pauses: it embeds speech that has none
    (a render trimmed of its leading and trailing silence).
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        state = {name: torch.from_numpy(value) for name, value in load_legacy_torch_state(packaged_weights_path()).items()}
        self._lstm = torch.nn.LSTM(MEL_CHANNELS, _GE2E_HIDDEN, _GE2E_LAYERS, batch_first=True)
        self._lstm.load_state_dict({name.removeprefix("lstm."): value for name, value in state.items() if name.startswith("lstm.")})
        self._lstm.to(self.device).requires_grad_(False)
        self._linear_weight = state["linear.weight"].to(self.device)
        self._linear_bias = state["linear.bias"].to(self.device)
        mel_basis = librosa.filters.mel(sr=ANALYSIS_SAMPLE_RATE_HZ, n_fft=MEL_WINDOW_SAMPLES, n_mels=MEL_CHANNELS)
        self._mel_basis = torch.from_numpy(mel_basis).to(self.device)
        self._window = torch.hann_window(MEL_WINDOW_SAMPLES, periodic=True, device=self.device)

    def embed(self, speech: torch.Tensor, sample_rate_hz: int) -> torch.Tensor:
        """Unit embedding ``[256]`` of mono speech ``[n]`` (at least ``MIN_EMBEDDING_SPEECH_S`` long)."""
        speech = speech.to(self.device, torch.float32)
        if sample_rate_hz != ANALYSIS_SAMPLE_RATE_HZ:
            speech = audio_functional.resample(speech, sample_rate_hz, ANALYSIS_SAMPLE_RATE_HZ)
        speech = _raised_to(speech, GE2E_TARGET_DBFS)
        wav_slices, mel_slices = compute_partial_slices(speech.numel(), EMBEDDING_PARTIALS_PER_S, EMBEDDING_MIN_PARTIAL_COVERAGE)
        mel = self.mel_spectrogram(F.pad(speech, (0, max(0, wav_slices[-1].stop - speech.numel()))))
        partials = torch.stack([mel[mel_slice] for mel_slice in mel_slices])
        _, (hidden, _) = self._lstm(partials)
        embeddings = F.normalize(F.relu(hidden[-1] @ self._linear_weight.T + self._linear_bias), dim=1)
        return F.normalize(embeddings.mean(dim=0), dim=0)

    def mel_spectrogram(self, speech: torch.Tensor) -> torch.Tensor:
        """Power mel spectrogram ``[frames, 40]`` of 16 kHz speech ``[n]``, as ``ge2e.wav_to_mel_spectrogram``."""
        spectrum = torch.stft(
            speech, MEL_WINDOW_SAMPLES, MEL_HOP_SAMPLES, window=self._window, center=True, pad_mode="constant", return_complex=True
        )
        return (self._mel_basis @ spectrum.abs().square()).T


@dataclass
class _Phrase:
    """A phrase ready to render: its frontend outputs, its row of the starting table, where its speech is.

    ``speech`` (24 kHz samples left once the leading and trailing silence are trimmed) is found in
    the first render, at the starting style; the durations are fixed, so it stays put.
    """

    prepared: PreparedPhrase
    style_row: torch.Tensor  # [256], on the decoder's device
    speech: slice | None = None


def refine_style(
    style_table: np.ndarray,
    target_embedding: np.ndarray,
    phrases: Sequence[Sequence[int]],
    *,
    model: DifferentiableKokoro,
    steps: int = REFINEMENT_STEPS,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    manifold_weight: float = DEFAULT_MANIFOLD_WEIGHT,
    pack_tables: np.ndarray | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
    device: str | None = None,
) -> RefinementResult:
    """Fit an offset to ``style_table`` (``[510, 256]``) that makes its speech of ``phrases`` sound like ``target_embedding``.

    ``phrases``: Kokoro token ids (no padding zeros), each at least ~1 s of speech (2-3 s is best:
    the cost grows with their length). ``learning_rate``: Adam's step in units of the packs' spread
    of each timbre dimension, which ``pack_tables`` (the stock packs, ``[P, 510, 256]``) give
    (without them every spread is ``STOCK_TIMBRE_SPREAD``). ``manifold_weight``: the regulariser,
    ``manifold_weight * mean((offset / spread)^2)``, subtracted from the mean cosine.
    ``on_progress(step, steps, similarity)`` is called after each step with the mean cosine at the
    offset that step started from. ``device``: where the speaker encoder runs (default: the model's).

    Returns the offset with the highest mean cosine met, the last one included (zero if none beat
    the start). Raises ``FittingDivergedError`` when the inputs, the similarity or the offset are
    not finite, ``VoiceFittingError`` when a phrase gives under ``MIN_EMBEDDING_SPEECH_S`` of speech.
    """
    started = time.perf_counter()
    table, target = _checked_inputs(style_table, target_embedding, phrases, steps)
    encoder = DifferentiableSpeakerEncoder(device or model.device)
    objective = _Objective(
        model,
        encoder,
        [_prepare_phrase(model, table, tokens) for tokens in phrases],
        torch.from_numpy(_timbre_spread(pack_tables)).to(model.device),
        torch.from_numpy(target).to(encoder.device),
        manifold_weight,
    )
    shift = torch.zeros(KOKORO_DECODER_STYLE_DIMS, device=model.device, requires_grad=True)  # the offset / spread
    optimizer = torch.optim.Adam([shift], lr=learning_rate, maximize=True)
    best = _BestOffset()
    for step in range(steps):
        optimizer.zero_grad()
        best.offer(shift, objective.with_gradient(shift))
        optimizer.step()
        if on_progress is not None:
            on_progress(step + 1, steps, best.history[-1])
    best.offer(shift, objective.similarity(shift))
    return RefinementResult(
        style_offset=_full_offset(best.shift * objective.spread),
        similarity_before=best.history[0],
        similarity_after=best.similarity,
        steps=steps,
        seconds=time.perf_counter() - started,
    )


class _Objective:
    """Mean GE2E cosine to the target over the phrases at offset ``shift * spread``, less ``manifold_weight * mean(shift^2)``."""

    def __init__(
        self,
        model: DifferentiableKokoro,
        encoder: DifferentiableSpeakerEncoder,
        phrases: Sequence[_Phrase],
        spread: torch.Tensor,
        target: torch.Tensor,
        manifold_weight: float,
    ) -> None:
        self.model, self.encoder, self.phrases = model, encoder, phrases
        self.spread, self.target, self.manifold_weight = spread, target, manifold_weight

    def with_gradient(self, shift: torch.Tensor) -> float:
        """The mean similarity, with the objective's gradient accumulated into ``shift.grad`` phrase
        by phrase (one render's graph in memory at a time)."""
        similarity = 0.0
        for phrase in self.phrases:
            phrase_similarity = self._phrase_similarity(phrase, shift) / len(self.phrases)
            phrase_similarity.backward()
            similarity += phrase_similarity.item()
        (-self.manifold_weight * shift.square().mean()).backward()
        return similarity

    @torch.no_grad()
    def similarity(self, shift: torch.Tensor) -> float:
        return float(np.mean([self._phrase_similarity(phrase, shift).item() for phrase in self.phrases]))

    def _phrase_similarity(self, phrase: _Phrase, shift: torch.Tensor) -> torch.Tensor:
        timbre = phrase.style_row[:KOKORO_DECODER_STYLE_DIMS] + shift * self.spread
        audio = self.model.render(phrase.prepared, timbre)
        if phrase.speech is None:
            phrase.speech = _speech_span(audio)
        return torch.dot(self.encoder.embed(audio[phrase.speech], KOKORO_SAMPLE_RATE_HZ), self.target)


class _BestOffset:
    """The shift with the highest similarity offered so far, and the similarity at every offer."""

    def __init__(self) -> None:
        self.similarity, self.shift = -np.inf, None
        self.history: list[float] = []

    def offer(self, shift: torch.Tensor, similarity: float) -> None:
        if not np.isfinite(similarity) or not torch.isfinite(shift).all():
            raise FittingDivergedError("the style fit diverged: its objective or offset is no longer finite")
        self.history.append(similarity)
        if similarity > self.similarity:
            self.similarity, self.shift = similarity, shift.detach().clone()


def _checked_inputs(
    style_table: np.ndarray, target_embedding: np.ndarray, phrases: Sequence[Sequence[int]], steps: int
) -> tuple[np.ndarray, np.ndarray]:
    table = np.asarray(style_table, dtype=np.float32)
    target = np.asarray(target_embedding, dtype=np.float32)
    if table.shape != (KOKORO_STYLE_ROWS, KOKORO_STYLE_SIZE) or target.shape != (EMBEDDING_SIZE,):
        raise VoiceFittingError(f"need a [{KOKORO_STYLE_ROWS}, {KOKORO_STYLE_SIZE}] table and a [{EMBEDDING_SIZE}] target, got {table.shape} and {target.shape}")
    if not np.all(np.isfinite(table)) or not np.all(np.isfinite(target)):
        raise FittingDivergedError("the starting style table or the target embedding is not finite")
    if not phrases or steps < 0:
        raise VoiceFittingError(f"need at least one phrase and a step count of 0 or more, got {len(phrases)} and {steps}")
    return table, target


def _timbre_spread(pack_tables: np.ndarray | None) -> np.ndarray:
    """Each timbre dimension's standard deviation over every row of every pack, float32 ``[128]``."""
    if pack_tables is None:
        return np.full(KOKORO_DECODER_STYLE_DIMS, STOCK_TIMBRE_SPREAD, dtype=np.float32)
    rows = np.asarray(pack_tables, dtype=np.float64).reshape(-1, KOKORO_STYLE_SIZE)[:, :KOKORO_DECODER_STYLE_DIMS]
    spread = rows.std(axis=0)
    if not np.all(np.isfinite(spread)) or spread.min() <= 0:
        raise VoiceFittingError("the stock packs give no usable spread to scale the fit by")
    return spread.astype(np.float32)


def _prepare_phrase(model: DifferentiableKokoro, table: np.ndarray, tokens: Sequence[int]) -> _Phrase:
    style_row = table[len(tokens) - 1]
    return _Phrase(model.prepare(tokens, style_row), torch.from_numpy(style_row).to(model.device))


def _speech_span(audio: torch.Tensor) -> slice:
    """The samples of a 24 kHz render between the first and last above ``KOKORO_TRIM_LEVEL``, with the engine's padding."""
    loud = torch.nonzero(audio.detach().abs() > KOKORO_TRIM_LEVEL).reshape(-1)
    padding = int(KOKORO_TRIM_PADDING_MS * KOKORO_SAMPLE_RATE_HZ / 1000)
    speech = slice(max(0, int(loud[0]) - padding), int(loud[-1]) + padding) if loud.numel() else slice(0, 0)
    if speech.stop - speech.start < MIN_EMBEDDING_SPEECH_S * KOKORO_SAMPLE_RATE_HZ:
        raise VoiceFittingError(f"a phrase gives under {MIN_EMBEDDING_SPEECH_S} s of speech; use longer phrases")
    return speech


def _full_offset(timbre_offset: torch.Tensor) -> np.ndarray:
    offset = np.zeros(KOKORO_STYLE_SIZE, dtype=np.float32)
    offset[:KOKORO_DECODER_STYLE_DIMS] = timbre_offset.detach().cpu().numpy()
    return offset


def _raised_to(speech: torch.Tensor, target_dbfs: float) -> torch.Tensor:
    """Speech scaled up to ``target_dbfs`` RMS when quieter (never down), as ``ge2e.preprocess_wav``."""
    rms = speech.square().mean().sqrt().clamp_min(1e-12)
    return speech * torch.clamp(10 ** (target_dbfs / 20) / rms, min=1.0)


# ---- the child-process entry point

_REQUIRED_ARRAYS = ("style_table", "target_embedding", "phrase_tokens", "phrase_lengths")


def _read_request(stream: io.BufferedIOBase, stock_pack_tables: Callable[[], np.ndarray]) -> dict:
    """``refine_style``'s arguments from the ``.npz`` request; raises ``VoiceFittingError`` when arrays are missing."""
    with np.load(io.BytesIO(stream.read()), allow_pickle=False) as request:
        arrays = {name: request[name] for name in request.files}
    missing = [name for name in _REQUIRED_ARRAYS if name not in arrays]
    if missing:
        raise VoiceFittingError(f"the refinement request lacks {', '.join(missing)}")
    lengths = [int(length) for length in arrays["phrase_lengths"]]
    boundaries = np.cumsum(lengths)[:-1]
    phrases = [chunk.astype(int).tolist() for chunk in np.split(arrays["phrase_tokens"], boundaries)]
    options = {name: type_(arrays[name]) for name, type_ in (("steps", int), ("learning_rate", float), ("manifold_weight", float)) if name in arrays}
    return {
        "style_table": arrays["style_table"],
        "target_embedding": arrays["target_embedding"],
        "phrases": phrases,
        "pack_tables": arrays["pack_tables"] if "pack_tables" in arrays else stock_pack_tables(),
        **options,
    }


def _write_line(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    """Serve one refinement request on stdin/stdout (see the module docstring); the exit status says how it went.

    The entry point finds the shipped model and packs through ``infra.kokoro_assets``; the rest
    of the module takes them as arguments.
    """
    from infra.errors import InfraError
    from infra.kokoro_assets import kokoro_cache_dir, kokoro_model_path, load_stock_voices

    try:
        request = _read_request(sys.stdin.buffer, lambda: load_stock_voices().tables)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        graph = KokoroGraph.load(kokoro_model_path(), kokoro_cache_dir())
        model = DifferentiableKokoro(graph, device=device, frontend_threads=torch.get_num_threads())
        result = refine_style(
            **request,
            model=model,
            on_progress=lambda step, steps, similarity: _write_line({"step": step, "steps": steps, "similarity": similarity}),
        )
    except FittingDivergedError as error:
        _write_line({"error": str(error), "kind": "diverged"})
        return 1
    except (ProcessorError, InfraError, KeyError, ValueError, OSError) as error:
        _write_line({"error": f"{type(error).__name__}: {error}", "kind": "failed"})
        return 1
    _write_line({
        "style_offset": [float(value) for value in result.style_offset],
        "similarity_before": result.similarity_before,
        "similarity_after": result.similarity_after,
        "steps": result.steps,
        "seconds": result.seconds,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
