"""Voice analysis on real speech: the gate's figures, pitch, speaking rate, advice, the same-speaker verdict, and
the self-contained report."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from infra.speech_assets import czech_actor_utterance, reference_utterance
from processors.audio.codec_quality import encode_wav
from processors.scoring.analysis import AnalysisModels, ComparedVoice, analyze_audio, analyze_recording
from processors.scoring.report import FIGURE_BOXES, png_bytes
from processors.scoring.voice_analysis import SAME_SPEAKER_MIN_COSINE, compare_speakers, measure_voice

pytest_plugins = ["tests.conftest_speech"]

RATE_HZ = 16000


@pytest.fixture(scope="module")
def english_12s(english_reference_speech) -> np.ndarray:
    samples, _ = english_reference_speech
    return samples[: 12 * RATE_HZ]


def test_real_speech_is_measured_as_the_ingest_gate_measures_it(english_12s, speech_detector, dnsmos_estimator):
    metrics, contour = measure_voice(english_12s, vad=speech_detector, dnsmos=dnsmos_estimator)

    assert metrics.accepted and metrics.vad == "silero-vad"
    assert 9.0 < metrics.speech_s <= 12.0 and metrics.snr_db > 25 and metrics.clipping_ratio == 0
    assert 1.0 <= metrics.dnsmos <= 5.0
    low_hz, high_hz = metrics.f0_range_hz
    assert 100 < low_hz < metrics.f0_median_hz < high_hz < 400  # a woman's speaking voice
    assert 2.5 < metrics.speaking_rate < 6.0  # read speech, in syllables per second
    assert contour.times_s.size == contour.f0_hz.size and contour.voiced_hz.size > 0


def test_a_man_is_measured_lower_than_a_woman(english_12s, speech_detector):
    man, _ = czech_actor_utterance("big_fish", 12.0)

    woman_metrics, _ = measure_voice(english_12s, vad=speech_detector)
    man_metrics, _ = measure_voice(man, vad=speech_detector)

    assert man_metrics.f0_median_hz < 150 < woman_metrics.f0_median_hz


def test_silence_around_the_speech_leaves_the_speaking_rate_alone(english_12s):
    padded = np.concatenate([np.zeros(5 * RATE_HZ, np.float32), english_12s, np.zeros(5 * RATE_HZ, np.float32)])

    plain, _ = measure_voice(english_12s)
    with_silence, _ = measure_voice(padded)

    assert with_silence.speaking_rate == pytest.approx(plain.speaking_rate, rel=0.15)


@pytest.mark.parametrize("damage, advice", [
    (lambda speech: speech * 0.01, "speak up or move closer"),
    (lambda speech: np.clip(speech * 30, -1, 1), "lower the input gain"),
    (lambda speech: speech + np.random.default_rng(1).normal(0, 0.2, speech.size).astype(np.float32),
     "record in a quieter room"),
    (lambda speech: speech[: 3 * RATE_HZ], "more speech"),
])
def test_a_damaged_recording_gets_concrete_advice(english_12s, damage, advice):
    metrics, _ = measure_voice(damage(english_12s).astype(np.float32))

    assert any(advice in suggestion for suggestion in metrics.suggestions), metrics.suggestions


def test_a_monotone_buzz_is_told_to_use_natural_intonation():
    seconds = np.arange(8 * RATE_HZ) / RATE_HZ
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * seconds))  # four loud-soft beats a second
    buzz = sum(np.sin(2 * np.pi * 150 * harmonic * seconds) / harmonic for harmonic in range(1, 8))
    metrics, _ = measure_voice((0.1 * syllables * buzz).astype(np.float32))

    assert metrics.f0_range_hz[1] - metrics.f0_range_hz[0] < 15
    assert any("natural intonation" in suggestion for suggestion in metrics.suggestions)


def test_the_same_real_speaker_on_other_sentences_is_judged_the_same(speaker_encoder, english_12s,
                                                                   english_heldout_speech):
    heldout, _ = english_heldout_speech

    comparison = compare_speakers(speaker_encoder.embed(english_12s, RATE_HZ), speaker_encoder.embed(heldout, RATE_HZ))

    assert comparison.verdict == "same" and comparison.score >= SAME_SPEAKER_MIN_COSINE
    assert comparison.encoder == "resemblyzer-ge2e" and "EER" in comparison.calibration


@pytest.mark.parametrize("first, second", [("english", "big_fish"), ("small_fish", "big_fish")])
def test_different_real_speakers_are_judged_different(speaker_encoder, english_12s, first, second):
    def speech(name: str) -> np.ndarray:
        return english_12s if name == "english" else czech_actor_utterance(name, 12.0)[0]

    comparison = compare_speakers(speaker_encoder.embed(speech(first), RATE_HZ),
                                  speaker_encoder.embed(speech(second), RATE_HZ))

    assert comparison.verdict == "different" and comparison.score < SAME_SPEAKER_MIN_COSINE


def test_the_threshold_separates_every_pair_of_the_real_speakers_at_hand(speaker_encoder):
    """The part of the calibration set the tests can fetch: one English and two Czech voices, 4 clips of 6 s each."""
    speakers = {"english": [reference_utterance(6.0, offset=4 * clip)[0] for clip in range(4)],
                **{actor: [czech_actor_utterance(actor, 6.0, offset=5 * clip)[0] for clip in range(4)]
                   for actor in ("small_fish", "big_fish")}}
    embeddings = [(name, speaker_encoder.embed(clip, RATE_HZ)) for name, clips in speakers.items() for clip in clips]

    pairs = [(first == second, compare_speakers(a, b).verdict)
             for index, (first, a) in enumerate(embeddings) for second, b in embeddings[index + 1:]]

    assert all(verdict == ("same" if same else "different") for same, verdict in pairs), pairs


def test_a_comparison_report_draws_every_figure_and_fetches_nothing(english_12s, speaker_encoder):
    other, _ = czech_actor_utterance("big_fish", 8.0)
    neighbours = {f"voice-{index}": vector / np.linalg.norm(vector)
                  for index, vector in enumerate(np.random.default_rng(0).normal(size=(6, 256)))}

    analysis = analyze_recording(encode_wav(english_12s, RATE_HZ), b"k" * 32, AnalysisModels(encoder=speaker_encoder),
                                 compared=ComparedVoice("big fish", speaker_encoder.embed(other, RATE_HZ)),
                                 neighbours=neighbours)
    html = analysis.report_html("Analysis of speech.wav")

    assert analysis.findings["comparison"]["verdict"] == "different"
    assert [voice.role for voice in analysis.voices] == ["subject", "compared"] + ["neighbour"] * 6
    for name in FIGURE_BOXES:
        assert f'id="figure-{name}"' in html
    assert "<script" not in html and not re.search(r'(src|href)="(?!data:)', html)
    assert "Same speaker as big fish? different" in html


def test_a_report_without_a_comparison_has_no_projection(english_12s):
    html = analyze_recording(encode_wav(english_12s, RATE_HZ), b"k" * 32).report_html("speech")

    assert 'id="figure-waveform"' in html and 'id="figure-projection"' not in html


def test_the_spectrogram_png_holds_exactly_its_pixels():
    image = np.random.default_rng(0).integers(0, 256, size=(3, 5, 3), dtype=np.uint8)

    png = png_bytes(image)
    compressed = png[png.index(b"IDAT") + 4: png.index(b"IEND") - 8]
    rows = np.frombuffer(zlib.decompress(compressed), dtype=np.uint8).reshape(3, 1 + 5 * 3)

    assert png.startswith(b"\x89PNG\r\n\x1a\n") and (rows[:, 0] == 0).all()
    assert np.array_equal(rows[:, 1:].reshape(3, 5, 3), image)


def test_a_file_that_is_not_audio_is_reported_undecodable():
    report = analyze_audio(b"not audio at all", b"k" * 32)

    assert report["decodable"] is False and report["error"]
