"""The refined voice tier: Kokoro's torch decoder against onnxruntime, the style fit, its child-process protocol."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from infra.kokoro_assets import kokoro_cache_dir, kokoro_model_path, kokoro_vocabulary, load_stock_voices
from processors.constants import KOKORO_DECODER_STYLE_DIMS, KOKORO_SAMPLE_RATE_HZ
from processors.errors import FittingDivergedError
from processors.synthesis.kokoro_text import phoneme_tokens
from processors.voice.ge2e import wav_to_mel_spectrogram
from processors.voice.kokoro_torch import DifferentiableKokoro, KokoroGraph
from processors.voice.refinement import DifferentiableSpeakerEncoder, refine_style
from processors.voice.speaker import cosine_similarity

PHRASE = "She sells sea shells by the shore."
STARTING_PACK = "am_michael"  # a male voice, far from the female target: a few steps must move it


@pytest.fixture(scope="module")
def kokoro_model() -> DifferentiableKokoro:
    return DifferentiableKokoro(KokoroGraph.load(kokoro_model_path(), kokoro_cache_dir()))


@pytest.fixture(scope="module")
def stock():
    return load_stock_voices()


@pytest.fixture(scope="module")
def phrase_tokens() -> list[int]:
    return phoneme_tokens(PHRASE, "en", kokoro_vocabulary())


@pytest.fixture(scope="module")
def starting_table(stock) -> np.ndarray:
    return stock.table(STARTING_PACK)


@pytest.fixture(scope="module")
def english_target(speaker_encoder, english_speech_8s) -> np.ndarray:
    return speaker_encoder.embed(english_speech_8s, 16000)


def onnxruntime_render(tokens: list[int], style: np.ndarray) -> np.ndarray:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(kokoro_model_path()), options, providers=["CPUExecutionProvider"])
    (audio,) = session.run(None, {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": style.reshape(1, -1).astype(np.float32),
        "speed": np.array([1.0], dtype=np.float32),
    })
    return audio.ravel()


def test_torch_decoder_matches_onnxruntime(kokoro_model, phrase_tokens, starting_table, speaker_encoder):
    style = starting_table[len(phrase_tokens) - 1]
    expected = onnxruntime_render(phrase_tokens, style)
    with torch.no_grad():
        rendered = kokoro_model(torch.tensor(phrase_tokens), torch.from_numpy(style)).numpy()

    assert rendered.shape == expected.shape  # same durations: the frontend is onnxruntime's
    assert np.corrcoef(rendered, expected)[0, 1] > 0.95
    same_voice = cosine_similarity(
        speaker_encoder.embed(rendered, KOKORO_SAMPLE_RATE_HZ), speaker_encoder.embed(expected, KOKORO_SAMPLE_RATE_HZ)
    )
    assert same_voice > 0.97


def test_render_is_differentiable_in_the_timbre_only(kokoro_model, phrase_tokens, starting_table):
    style = torch.from_numpy(starting_table[len(phrase_tokens) - 1].copy()).requires_grad_(True)
    audio = kokoro_model(torch.tensor(phrase_tokens), style)
    audio[: KOKORO_SAMPLE_RATE_HZ // 2].square().mean().backward()

    assert torch.isfinite(style.grad).all()
    assert style.grad[:KOKORO_DECODER_STYLE_DIMS].abs().sum() > 0
    assert style.grad[KOKORO_DECODER_STYLE_DIMS:].abs().sum() == 0


def test_torch_speaker_encoder_follows_the_numpy_one(speaker_encoder, english_speech_8s):
    encoder = DifferentiableSpeakerEncoder()
    speech = torch.from_numpy(english_speech_8s[: 4 * 16000])

    mel = encoder.mel_spectrogram(speech).numpy()
    expected_mel = wav_to_mel_spectrogram(english_speech_8s[: 4 * 16000])
    assert np.abs(mel - expected_mel).max() <= 1e-4 * np.abs(expected_mel).max()
    embedding = encoder.embed(speech, 16000).numpy()
    assert cosine_similarity(embedding, speaker_encoder.embed(english_speech_8s[: 4 * 16000], 16000)) > 0.99


def test_three_steps_raise_the_objective(kokoro_model, phrase_tokens, starting_table, english_target, stock):
    progress = []
    result = refine_style(
        starting_table, english_target, [phrase_tokens], model=kokoro_model, steps=3,
        pack_tables=stock.tables, on_progress=lambda step, steps, similarity: progress.append((step, steps)),
    )

    assert result.similarity_after > result.similarity_before + 0.01
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert result.style_offset.shape == (256,) and result.style_offset.dtype == np.float32
    assert np.any(result.style_offset[:KOKORO_DECODER_STYLE_DIMS] != 0)
    assert np.all(result.style_offset[KOKORO_DECODER_STYLE_DIMS:] == 0)


def test_a_non_finite_start_raises_fitting_diverged(kokoro_model, phrase_tokens, starting_table, english_target):
    broken = starting_table.copy()
    broken[len(phrase_tokens) - 1, 3] = np.nan

    with pytest.raises(FittingDivergedError):
        refine_style(broken, english_target, [phrase_tokens], model=kokoro_model, steps=1)


def test_an_offset_that_blows_up_raises_fitting_diverged(kokoro_model, phrase_tokens, starting_table, english_target):
    with pytest.raises(FittingDivergedError):
        refine_style(starting_table, english_target, [phrase_tokens], model=kokoro_model, steps=1, learning_rate=float("inf"))


def refinement_process(request: dict) -> tuple[int, list[dict]]:
    buffer = io.BytesIO()
    np.savez(buffer, **request)
    completed = subprocess.run(
        [sys.executable, "-m", "processors.voice.refinement"], input=buffer.getvalue(), capture_output=True, timeout=300, check=False
    )
    return completed.returncode, [json.loads(line) for line in completed.stdout.decode().splitlines()]


def test_child_process_protocol_round_trips(phrase_tokens, starting_table, english_target):
    status, lines = refinement_process({
        "style_table": starting_table,
        "target_embedding": english_target,
        "phrase_tokens": np.array(phrase_tokens),
        "phrase_lengths": np.array([len(phrase_tokens)]),
        "steps": np.array(1),
    })

    assert status == 0
    assert lines[0] == {"step": 1, "steps": 1, "similarity": pytest.approx(lines[-1]["similarity_before"])}
    result = lines[-1]
    assert len(result["style_offset"]) == 256 and result["steps"] == 1 and result["seconds"] > 0
    assert result["similarity_after"] >= result["similarity_before"]


def test_child_process_reports_a_malformed_request(starting_table):
    status, lines = refinement_process({"style_table": starting_table})

    assert status == 1
    assert len(lines) == 1 and lines[0]["kind"] == "failed"
    assert "target_embedding" in lines[0]["error"] and "phrase_lengths" in lines[0]["error"]
