import numpy as np
import pytest

from processors.audio.codec_quality import encode_wav
from processors.cloning import clone_voice
from processors.constants import OUTPUT_SAMPLE_RATE_HZ
from processors.errors import (
    EmptyTextError,
    NoVoicedSpeechError,
    ReferenceRejectedError,
    TextTooLongError,
    UnsupportedLanguageError,
)
from processors.scoring.quality import QualityScorer
from processors.synthesis.engine import SynthesisControls, WorldConversionEngine
from processors.voice.profile import build_profile

MALAYALAM_TEXT = "നമസ്കാരം, സുഖമാണോ? ഞാൻ നാളെ വൈകുന്നേരം ഏഴു മണിക്ക് വരും."
ENGLISH_SENTENCE = "Please leave a message after the tone, and we will call you back."
ZERO_SHOT_S = 8.0


@pytest.fixture(scope="module")
def engine(espeak_tts):
    return WorldConversionEngine(espeak_tts)


@pytest.fixture(scope="module")
def zero_shot_reference(english_reference_speech):
    samples, sample_rate_hz = english_reference_speech
    return encode_wav(samples[: int(ZERO_SHOT_S * sample_rate_hz)], sample_rate_hz)


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(0).normal(0, 0.1, 16000 * 6).astype(np.float32)


def test_one_short_clip_clones_a_voice_that_the_verifier_leans_toward(
    zero_shot_reference, speaker_encoder, engine, english_heldout_speech, czech_male_speech
):
    result = clone_voice(
        [zero_shot_reference], ENGLISH_SENTENCE, encoder=speaker_encoder, engine=engine, scorer=QualityScorer(speaker_encoder)
    )

    heard = speaker_encoder.embed(result.samples, result.sample_rate_hz)
    target = speaker_encoder.embed(*english_heldout_speech)
    other = speaker_encoder.embed(*czech_male_speech)
    assert result.sample_rate_hz >= 24000
    assert np.dot(heard, target) > np.dot(heard, other)
    assert result.scores.similarity > 0.6
    assert result.reference_reports[0].accepted


def test_an_english_voice_speaks_malayalam_for_a_plausible_time(english_voice_profile, engine):
    output = engine.synthesize(MALAYALAM_TEXT, "ml", english_voice_profile, SynthesisControls())

    assert output.sample_rate_hz == OUTPUT_SAMPLE_RATE_HZ
    assert 3.0 < output.duration_s < 15.0


def test_two_thousand_characters_arrive_as_ordered_chunks(english_voice_profile, engine):
    text = " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 32)

    chunks = list(engine.synthesize_chunks(text, "en", english_voice_profile, SynthesisControls(speed=2.0)))

    assert len(text) >= 2000
    assert [chunk.index for chunk, _ in chunks] == list(range(len(chunks)))
    assert all(chunk.count == len(chunks) > 1 for chunk, _ in chunks)
    total_s = sum(output.duration_s for _, output in chunks)
    assert 0.4 * 360 / 160 * 60 / 2 < total_s < 2.5 * 360 / 160 * 60 / 2


def test_markup_and_emoji_are_not_spoken(english_voice_profile, engine):
    marked = engine.synthesize('<speak>Hello <break time="1s"/> there 👋</speak>', "en", english_voice_profile, SynthesisControls())
    plain = engine.synthesize("Hello there", "en", english_voice_profile, SynthesisControls())

    assert marked.duration_s == pytest.approx(plain.duration_s, rel=0.05)


@pytest.mark.parametrize(
    ("text", "language", "error"),
    [
        ("hello", "xx", UnsupportedLanguageError),
        ("🙂🙂", "en", EmptyTextError),
        ("", "en", EmptyTextError),
        ("a" * 100_000, "en", TextTooLongError),
    ],
)
def test_bad_requests_are_named_errors(english_voice_profile, engine, text, language, error):
    with pytest.raises(error):
        engine.synthesize(text, language, english_voice_profile, SynthesisControls())


def test_noise_as_a_reference_is_rejected_with_a_reason(noise, speaker_encoder, engine):
    with pytest.raises(ReferenceRejectedError, match="reference 1"):
        clone_voice([encode_wav(noise, 16000)], "hello", encoder=speaker_encoder, engine=engine)


def test_a_profile_cannot_be_built_from_noise(noise, speaker_encoder):
    with pytest.raises(NoVoicedSpeechError):
        build_profile([noise], 16000, speaker_encoder)
