"""The spoken consent phrase check: the right phrase in a real synthetic voice passes, other words do not."""

import pytest

from infra.speech_assets import czech_actor_utterance, reference_utterance
from processors.errors import InvalidConsentError
from processors.scoring.phonemes import PhonemeRecognizer
from processors.trust.spoken_phrase import (
    DEFAULT_PHRASE_TEMPLATE,
    PhraseThresholds,
    SpokenPhraseScorer,
    best_stretch_match,
    consent_phrase,
    is_the_phrase,
    phoneme_match,
    phrase_mismatch,
    speaker_mismatch,
    word_match,
)
from streams.context import Limits

PHRASE = consent_phrase(DEFAULT_PHRASE_TEMPLATE, "Voxflow")
# built like the phrase, so a check that only looks for familiar words would let it through
LOOKALIKE = "I allow my cousin to borrow a copy of my car keys."
GERMAN_PHRASE = "Ich erlaube Voxflow, eine synthetische Kopie meiner Stimme zu erstellen."
LIMITS = Limits()


@pytest.fixture(scope="module")
def scorer(whisper_transcriber) -> SpokenPhraseScorer:
    return SpokenPhraseScorer(whisper_transcriber, PhonemeRecognizer())


@pytest.fixture(scope="module")
def kokoro_says(kokoro_synthesizer, stock_voices):
    def say(text: str, pack: str = "am_adam"):
        return kokoro_synthesizer.render(kokoro_synthesizer.tokens(text, "en"), stock_voices.table(pack)), 24000

    return say


def test_the_phrase_names_the_operator():
    assert consent_phrase(DEFAULT_PHRASE_TEMPLATE, " Acme Voice Studio ") == (
        "I allow Acme Voice Studio to create a synthetic copy of my voice.")


@pytest.mark.parametrize("template", ["I allow you to copy my voice.", "I, {owner}, allow {operator} to copy it.",
                                      "I allow {0} to copy my voice."])
def test_a_template_must_name_the_operator_and_nothing_else(template):
    with pytest.raises(InvalidConsentError, match="operator"):
        consent_phrase(template, "Voxflow")


def test_the_signed_statement_is_the_phrase_whatever_its_case_and_punctuation():
    assert is_the_phrase("i allow VOXFLOW to create a synthetic copy of my voice", PHRASE)
    assert not is_the_phrase("I allow Acme to create a synthetic copy of my voice.", PHRASE)
    assert not is_the_phrase("I consent.", PHRASE)


def test_word_match_is_one_minus_the_word_error_rate_within_zero_and_one():
    assert word_match(PHRASE, "Voxflow", "I allow Voxflow to create a synthetic copy of my voice!").score == 1.0
    assert word_match(PHRASE, "Voxflow", "I allow Voxflow to create a copy of my voice.").score == pytest.approx(
        1 - 1 / 11, abs=1e-4)
    long_other = "please enter your password followed by the pound key and then the conference pin number"
    assert word_match(PHRASE, "Voxflow", long_other).score == 0.0
    assert word_match(PHRASE, "Voxflow", "").score == 0.0


def test_the_operators_name_is_found_however_whisper_spaces_and_cases_it():
    for heard in ("I allow VoxFlow to create", "I allow Vox Flow to create", "i allow voxflow, to create"):
        assert word_match(PHRASE, "Voxflow", heard).operator_score == 1.0
    assert word_match(PHRASE, "Voxflow", "I allow Voxflo to create").operator_score == pytest.approx(6 / 7, abs=1e-4)
    assert word_match(PHRASE, "Voxflow", "I allow Acme to create a synthetic copy of my voice.").operator_score < 0.75


def test_best_stretch_match_looks_for_the_name_anywhere_in_what_was_heard():
    assert best_stretch_match("abc", "xxabcxx") == 1.0
    assert best_stretch_match("abc", "xxabxx") == pytest.approx(2 / 3, abs=1e-4)
    assert best_stretch_match("abc", "") == 0.0


def test_phoneme_match_is_one_minus_the_phoneme_error_rate():
    assert phoneme_match("ə kɑpi", "kɑpi", "ə kɑpi").score == 1.0
    assert phoneme_match("ə kɑpi", "kɑpi", "").score == 0.0
    assert phoneme_match("ə kɑpi", "kɑpi", "ə kɑp").score == pytest.approx(0.8)
    assert phoneme_match("ə kɑpi", "kɑpi", "ə kɑp").operator_score == pytest.approx(0.75)


@pytest.mark.parametrize("pack", ["am_adam", "af_heart", "bf_emma"])
def test_the_phrase_read_by_a_voice_passes_the_word_check(scorer, kokoro_says, pack):
    match = scorer.score(*kokoro_says(PHRASE, pack), PHRASE, "Voxflow", "en")

    assert match.method == "whisper_words"
    assert phrase_mismatch(match, "Voxflow", LIMITS.spoken_phrase_words) is None, match


def test_a_lookalike_phrase_and_real_speech_of_other_words_fail_the_word_check(scorer, kokoro_says):
    lookalike = scorer.score(*kokoro_says(LOOKALIKE), PHRASE, "Voxflow", "en")
    human = scorer.score(*reference_utterance(5, offset=3), PHRASE, "Voxflow", "en")

    assert lookalike.score < LIMITS.spoken_phrase_words.phrase, lookalike
    assert human.score < LIMITS.spoken_phrase_words.phrase, human
    assert "password" in human.heard.lower()  # the words the real speaker actually said


def test_the_phrase_for_another_operator_is_refused_for_the_name(scorer, kokoro_says):
    elsewhere = scorer.score(*kokoro_says(consent_phrase(DEFAULT_PHRASE_TEMPLATE, "Acme")), PHRASE, "Voxflow", "en")

    assert elsewhere.score >= LIMITS.spoken_phrase_words.phrase  # one word in eleven differs...
    assert phrase_mismatch(elsewhere, "Voxflow", LIMITS.spoken_phrase_words).startswith(
        "wrong phrase: the recording does not name the operator 'Voxflow' (name match ")


def test_other_languages_are_checked_on_phonemes(scorer, espeak_tts):
    right = scorer.score(*espeak_tts.synthesize(GERMAN_PHRASE, "de"), GERMAN_PHRASE, "Voxflow", "de")
    human = scorer.score(*czech_actor_utterance("big_fish", 5), GERMAN_PHRASE, "Voxflow", "de")

    assert right.method == human.method == "hama_phonemes"
    assert phrase_mismatch(right, "Voxflow", LIMITS.spoken_phrase_phonemes) is None, right
    assert human.score < LIMITS.spoken_phrase_phonemes.phrase, human


def test_the_phrase_is_phonemised_word_by_word_without_punctuation(scorer):
    assert scorer.phonemes("my voice.") == scorer.phonemes("My voice") == "maɪ vɔɪs"


def test_a_mismatch_names_the_failed_check_and_its_score_against_the_threshold():
    thresholds = PhraseThresholds(phrase=0.75, operator=0.75)

    assert phrase_mismatch(word_match(PHRASE, "Voxflow", PHRASE), "Voxflow", thresholds) is None
    assert phrase_mismatch(word_match(PHRASE, "Voxflow", "Please enter your password."), "Voxflow", thresholds) == (
        "wrong phrase: the recording does not say the consent phrase (match 0.00 < 0.75 by whisper_words; "
        "heard 'Please enter your password.')")
    assert speaker_mismatch(0.93, 0.80) is None and speaker_mismatch(None, 0.80) is None
    assert speaker_mismatch(0.55, 0.80) == (
        "wrong speaker: the statement is not spoken by the voice's speaker (similarity 0.55 < 0.80)")
