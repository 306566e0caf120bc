import numpy as np
import pytest

from processors.constants import GENDER_SHIFT_SEMITONES
from processors.errors import InvalidMorphError, InvalidVoiceTransformError
from processors.voice.morph import morph_profiles, shift_voice
from processors.voice.speaker import cosine_similarity
from processors.synthesis.engine import SynthesisControls, WorldConversionEngine
from processors.voice.profile import VoiceProfile, analyse_world, build_profile

TEXT = "Please leave a message after the tone, and we will call you back as soon as possible."


def median_f0_hz(samples, sample_rate_hz):
    f0_hz = analyse_world(samples, sample_rate_hz).f0_hz
    return float(np.median(f0_hz[f0_hz > 0]))


@pytest.fixture(scope="module")
def male_profile(czech_male_speech, speaker_encoder):
    return build_profile([czech_male_speech[0]], czech_male_speech[1], speaker_encoder)


@pytest.fixture(scope="module")
def engine(espeak_tts):
    return WorldConversionEngine(espeak_tts)


@pytest.fixture(scope="module")
def spoken(engine, english_voice_profile, male_profile, speaker_encoder):
    """Embedding and median F0 of the sentence spoken by voice A, voice B and their even blend."""
    voices = {
        "a": english_voice_profile,
        "b": male_profile,
        "blend": morph_profiles([english_voice_profile, male_profile], [0.5, 0.5]),
    }
    result = {}
    for name, profile in voices.items():
        output = engine.synthesize(TEXT, "en", profile, SynthesisControls())
        result[name] = (speaker_encoder.embed(output.samples, output.sample_rate_hz), median_f0_hz(output.samples, output.sample_rate_hz))
    return result


def test_blend_of_two_voices_sounds_closer_to_each_than_they_are_to_each_other(spoken):
    a, b, blend = spoken["a"][0], spoken["b"][0], spoken["blend"][0]

    assert cosine_similarity(blend, a) > cosine_similarity(a, b)
    assert cosine_similarity(blend, b) > cosine_similarity(a, b)


def test_blend_is_pitched_between_the_two_voices(spoken):
    low, high = sorted([spoken["a"][1], spoken["b"][1]])

    assert low * 1.1 < spoken["blend"][1] < high / 1.1


def test_profile_blend_weights_pull_toward_the_heavier_voice(english_voice_profile, male_profile):
    mostly_a = morph_profiles([english_voice_profile, male_profile], [0.8, 0.2])

    assert cosine_similarity(mostly_a.embedding, english_voice_profile.embedding) > cosine_similarity(
        mostly_a.embedding, male_profile.embedding
    )
    assert isinstance(VoiceProfile.from_dict(mostly_a.to_dict()), VoiceProfile)


@pytest.mark.parametrize(
    ("weights", "message"),
    [([0.5, 0.4], "sum to 1"), ([1.2, -0.2], "non-negative"), ([0.5], "weights"), ([float("nan"), 1.0], "finite")],
)
def test_bad_morph_weights_are_named_errors(english_voice_profile, male_profile, weights, message):
    with pytest.raises(InvalidMorphError, match=message):
        morph_profiles([english_voice_profile, male_profile], weights)


def test_more_than_four_voices_is_a_named_error(english_voice_profile):
    with pytest.raises(InvalidMorphError, match="2-4"):
        morph_profiles([english_voice_profile] * 5, [0.2] * 5)


@pytest.mark.parametrize("gender", [-1.0, 1.0])
def test_gender_shift_moves_spoken_pitch_by_its_semitones(engine, male_profile, spoken, gender):
    output = engine.synthesize(TEXT, "en", shift_voice(male_profile, gender=gender), SynthesisControls())

    moved_semitones = 12 * np.log2(median_f0_hz(output.samples, output.sample_rate_hz) / spoken["b"][1])
    assert moved_semitones == pytest.approx(gender * GENDER_SHIFT_SEMITONES, abs=1.5)


def test_gender_shift_raises_the_formants_of_the_profile(male_profile):
    feminine = shift_voice(male_profile, gender=1.0)

    assert feminine.mcep_mean != male_profile.mcep_mean
    assert feminine.speaker_embedding == male_profile.speaker_embedding


def test_older_voice_is_lower_and_flatter(english_voice_profile):
    older = shift_voice(english_voice_profile, age=1.0)

    assert older.f0_median_hz < english_voice_profile.f0_median_hz
    assert older.log_f0_std < english_voice_profile.log_f0_std


@pytest.mark.parametrize("shift", [{"gender": 1.5}, {"age": -2.0}, {"gender": float("inf")}])
def test_out_of_range_shift_is_a_named_error(english_voice_profile, shift):
    with pytest.raises(InvalidVoiceTransformError):
        shift_voice(english_voice_profile, **shift)
