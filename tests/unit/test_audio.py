import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from processors.audio.codec_quality import (
    assess_quality,
    decode_audio,
    encode_wav,
    normalise_loudness,
    prepare_sample,
    resample,
    to_mono,
    trim_silence,
)
from processors.errors import AudioDecodeError, EmptyAudioError, InvalidAudioError

RATE_HZ = 16000


def _encoded(samples, sample_rate_hz, file_format, subtype=None):
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate_hz, format=file_format, subtype=subtype)
    return buffer.getvalue()


def _swelling_noise(colour):
    """20 s of white or pink noise from a fan speeding up and slowing down: loud and quiet stretches like speech."""
    rng = np.random.default_rng(7)
    spectrum = np.fft.rfft(rng.standard_normal(20 * RATE_HZ))
    if colour == "pink":
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
    noise = np.fft.irfft(spectrum)
    swell = 1 + 0.9 * np.sin(2 * np.pi * 0.7 * np.arange(noise.size) / RATE_HZ)
    return (0.2 * noise / np.abs(noise).max() * swell).astype(np.float32)


def _with_white_noise(english_speech_8s, snr_db):
    noise = np.random.default_rng(3).standard_normal(english_speech_8s.size).astype(np.float32)
    return english_speech_8s + noise * np.sqrt(np.mean(english_speech_8s**2) / 10 ** (snr_db / 10))


def _ffmpeg_encoded(samples, sample_rate_hz, output_format, codec):
    encode = ["-c:a", codec, "-f", output_format, "pipe:1"]
    command = ["ffmpeg", "-nostdin", "-v", "error", "-f", "wav", "-i", "pipe:0", *encode]
    return subprocess.run(command, input=encode_wav(samples, sample_rate_hz), capture_output=True, check=True).stdout


@pytest.mark.parametrize(
    ("file_format", "subtype", "tolerance"),
    [
        ("WAV", "PCM_16", 1e-4),
        ("FLAC", "PCM_16", 1e-4),
        ("OGG", "VORBIS", None),
        ("OGG", "OPUS", None),
        ("MP3", "MPEG_LAYER_III", None),
    ],
)
def test_decodes_real_speech_from_common_formats(english_speech_8s, file_format, subtype, tolerance):
    decoded = decode_audio(_encoded(english_speech_8s, RATE_HZ, file_format, subtype))

    assert decoded.sample_rate_hz == RATE_HZ
    assert decoded.channels == 1
    assert decoded.samples.dtype == np.float32
    assert decoded.duration_s == pytest.approx(8.0, abs=0.1)
    if tolerance is not None:
        assert np.max(np.abs(decoded.samples[0] - english_speech_8s)) < tolerance


def test_decodes_m4a_through_ffmpeg_even_with_its_index_at_the_end(english_speech_8s, tmp_path):
    # ffmpeg writes the mp4 index after the audio unless told otherwise, so decoding must seek.
    m4a_path = tmp_path / "speech.m4a"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "wav", "-i", "pipe:0", "-c:a", "aac", str(m4a_path)],
        input=encode_wav(english_speech_8s, RATE_HZ),
        check=True,
    )

    decoded = decode_audio(m4a_path.read_bytes())

    assert decoded.sample_rate_hz == RATE_HZ
    assert decoded.duration_s == pytest.approx(8.0, abs=0.1)


def test_decodes_a_browser_recording_in_webm_opus(english_speech_8s):
    decoded = decode_audio(_ffmpeg_encoded(english_speech_8s, RATE_HZ, "webm", "libopus"))

    assert decoded.sample_rate_hz == 48000
    assert decoded.duration_s == pytest.approx(8.0, abs=0.1)


def test_empty_bytes_are_a_named_error():
    with pytest.raises(EmptyAudioError):
        decode_audio(b"")


@pytest.mark.parametrize("garbage", [b"not audio at all " * 64, bytes(range(256)) * 40, b"RIFF\x00\x00\x00\x00WAVE"])
def test_garbage_bytes_are_a_named_error(garbage):
    with pytest.raises(AudioDecodeError):
        decode_audio(garbage)


def test_stereo_44k_upload_becomes_mono_16k_speech(english_speech_8s):
    stereo_44k = resample(np.stack([english_speech_8s, 0.5 * english_speech_8s]), RATE_HZ, 44100)

    prepared = prepare_sample(_encoded(stereo_44k.T, 44100, "WAV", "PCM_16"))

    assert prepared.original_channels == 2
    assert prepared.original_rate_hz == 44100
    assert prepared.sample_rate_hz == RATE_HZ
    assert prepared.samples.ndim == 1
    assert prepared.original_duration_s == pytest.approx(8.0, abs=0.01)
    assert prepared.report.accepted


def test_8k_telephone_upload_is_resampled_to_16k(english_speech_8s):
    narrowband = resample(english_speech_8s, RATE_HZ, 8000)

    prepared = prepare_sample(encode_wav(narrowband, 8000))

    assert prepared.original_rate_hz == 8000
    assert prepared.sample_rate_hz == RATE_HZ
    assert prepared.report.duration_s == pytest.approx(8.0, abs=0.01)
    assert prepared.report.accepted


def test_prepared_sample_is_trimmed_and_at_the_standard_level(english_speech_8s):
    padded = np.concatenate([np.zeros(RATE_HZ, np.float32), 0.1 * english_speech_8s, np.zeros(RATE_HZ, np.float32)])

    prepared = prepare_sample(encode_wav(padded, RATE_HZ))

    assert prepared.samples.size / RATE_HZ < 8.5
    assert 20 * np.log10(np.sqrt(np.mean(prepared.samples**2))) == pytest.approx(-23.0, abs=1.0)


def test_quality_gate_accepts_real_speech(english_speech_8s):
    report = assess_quality(english_speech_8s, RATE_HZ)

    assert report.accepted, report.reasons
    assert report.reasons == []
    assert report.speech_duration_s > 5.0
    assert report.snr_db > 30.0
    assert report.suggestions == ["add 23 s more speech for a more faithful voice"]
    assert report.vad == "energy"
    assert report.dnsmos is None


def test_quality_gate_rejects_silence():
    report = assess_quality(np.zeros(5 * RATE_HZ, np.float32), RATE_HZ)

    assert not report.accepted
    assert "silent" in report.reasons[0]
    assert "microphone" in report.suggestions[0]


def test_quality_gate_rejects_a_fifth_of_a_second(english_speech_8s):
    report = assess_quality(english_speech_8s[: RATE_HZ // 5], RATE_HZ)

    assert not report.accepted
    assert any("of speech" in reason for reason in report.reasons)


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_quality_gate_rejects_noise_without_a_voice(colour):
    report = assess_quality(_swelling_noise(colour), RATE_HZ)

    assert not report.accepted
    assert report.voiced_duration_s < 0.5


def test_quality_gate_rejects_speech_drowned_in_noise(english_speech_8s):
    noise = np.random.default_rng(3).standard_normal(english_speech_8s.size).astype(np.float32) * np.sqrt(np.mean(english_speech_8s**2))

    report = assess_quality(english_speech_8s + noise, RATE_HZ)

    assert not report.accepted
    assert report.snr_db < 10
    assert any("quieter room" in suggestion for suggestion in report.suggestions)


def test_quality_gate_rejects_clipped_speech(english_speech_8s):
    report = assess_quality(np.clip(english_speech_8s * 10, -1.0, 1.0), RATE_HZ)

    assert not report.accepted
    assert report.clipping_ratio > 0.01
    assert any("clipped" in reason for reason in report.reasons)


def test_twenty_minute_upload_is_rejected_with_a_reason(english_speech_8s):
    twenty_minutes_8k = np.tile(resample(english_speech_8s, RATE_HZ, 8000), 150)

    prepared = prepare_sample(encode_wav(twenty_minutes_8k, 8000))

    assert not prepared.report.accepted
    assert prepared.original_duration_s == pytest.approx(1200.0)
    assert any("20.0 min" in reason for reason in prepared.report.reasons)


def test_vad_gate_accepts_real_speech_and_names_its_detector(english_speech_8s, speech_detector):
    report = assess_quality(english_speech_8s, RATE_HZ, vad=speech_detector)

    assert report.accepted, report.reasons
    assert 6.5 < report.speech_duration_s <= 8.0
    assert report.snr_db > 30.0
    assert report.vad == "silero-vad"


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_vad_gate_hears_no_speech_in_noise(speech_detector, colour):
    report = assess_quality(_swelling_noise(colour), RATE_HZ, vad=speech_detector)

    assert not report.accepted
    assert report.speech_duration_s < 0.3
    assert any("of speech" in reason for reason in report.reasons)


def test_vad_trims_a_knock_before_the_speech_that_the_energy_detector_keeps(english_speech_8s, speech_detector):
    times_s = np.arange(int(0.3 * RATE_HZ)) / RATE_HZ
    knock = (0.5 * np.exp(-40 * times_s) * np.sin(2 * np.pi * 180 * times_s)).astype(np.float32)
    pause = np.zeros(RATE_HZ, np.float32)
    recording = np.concatenate([knock, pause, english_speech_8s, pause])

    by_vad = trim_silence(recording, RATE_HZ, vad=speech_detector)
    by_energy = trim_silence(recording, RATE_HZ)

    assert english_speech_8s.size - 0.5 * RATE_HZ < by_vad.size < english_speech_8s.size + 0.3 * RATE_HZ
    assert by_energy.size > english_speech_8s.size + RATE_HZ
    assert trim_silence(pause, RATE_HZ, vad=speech_detector).size == 0


def test_dnsmos_of_clean_speech_beats_the_same_speech_with_noise(english_speech_8s, speech_detector, dnsmos_estimator):
    clean = assess_quality(english_speech_8s, RATE_HZ, vad=speech_detector, dnsmos=dnsmos_estimator)
    noisy = assess_quality(_with_white_noise(english_speech_8s, 5.0), RATE_HZ, vad=speech_detector, dnsmos=dnsmos_estimator)

    assert clean.dnsmos > 2.8
    assert noisy.dnsmos < clean.dnsmos - 0.5


def test_low_dnsmos_is_advice_not_a_rejection(english_speech_8s, speech_detector, dnsmos_estimator):
    report = assess_quality(_with_white_noise(english_speech_8s, 12.0), RATE_HZ, vad=speech_detector, dnsmos=dnsmos_estimator)

    assert report.accepted, report.reasons
    assert report.dnsmos < 2.5
    assert any("DNSMOS" in suggestion and "quieter room" in suggestion for suggestion in report.suggestions)


def test_prepared_sample_is_trimmed_by_the_vad_and_reports_both_models(english_speech_8s, speech_detector, dnsmos_estimator):
    padded = np.concatenate([np.zeros(RATE_HZ, np.float32), 0.1 * english_speech_8s, np.zeros(RATE_HZ, np.float32)])

    prepared = prepare_sample(encode_wav(padded, RATE_HZ), RATE_HZ, vad=speech_detector, dnsmos=dnsmos_estimator)

    assert prepared.samples.size / RATE_HZ < 8.5
    assert prepared.report.accepted, prepared.report.reasons
    assert prepared.report.to_dict()["vad"] == "silero-vad"
    assert prepared.report.to_dict()["dnsmos"] > 2.5


def test_normalised_loudness_hits_the_target_without_exceeding_the_ceiling(english_speech_8s):
    louder = normalise_loudness(0.01 * english_speech_8s, target_rms_dbfs=-20.0, peak_ceiling_dbfs=-1.0)
    limited = normalise_loudness(english_speech_8s, target_rms_dbfs=-3.0, peak_ceiling_dbfs=-1.0)

    assert 20 * np.log10(np.sqrt(np.mean(louder**2))) == pytest.approx(-20.0, abs=0.01)
    assert np.max(np.abs(limited)) == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    assert np.array_equal(normalise_loudness(np.zeros(100, np.float32)), np.zeros(100, np.float32))


def test_trim_silence_keeps_speech_and_a_little_padding(english_speech_8s):
    padded = np.concatenate([np.zeros(2 * RATE_HZ, np.float32), english_speech_8s, np.zeros(2 * RATE_HZ, np.float32)])

    trimmed = trim_silence(padded, RATE_HZ)

    assert english_speech_8s.size - 0.5 * RATE_HZ < trimmed.size < english_speech_8s.size + 0.3 * RATE_HZ
    assert trim_silence(np.zeros(RATE_HZ, np.float32), RATE_HZ).size == 0


def test_wav_encoding_round_trips(english_speech_8s):
    decoded = decode_audio(encode_wav(english_speech_8s, RATE_HZ))

    assert np.max(np.abs(decoded.samples[0] - english_speech_8s)) <= 1 / 32768 + 1e-6


def test_resampling_keeps_the_pitch_of_a_tone():
    tone = np.sin(2 * np.pi * 440 * np.arange(RATE_HZ) / RATE_HZ).astype(np.float32)

    upsampled = resample(tone, RATE_HZ, 24000)

    spectrum = np.abs(np.fft.rfft(upsampled))
    assert upsampled.size == 24000
    assert np.argmax(spectrum) * 24000 / upsampled.size == pytest.approx(440, abs=1)


@pytest.mark.parametrize(("sample_count", "target_rate_hz"), [(1, 8000), (511, 44100), (12345, 22050), (16000, 48000)])
def test_resampled_length_rounds_up_like_torchaudio_did(sample_count, target_rate_hz):
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, sample_count).astype(np.float32)

    resampled = resample(samples, RATE_HZ, target_rate_hz)

    assert resampled.dtype == np.float32
    assert resampled.size == -(-sample_count * target_rate_hz // RATE_HZ)


def test_resampling_treats_each_channel_alone(english_speech_8s):
    stereo = np.stack([english_speech_8s, -0.5 * english_speech_8s])

    resampled = resample(stereo, RATE_HZ, 44100)

    assert resampled.shape == (2, 8 * 44100)
    assert np.array_equal(resampled[0], resample(english_speech_8s, RATE_HZ, 44100))
    assert np.allclose(resampled[1], -0.5 * resampled[0], atol=1e-6)


def test_resampling_there_and_back_keeps_speech(english_speech_8s):
    round_trip = resample(resample(english_speech_8s, RATE_HZ, 44100), 44100, RATE_HZ)

    assert np.linalg.norm(round_trip - english_speech_8s) < 0.02 * np.linalg.norm(english_speech_8s)


def test_audio_processing_does_not_load_torch():
    # torch's CUDA build costs every worker ~600 MB resident; a fresh interpreter shows what an import pulls in
    script = "import sys, processors.audio.codec_quality; print('torch' in sys.modules)"

    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert completed.stdout.strip() == "False"


def test_to_mono_averages_channels():
    stereo = np.stack([np.full(10, 0.2, np.float32), np.full(10, 0.4, np.float32)])

    assert np.allclose(to_mono(stereo), 0.3)


@pytest.mark.parametrize(
    "bad_audio", [np.full(10, np.nan, np.float32), np.zeros((2, 2, 2), np.float32), np.zeros(10, np.int16)]
)
def test_unusable_arrays_are_a_named_error(bad_audio):
    with pytest.raises(InvalidAudioError):
        assess_quality(bad_audio, RATE_HZ)


def test_a_sample_rate_of_zero_is_a_named_error(english_speech_8s):
    with pytest.raises(InvalidAudioError):
        resample(english_speech_8s, 0, RATE_HZ)
