"""The Kokoro engine: intelligible speech in a fitted voice, controls that do what they say, blends between voices."""

from dataclasses import replace

import numpy as np
import pytest
import pyworld

from processors.errors import EmptyTextError, InvalidTextError, ProfileFormatError, UnsupportedLanguageError
from processors.scoring.quality import word_error_rate
from processors.synthesis.engine import SynthesisControls
from processors.synthesis.kokoro_text import phoneme_string
from processors.voice.kokoro_voices import KokoroVoice, mix_voices
from processors.voice.morph import morph_profiles, shift_voice
from processors.voice.profile import VoiceProfile
from processors.voice.speaker import cosine_similarity

SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "The juice of lemons makes fine punch.",
)
CONTROL_TEXT = "We will meet again next Tuesday at the old library near the station."
MALAYALAM_TEXT = "നമസ്കാരം, സുഖമാണോ? ഞാൻ നാളെ വൈകുന്നേരം ഏഴു മണിക്ക് വരും."


def median_f0_hz(samples: np.ndarray, sample_rate_hz: int) -> float:
    speech = samples.astype(np.float64)
    coarse, times = pyworld.dio(speech, sample_rate_hz, f0_floor=60.0, f0_ceil=600.0)
    f0 = pyworld.stonemask(speech, coarse, times, sample_rate_hz)
    return float(np.median(f0[f0 > 0]))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


@pytest.fixture(scope="module")
def plain_speech(kokoro_engine, english_kokoro_profile):
    return kokoro_engine.synthesize(CONTROL_TEXT, "en", english_kokoro_profile, SynthesisControls())


def test_espeak_ipa_is_rewritten_in_kokoros_symbols_with_its_punctuation():
    phonemes = phoneme_string("Mister Smith, where is the bird? Over there!", "en")

    assert "ɚ" not in phonemes and "ɜː" not in phonemes and "r" not in phonemes
    assert "əɹ" in phonemes and "ɜɹ" in phonemes
    assert phonemes.count(",") == 1 and phonemes.count("?") == 1 and phonemes.endswith("!")


def test_kokoro_speech_in_a_cloned_voice_keeps_its_words(kokoro_engine, english_kokoro_profile, whisper_transcriber):
    outputs = [kokoro_engine.synthesize(text, "en", english_kokoro_profile, SynthesisControls()) for text in SENTENCES]

    errors = [word_error_rate(text, whisper_transcriber.transcribe(output.samples, output.sample_rate_hz, "en"))
              for text, output in zip(SENTENCES, outputs)]
    assert all(output.sample_rate_hz == 24000 for output in outputs)
    assert np.mean(errors) <= 0.15


def test_the_instant_voice_is_nearer_its_speaker_than_a_random_stock_voice(
    kokoro_engine, english_kokoro_profile, stock_voices, independent_encoder, english_heldout_speech
):
    target = independent_encoder.embed(*english_heldout_speech)
    nearest_name, _ = stock_voices.nearest(english_kokoro_profile.embedding)[0]
    others = [name for name in stock_voices.names if name != nearest_name]
    random_pack = others[int(np.random.default_rng(7).integers(len(others)))]

    def heard_similarity(voice: KokoroVoice) -> float:
        output = kokoro_engine.synthesize(CONTROL_TEXT, "en", replace(english_kokoro_profile, kokoro_voice=voice),
                                          SynthesisControls())
        return cosine_similarity(independent_encoder.embed(output.samples, output.sample_rate_hz), target)

    assert heard_similarity(english_kokoro_profile.kokoro_voice) > heard_similarity(KokoroVoice({random_pack: 1.0}))


def test_speed_shortens_and_slows_speech(kokoro_engine, english_kokoro_profile, plain_speech):
    fast = kokoro_engine.synthesize(CONTROL_TEXT, "en", english_kokoro_profile, SynthesisControls(speed=1.5))
    slow = kokoro_engine.synthesize(CONTROL_TEXT, "en", english_kokoro_profile, SynthesisControls(speed=0.7))

    assert fast.duration_s < 0.8 * plain_speech.duration_s
    assert slow.duration_s > 1.2 * plain_speech.duration_s


def test_pitch_shift_moves_the_measured_pitch_by_about_the_asked_semitones(
    kokoro_engine, english_kokoro_profile, plain_speech
):
    higher = kokoro_engine.synthesize(CONTROL_TEXT, "en", english_kokoro_profile, SynthesisControls(pitch_semitones=4))

    semitones = 12 * np.log2(median_f0_hz(higher.samples, 24000) / median_f0_hz(plain_speech.samples, 24000))
    assert 3.0 < semitones < 5.0


def test_energy_raises_the_level(kokoro_engine, english_kokoro_profile, plain_speech):
    louder = kokoro_engine.synthesize(CONTROL_TEXT, "en", english_kokoro_profile, SynthesisControls(energy_db=6))

    assert 20 * np.log10(rms(louder.samples) / rms(plain_speech.samples)) > 4.0


@pytest.mark.parametrize(("gender", "age", "higher"), [(1.0, 0.0, True), (-1.0, 0.0, False), (0.0, 1.0, False)])
def test_gender_and_age_move_the_voice_the_asked_way(kokoro_engine, english_kokoro_profile, plain_speech, gender, age,
                                                     higher):
    shifted = shift_voice(english_kokoro_profile, gender=gender, age=age)
    output = kokoro_engine.synthesize(CONTROL_TEXT, "en", shifted, SynthesisControls())

    ratio = median_f0_hz(output.samples, 24000) / median_f0_hz(plain_speech.samples, 24000)
    assert (ratio > 1.05) if higher else (ratio < 0.95)


def test_a_blend_lies_between_its_voices(kokoro_engine, english_kokoro_profile, stock_voices, speaker_encoder):
    first, second = KokoroVoice({"am_adam": 1.0}), KokoroVoice({"af_bella": 1.0})
    profiles = [replace(english_kokoro_profile, kokoro_voice=voice) for voice in (first, second)]

    def embedding(profile: VoiceProfile) -> np.ndarray:
        output = kokoro_engine.synthesize(CONTROL_TEXT, "en", profile, SynthesisControls())
        return speaker_encoder.embed(output.samples, output.sample_rate_hz)

    ends = [embedding(profile) for profile in profiles]
    middle = embedding(morph_profiles(profiles, [0.5, 0.5]))

    assert cosine_similarity(middle, ends[0]) > cosine_similarity(ends[1], ends[0])
    assert cosine_similarity(middle, ends[1]) > cosine_similarity(ends[0], ends[1])
    assert mix_voices([first, second], [0.5, 0.5]).pack_weights == {"am_adam": 0.5, "af_bella": 0.5}


def test_an_english_voice_speaks_malayalam_for_a_plausible_time(kokoro_engine, english_kokoro_profile):
    output = kokoro_engine.synthesize(MALAYALAM_TEXT, "ml", english_kokoro_profile, SynthesisControls())

    assert 2.5 < output.duration_s < 12.0


@pytest.mark.parametrize(
    ("text", "language", "error"),
    [("hello", "xx", UnsupportedLanguageError), ("🙂🙂", "en", EmptyTextError), ("...", "en", EmptyTextError)],
)
def test_bad_requests_are_named_errors(kokoro_engine, english_kokoro_profile, text, language, error):
    with pytest.raises(error):
        kokoro_engine.synthesize(text, language, english_kokoro_profile, SynthesisControls())


def test_a_chunk_without_pronounceable_words_is_refused(kokoro_synthesizer):
    with pytest.raises(InvalidTextError):
        kokoro_synthesizer.tokens("— … —", "en")


def test_profiles_keep_their_kokoro_voice_and_older_profiles_still_load(english_kokoro_profile):
    restored = VoiceProfile.from_dict(english_kokoro_profile.to_dict())
    older = {key: value for key, value in english_kokoro_profile.to_dict().items() if key != "kokoro_voice"}

    assert restored == english_kokoro_profile
    assert VoiceProfile.from_dict({**older, "version": 2}).kokoro_voice is None
    with pytest.raises(ProfileFormatError):
        VoiceProfile.from_dict({**english_kokoro_profile.to_dict(), "kokoro_voice": {"pack_weights": {}}})


def test_a_profile_without_a_kokoro_voice_speaks_with_its_instant_voice(kokoro_engine, english_voice_profile):
    output = kokoro_engine.synthesize(SENTENCES[0], "en", english_voice_profile, SynthesisControls())

    assert output.duration_s > 1.0


def test_the_float_convolution_graph_speaks_the_int8_models_voice_at_its_length(
    kokoro_synthesizer, stock_voices, speaker_encoder
):
    from infra.kokoro_assets import kokoro_model_path, kokoro_vocabulary
    from processors.synthesis.kokoro import KokoroSynthesizer

    int8 = KokoroSynthesizer(kokoro_model_path(), kokoro_vocabulary())
    table = stock_voices.table(stock_voices.names[0])
    tokens = kokoro_synthesizer.tokens(CONTROL_TEXT, "en")

    rewritten, original = kokoro_synthesizer.render(tokens, table), int8.render(tokens, table)

    assert abs(rewritten.size - original.size) <= 0.02 * original.size
    assert cosine_similarity(speaker_encoder.embed(rewritten, 24000), speaker_encoder.embed(original, 24000)) >= 0.98
