"""Dubbing's pure parts: reading timed scripts, fitting each line into its slot, mixing, and ffmpeg's containers."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from processors.audio.codec_quality import encode_wav, resample
from processors.audio.media import FfmpegMediaEngine, MediaError
from processors.synthesis.dubbing import (MAX_SEGMENTS, MAX_TEMPO, FittedLine, InvalidScriptError, ScriptSegment,
                                          check_within_media, fit_line, mix_dub, parse_script)

RATE_HZ = 24_000
TOLERANCE_S = 0.05

SRT = """1
00:00:00,500 --> 00:00:02,000
Good <i>morning</i>.

2
00:00:02,500 --> 00:00:04,250
The news of the week
comes next.
"""
WEBVTT = """WEBVTT

NOTE a translator's remark

intro
00:01.000 --> 00:02.500 align:start position:10%
Good morning.

00:00:03.000 --> 00:00:04.000
Bye.
"""


def test_srt_cues_become_timed_segments_without_markup():
    segments = parse_script(SRT, "srt")

    assert [(s.start_s, s.end_s, s.text) for s in segments] == [
        (0.5, 2.0, "Good morning."), (2.5, 4.25, "The news of the week comes next.")]
    assert [s.line for s in segments] == [2, 6]


def test_webvtt_cues_with_ids_settings_and_notes_are_read():
    segments = parse_script(WEBVTT, "vtt")

    assert [(s.start_s, s.end_s, s.text) for s in segments] == [(1.0, 2.5, "Good morning."), (3.0, 4.0, "Bye.")]


def test_json_segments_may_name_their_language():
    script = json.dumps({"segments": [{"start": 0, "end": 1.5, "text": "Hola.", "language": "es"},
                                      {"start": 2, "end": 3, "text": "Hello."}]})

    segments = parse_script(script, "json")

    assert [(s.start_s, s.end_s, s.text, s.language) for s in segments] == [
        (0.0, 1.5, "Hola.", "es"), (2.0, 3.0, "Hello.", None)]


@pytest.mark.parametrize("script, script_format, words", [
    ("1\n00:00:02,000 --> 00:00:01,000\nBackwards.\n", "srt", "segment 1 (line 2): ends at 1.000 s, not after"),
    ("1\n00:00:00,000 --> 00:00:02,000\nOne.\n\n2\n00:00:01,500 --> 00:00:03,000\nTwo.\n", "srt",
     "segment 2 (line 6): starts at 1.500 s, before the previous segment"),
    ("1\n00:00:00,000 --> 00:00:02,000\n<i></i>\n", "srt", "segment 1 (line 2): has no text"),
    ("1\n00:00:00,000 -> 00:00:02,000\nArrow.\n", "srt", "line 1: expected a timing line"),
    ("1\n00:00:00,000 --> 00:00:0x,000\nTypo.\n", "srt", "line 2: cannot read the timing"),
    ("00:00.000 --> 00:01.000\nNo header.\n", "vtt", "line 1: a WebVTT script starts with 'WEBVTT'"),
    ('[{"start": 0, "end": 1, "text": "a"},\n {"start": 1, "end": "2"}]', "json",
     "segment 2: start and end must be numbers"),
    ('[{"start": 0,\n "end": 1,,}]', "json", "line 2: not valid JSON"),
    ("", "srt", "the script has no segments"),
])
def test_bad_scripts_are_refused_naming_the_line(script, script_format, words):
    with pytest.raises(InvalidScriptError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_script(script, script_format)


def test_a_script_of_too_many_lines_is_refused():
    script = json.dumps([{"start": i, "end": i + 0.5, "text": "Hi."} for i in range(MAX_SEGMENTS + 1)])

    with pytest.raises(InvalidScriptError, match=f"{MAX_SEGMENTS + 1} segments"):
        parse_script(script, "json")


def test_a_line_ending_after_the_media_is_refused():
    segments = parse_script(SRT, "srt")

    with pytest.raises(InvalidScriptError, match="segment 2 .* after the media ends at 4.000 s"):
        check_within_media(segments, 4.0)


@pytest.fixture(scope="module")
def media_engine():
    return FfmpegMediaEngine()


@pytest.fixture(scope="module")
def speech_3s(english_reference_speech) -> np.ndarray:
    samples, rate_hz = english_reference_speech
    return resample(samples[: 3 * rate_hz], rate_hz, RATE_HZ)


def _speech_span_s(samples: np.ndarray, rate_hz: int) -> tuple[float, float]:
    """First and last 10 ms frame more than 30 dB above the quietest: where a placed line starts and stops."""
    frame = rate_hz // 100
    levels = 10 * np.log10(np.mean(samples[: samples.size // frame * frame].reshape(-1, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(levels > levels.min() + 30)
    return loud[0] * frame / rate_hz, (loud[-1] + 1) * frame / rate_hz


@pytest.mark.parametrize("slot_s", [3.5, 2.6, 1.2])
def test_every_line_is_spoken_inside_its_slot(media_engine, speech_3s, slot_s):
    segment = ScriptSegment(0, 1.0, 1.0 + slot_s, "a line")
    original = np.zeros(int(6 * RATE_HZ), dtype=np.float32)

    line = fit_line(segment, speech_3s, RATE_HZ, media_engine.change_tempo)
    start_s, end_s = _speech_span_s(mix_dub(original, RATE_HZ, [line], "replace"), RATE_HZ)

    assert abs(start_s - segment.start_s) <= TOLERANCE_S
    assert end_s <= segment.end_s + TOLERANCE_S
    assert 1.0 <= line.tempo <= MAX_TEMPO


def test_a_line_that_fits_keeps_its_pace_and_a_long_one_is_sped_up(media_engine, speech_3s):
    roomy = fit_line(ScriptSegment(0, 0.0, 4.0, "a"), speech_3s, RATE_HZ, media_engine.change_tempo)
    tight = fit_line(ScriptSegment(0, 0.0, 2.6, "a"), speech_3s, RATE_HZ, media_engine.change_tempo)

    assert (roomy.tempo, roomy.overflow_s) == (1.0, 0.0)
    assert 1.0 < tight.tempo < MAX_TEMPO and tight.overflow_s == 0.0
    assert abs(tight.samples.size / RATE_HZ - 2.6) <= TOLERANCE_S


def test_a_line_too_long_even_at_the_fastest_tempo_is_cut_and_the_overflow_reported(media_engine, speech_3s):
    line = fit_line(ScriptSegment(0, 0.0, 1.2, "a"), speech_3s, RATE_HZ, media_engine.change_tempo)

    assert line.tempo == MAX_TEMPO
    assert line.samples.size / RATE_HZ <= 1.2
    assert line.overflow_s > 0.5


def _level(samples: np.ndarray, start_s: float, end_s: float) -> float:
    return float(np.sqrt(np.mean(samples[int(start_s * RATE_HZ):int(end_s * RATE_HZ)] ** 2)))


def test_ducking_lowers_the_original_under_a_line_and_replace_silences_it():
    original = (0.1 * np.sin(2 * np.pi * 220 * np.arange(8 * RATE_HZ) / RATE_HZ)).astype(np.float32)
    # a silent line from 2 s to 5 s: what is left of the mix is the background
    line = FittedLine(ScriptSegment(0, 2.0, 6.0, "a"), np.zeros(3 * RATE_HZ, dtype=np.float32), 1.0, 0.0)

    ducked = mix_dub(original, RATE_HZ, [line], "duck", duck_db=20)
    replaced = mix_dub(original, RATE_HZ, [line], "replace")

    assert _level(ducked, 0.0, 1.5) == pytest.approx(_level(original, 0.0, 1.5), rel=0.01)
    assert _level(ducked, 2.5, 4.5) == pytest.approx(_level(original, 2.5, 4.5) / 10, rel=0.05)
    assert _level(ducked, 5.5, 8.0) == pytest.approx(_level(original, 5.5, 8.0), rel=0.01)
    assert _level(replaced, 0.0, 8.0) == 0.0


def _test_video(path, seconds: float, speech: np.ndarray) -> bytes:
    track = path.with_suffix(".wav")
    track.write_bytes(encode_wav(speech, RATE_HZ))
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:d={seconds}",
                    "-i", str(track), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
                   check=True)
    return path.read_bytes()


def test_a_new_track_goes_into_the_video_whose_picture_is_copied(tmp_path, media_engine, speech_3s):
    video = _test_video(tmp_path / "clip.mp4", 3, speech_3s)
    replacement = np.zeros(3 * RATE_HZ, dtype=np.float32)
    replacement[RATE_HZ:2 * RATE_HZ] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE_HZ) / RATE_HZ)

    info = media_engine.probe(video)
    dubbed = media_engine.with_audio_track(video, replacement, RATE_HZ)
    dubbed_info = media_engine.probe(dubbed)
    track = media_engine.audio_track(dubbed, RATE_HZ)

    assert info.has_video and info.has_audio and info.duration_s == pytest.approx(3.0, abs=0.1)
    assert dubbed_info.has_video and dubbed_info.duration_s == pytest.approx(3.0, abs=0.1)
    start_s, end_s = _speech_span_s(track, RATE_HZ)
    assert abs(start_s - 1.0) <= TOLERANCE_S and abs(end_s - 2.0) <= TOLERANCE_S


def test_bytes_that_are_no_media_are_refused_with_ffmpegs_reason(media_engine):
    with pytest.raises(MediaError, match="ffprobe could not read the media"):
        media_engine.probe(b"not a video at all")
