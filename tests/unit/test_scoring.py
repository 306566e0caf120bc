import numpy as np
import pytest

from processors.errors import InvalidTextError, UnsupportedLanguageError
from processors.scoring.quality import QualityScorer, WhisperTranscriber, normalise_words, word_error_rate

HELDOUT_FIRST_PROMPT_S = 6.0
DNSMOS_WINDOW_S = 9.5  # one DNSMOS window: the model scores 9 s at a time


@pytest.fixture(scope="module")
def transcriber():
    return WhisperTranscriber()


def test_identical_words_score_zero_whatever_the_case_and_punctuation():
    assert word_error_rate("Hello, world! It's a test.", "hello world it's a TEST") == 0.0


def test_each_substitution_deletion_and_insertion_counts_once():
    assert word_error_rate("the cat sat on the mat", "the bat sat on mat today") == pytest.approx(3 / 6)


def test_hyphens_separate_words():
    assert normalise_words("state-of-the-art") == ["state", "of", "the", "art"]


def test_a_reference_without_words_is_a_named_error():
    with pytest.raises(InvalidTextError):
        word_error_rate("...", "anything")


def test_whisper_hears_the_words_of_real_speech(transcriber, english_heldout_speech):
    samples, sample_rate_hz = english_heldout_speech

    heard = transcriber.transcribe(samples[: int(HELDOUT_FIRST_PROMPT_S * sample_rate_hz)], sample_rate_hz)

    assert len(normalise_words(heard)) >= 8
    assert word_error_rate("login incorrect please enter your agent number", " ".join(normalise_words(heard)[:7])) < 0.2


@pytest.mark.parametrize("sentence", ["Glue the sheet to the dark blue background.", "It is easy to tell the depth of a well."])
def test_the_same_robotic_speech_is_always_heard_the_same(transcriber, espeak_tts, sentence):
    speech = espeak_tts.synthesize(sentence, "en", voice_gender="female")

    transcripts = {transcriber.transcribe(*speech) for _ in range(4)}

    assert len(transcripts) == 1


def test_whisper_refuses_a_language_it_has_no_model_for(transcriber, english_heldout_speech):
    with pytest.raises(UnsupportedLanguageError):
        transcriber.transcribe(*english_heldout_speech, language="ml")


def test_dnsmos_rates_clean_speech_above_the_same_speech_in_noise(dnsmos_estimator, english_heldout_speech):
    speech, sample_rate_hz = english_heldout_speech
    samples = speech[: int(DNSMOS_WINDOW_S * sample_rate_hz)]
    noisy = samples + np.random.default_rng(0).normal(0, 0.05, samples.size).astype(np.float32)

    clean_score = dnsmos_estimator.score(samples, sample_rate_hz)
    noisy_score = dnsmos_estimator.score(np.clip(noisy, -1, 1), sample_rate_hz)

    assert clean_score.overall > noisy_score.overall + 0.5
    assert noisy_score.background < clean_score.background


def test_scorer_puts_the_same_speaker_above_another(
    speaker_encoder, english_voice_profile, english_heldout_speech, czech_male_speech
):
    scorer = QualityScorer(speaker_encoder)

    same = scorer.score(*english_heldout_speech, english_voice_profile.embedding, "unused", "en")
    other = scorer.score(*czech_male_speech, english_voice_profile.embedding, "unused", "en")

    assert same.similarity > 0.8 > other.similarity
    assert same.wer is None and same.dnsmos is None
