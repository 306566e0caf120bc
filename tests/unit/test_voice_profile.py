import json

import numpy as np
import pytest

from processors.errors import InconsistentSpeakerError, NoVoicedSpeechError, ProfileFormatError
from processors.voice.profile import VoiceProfile, analyse_world, build_profile

RATE_HZ = 16000


def test_profile_describes_a_female_voice(english_voice_profile):
    profile = english_voice_profile

    assert 165 < profile.f0_median_hz < 230
    assert profile.f0_low_hz < profile.f0_median_hz < profile.f0_high_hz
    assert np.exp(profile.log_f0_mean) == pytest.approx(profile.f0_median_hz, rel=0.1)
    assert profile.embedding.shape == (256,)
    assert np.linalg.norm(profile.embedding) == pytest.approx(1.0, abs=1e-5)
    assert len(profile.mcep_mean) == len(profile.mcep_std) == 40
    assert profile.speech_duration_s > 20
    assert 1.0 < profile.voiced_segments_per_s < 8.0


def test_samples_of_one_speaker_are_consistent(english_voice_profile):
    assert english_voice_profile.inconsistent_samples == ()
    assert len(english_voice_profile.sample_similarities) == 5
    assert min(english_voice_profile.sample_similarities) > 0.85
    assert english_voice_profile.embedding_spread > 0.9


def test_one_sample_makes_a_profile_of_its_own(english_profile_chunks, speaker_encoder):
    profile = build_profile(english_profile_chunks[:1], RATE_HZ, speaker_encoder)

    assert profile.sample_similarities == ()
    assert profile.inconsistent_samples == ()
    assert profile.embedding_spread == pytest.approx(1.0)


def test_an_intruding_speaker_is_flagged_and_left_out(english_profile_chunks, czech_male_speech, speaker_encoder):
    intruder = czech_male_speech[0][: 6 * RATE_HZ]

    profile = build_profile([*english_profile_chunks[:4], intruder], RATE_HZ, speaker_encoder)

    assert profile.inconsistent_samples == (4,)
    assert profile.sample_similarities[4] < 0.75
    assert profile.f0_median_hz > 165


def test_two_different_speakers_cannot_make_one_profile(english_profile_chunks, czech_male_speech, speaker_encoder):
    with pytest.raises(InconsistentSpeakerError):
        build_profile([english_profile_chunks[0], czech_male_speech[0]], RATE_HZ, speaker_encoder)


def test_noise_is_not_a_voice(speaker_encoder):
    noise = (0.1 * np.random.default_rng(5).standard_normal(6 * RATE_HZ)).astype(np.float32)

    with pytest.raises(NoVoicedSpeechError):
        build_profile([noise], RATE_HZ, speaker_encoder)


def test_profile_measures_breathiness_per_band(english_voice_profile):
    band_db = english_voice_profile.aperiodicity_band_db

    assert len(band_db) == 6
    assert all(-80.0 <= value <= 0.0 for value in band_db)
    assert band_db[0] < band_db[-1] - 6.0  # voiced speech is periodic at the bottom, noisy at the top


def test_profile_describes_fricatives_apart_from_vowels(english_voice_profile):
    voiced_tilt = english_voice_profile.mcep_mean[1]
    fricative_tilt = english_voice_profile.unvoiced_mcep_mean[1]

    assert len(english_voice_profile.unvoiced_mcep_std) == 40
    assert fricative_tilt < voiced_tilt  # c1 > 0 is energy low in the spectrum; fricatives hiss high up


def test_a_profile_from_format_version_1_still_loads(english_voice_profile):
    added_in_version_2 = {"aperiodicity_band_db", "unvoiced_mcep_mean", "unvoiced_mcep_std"}
    stored = {key: value for key, value in english_voice_profile.to_dict().items() if key not in added_in_version_2}

    restored = VoiceProfile.from_dict({**stored, "version": 1})

    assert restored.aperiodicity_band_db == restored.unvoiced_mcep_mean == ()
    assert restored.mcep_mean == english_voice_profile.mcep_mean


def test_profile_survives_a_json_round_trip(english_voice_profile):
    restored = VoiceProfile.from_dict(json.loads(json.dumps(english_voice_profile.to_dict())))

    assert restored == english_voice_profile


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: {**data, "version": 99},
        lambda data: {key: value for key, value in data.items() if key != "mcep_std"},
        lambda data: {**data, "speaker_embedding": data["speaker_embedding"][:10]},
        lambda data: {**data, "log_f0_mean": float("nan")},
        lambda data: {**data, "unexpected": 1},
        lambda data: {**data, "aperiodicity_band_db": [-20.0]},
        lambda data: {**data, "unvoiced_mcep_std": []},
    ],
)
def test_malformed_profiles_are_refused(english_voice_profile, corrupt):
    with pytest.raises(ProfileFormatError):
        VoiceProfile.from_dict(corrupt(english_voice_profile.to_dict()))


def test_an_envelope_estimated_every_other_frame_stays_close_to_the_full_one(english_speech_8s):
    full = analyse_world(english_speech_8s, 16000, fft_size=512)
    interpolated = analyse_world(english_speech_8s, 16000, fft_size=512, envelope_interval_ms=10.0)

    difference_db = 10 * np.abs(np.log10(interpolated.spectral_envelope / full.spectral_envelope))
    assert interpolated.spectral_envelope.shape == full.spectral_envelope.shape
    assert np.array_equal(interpolated.f0_hz, full.f0_hz)
    assert np.median(difference_db[full.voiced]) < 1.5
