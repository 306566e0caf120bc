"""Dubbing: a timed script (SRT, WebVTT or JSON segments) read into segments, each line's speech fitted to its
slot, and the lines mixed over the original sound (ducked under the speech, or replaced by silence).

Times are seconds from the start of the media; audio is float32 mono ``[n]``. A line too long for its slot is
sped up (pitch kept) to at most ``MAX_TEMPO``; what still does not fit is cut at the slot's end and reported.
Speech is never slowed down: a short line keeps its natural pace and is followed by the original sound.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from processors.audio.codec_quality import normalise_loudness, trim_silence
from processors.errors import ProcessorError

ScriptFormat = Literal["srt", "vtt", "json"]
BackgroundMode = Literal["duck", "replace"]

MAX_SEGMENTS = 500
MAX_SEGMENT_CHARACTERS = 1000
MIN_SLOT_S = 0.3
MAX_TEMPO = 1.35  # faster than this, dubbed speech stops sounding like the voice talking
DUCK_DB = 15.0  # the original sound under a dubbed line, this much quieter
DUCK_RAMP_MS = 80.0  # the duck fades in and out over this long either side of a line
CUT_FADE_MS = 20.0  # a line cut at its slot's end fades out over this long instead of clicking
SPEECH_TRIM_PADDING_MS = 10.0  # silence the engine leaves either side of a line is cut down to this
MIX_PEAK = 0.98

_TIMESTAMP = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})"
_TIMING_LINE = re.compile(rf"^\s*{_TIMESTAMP}\s*-->\s*{_TIMESTAMP}(?:\s+.*)?$")
_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")


class InvalidScriptError(ProcessorError):
    """The dubbing script cannot be used; the message names the line (or JSON segment) and what is wrong."""


@dataclass(frozen=True)
class ScriptSegment:
    """Line ``index`` (0-based) of the script: ``text`` spoken from ``start_s`` to ``end_s``; ``line`` is where it was
    written (the 1-based line of its timing in SRT/WebVTT; None in JSON, where segments go by number)."""

    index: int
    start_s: float
    end_s: float
    text: str
    language: str | None = None
    line: int | None = None

    @property
    def slot_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class FittedLine:
    """A line's speech ready to place: ``samples`` start at ``start_s`` and last at most its slot.

    ``tempo`` is the speed-up it got (1.0: as spoken); ``overflow_s`` how much speech was cut at the
    slot's end even at ``MAX_TEMPO`` (0.0 when it fitted)."""

    segment: ScriptSegment
    samples: np.ndarray
    tempo: float
    overflow_s: float

    def end_s(self, sample_rate_hz: int) -> float:
        return self.segment.start_s + self.samples.size / sample_rate_hz


def parse_script(text: str, script_format: ScriptFormat) -> list[ScriptSegment]:
    """The script's segments in order; ``InvalidScriptError`` naming the line of the first problem: unreadable
    timing, end not after start, a slot under ``MIN_SLOT_S``, empty text, overlapping lines, too many lines."""
    parsers = {"srt": _parse_cues, "vtt": _parse_webvtt, "json": _parse_json}
    if script_format not in parsers:
        raise InvalidScriptError(f"unknown script format {script_format!r}: use srt, vtt or json")
    segments = parsers[script_format](text.lstrip("\ufeff"))
    if not segments:
        raise InvalidScriptError("the script has no segments")
    if len(segments) > MAX_SEGMENTS:
        raise InvalidScriptError(f"the script has {len(segments)} segments; a dub takes up to {MAX_SEGMENTS}")
    for previous, segment in zip([None, *segments], segments):
        _check_segment(segment, previous)
    return segments


def check_within_media(segments: list[ScriptSegment], duration_s: float) -> None:
    """``InvalidScriptError`` for the first segment ending after the media does."""
    for segment in segments:
        if segment.end_s > duration_s:
            raise InvalidScriptError(f"{_where(segment)}: ends at {segment.end_s:.3f} s, after the media ends "
                                     f"at {duration_s:.3f} s")


def fit_line(segment: ScriptSegment, speech: np.ndarray, sample_rate_hz: int,
             change_tempo: Callable[[np.ndarray, int, float], np.ndarray]) -> FittedLine:
    """The line's speech, silence trimmed, sped up by what it needs to fit its slot (up to ``MAX_TEMPO``) and cut
    at the slot's end if it still runs over. ``change_tempo(samples, rate, tempo)`` keeps the pitch."""
    trimmed = trim_silence(speech, sample_rate_hz, SPEECH_TRIM_PADDING_MS)
    if trimmed.size == 0:
        raise InvalidScriptError(f"{_where(segment)}: the voice produced no audible speech for {segment.text[:80]!r}")
    slot_samples = int(round(segment.slot_s * sample_rate_hz))
    tempo = min(max(trimmed.size / slot_samples, 1.0), MAX_TEMPO)
    fitted = change_tempo(trimmed, sample_rate_hz, tempo) if tempo > 1.0 else trimmed
    # from the tempo asked, not the samples atempo gave: its few milliseconds of rounding are no overflow
    overflow_s = max(0.0, trimmed.size / tempo - slot_samples) / sample_rate_hz
    return FittedLine(segment, _cut(fitted, slot_samples, sample_rate_hz), round(tempo, 4), round(overflow_s, 3))


def mix_dub(original: np.ndarray, sample_rate_hz: int, lines: list[FittedLine], background: BackgroundMode,
            duck_db: float = DUCK_DB) -> np.ndarray:
    """One track as long as ``original``: each line at its segment's start (loudness-normalised) over the
    original ducked by ``duck_db`` under the lines ("duck"), or over silence ("replace")."""
    track = np.zeros(original.size, dtype=np.float64)
    if background == "duck":
        track += original * _duck_gain(original.size, sample_rate_hz, lines, duck_db)
    for line in lines:
        start = int(round(line.segment.start_s * sample_rate_hz))
        speech = normalise_loudness(line.samples)[: max(0, original.size - start)]
        track[start:start + speech.size] += speech
    peak = float(np.max(np.abs(track))) if track.size else 0.0
    if peak > MIX_PEAK:
        track *= MIX_PEAK / peak
    return track.astype(np.float32)


def _duck_gain(length: int, sample_rate_hz: int, lines: list[FittedLine], duck_db: float) -> np.ndarray:
    """1 away from the lines, ``-duck_db`` under each, with ``DUCK_RAMP_MS`` linear ramps outside it."""
    under = np.zeros(length, dtype=np.float64)
    ramp = max(1, int(DUCK_RAMP_MS * sample_rate_hz / 1000))
    for line in lines:
        start = int(round(line.segment.start_s * sample_rate_hz))
        stop = min(length, start + line.samples.size)
        under[start:stop] = 1.0
        lead = np.arange(max(0, start - ramp), start)
        under[lead] = np.maximum(under[lead], 1.0 - (start - lead) / ramp)
        tail = np.arange(stop, min(length, stop + ramp))
        under[tail] = np.maximum(under[tail], 1.0 - (tail - stop + 1) / ramp)
    return 1.0 - under * (1.0 - 10 ** (-duck_db / 20))


def _cut(samples: np.ndarray, length: int, sample_rate_hz: int) -> np.ndarray:
    if samples.size <= length:
        return samples
    cut = samples[:length].copy()
    fade = min(length, int(CUT_FADE_MS * sample_rate_hz / 1000))
    cut[length - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return cut


def _check_segment(segment: ScriptSegment, previous: ScriptSegment | None) -> None:
    where = _where(segment)
    if segment.start_s < 0:
        raise InvalidScriptError(f"{where}: starts before 0 s")
    if segment.end_s <= segment.start_s:
        raise InvalidScriptError(f"{where}: ends at {segment.end_s:.3f} s, not after its start at "
                                 f"{segment.start_s:.3f} s")
    if segment.slot_s < MIN_SLOT_S:
        raise InvalidScriptError(f"{where}: its slot of {segment.slot_s:.3f} s is under {MIN_SLOT_S:g} s")
    if not segment.text:
        raise InvalidScriptError(f"{where}: has no text to speak")
    if len(segment.text) > MAX_SEGMENT_CHARACTERS:
        raise InvalidScriptError(f"{where}: {len(segment.text)} characters; a line takes up to "
                                 f"{MAX_SEGMENT_CHARACTERS}")
    if previous is not None and segment.start_s < previous.end_s:
        raise InvalidScriptError(f"{where}: starts at {segment.start_s:.3f} s, before the previous segment "
                                 f"({_where(previous)}) ends at {previous.end_s:.3f} s: segments overlap or are "
                                 "out of order")


def _where(segment: ScriptSegment) -> str:
    return f"segment {segment.index + 1}" + (f" (line {segment.line})" if segment.line else "")


def _parse_webvtt(text: str) -> list[ScriptSegment]:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("WEBVTT"):
        raise InvalidScriptError("line 1: a WebVTT script starts with 'WEBVTT'")
    return _parse_cues(text, first_line=1, skipped_blocks=("NOTE", "STYLE", "REGION"))


def _parse_cues(text: str, first_line: int = 0, skipped_blocks: tuple[str, ...] = ()) -> list[ScriptSegment]:
    """SRT and WebVTT cues: blocks split by blank lines, each an optional id, a timing line and text lines."""
    segments: list[ScriptSegment] = []
    for block_start, block in _blocks(text.splitlines()[first_line:], first_line):
        if block[0].startswith(skipped_blocks):
            continue
        timing_at = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
        if timing_at is None:
            raise InvalidScriptError(f"line {block_start + 1}: expected a timing line "
                                     "'HH:MM:SS,mmm --> HH:MM:SS,mmm'")
        line_number = block_start + timing_at + 1
        start_s, end_s = _timing(block[timing_at], line_number)
        spoken = " ".join(_MARKUP.sub("", line).strip() for line in block[timing_at + 1:]).strip()
        segments.append(ScriptSegment(len(segments), start_s, end_s, " ".join(spoken.split()), line=line_number))
    return segments


def _blocks(lines: list[str], offset: int):
    """(0-based line index of its first line, its lines) for each run of non-blank lines."""
    block: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=offset):
        if line.strip():
            if not block:
                start = number
            block.append(line.rstrip())
        elif block:
            yield start, block
            block = []
    if block:
        yield start, block


def _timing(line: str, line_number: int) -> tuple[float, float]:
    match = _TIMING_LINE.match(line)
    if match is None:
        raise InvalidScriptError(f"line {line_number}: cannot read the timing {line.strip()[:80]!r} "
                                 "(expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm')")
    groups = match.groups()
    return _seconds(groups[:4], line_number), _seconds(groups[4:], line_number)


def _seconds(parts, line_number: int) -> float:
    hours, minutes, seconds, millis = (int(part or 0) for part in parts)
    if minutes >= 60 or seconds >= 60:
        raise InvalidScriptError(f"line {line_number}: minutes and seconds run from 00 to 59")
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _parse_json(text: str) -> list[ScriptSegment]:
    """``[{"start": s, "end": s, "text": str, "language"?: str}, …]`` or ``{"segments": [...]}``."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidScriptError(f"line {error.lineno}: not valid JSON ({error.msg})") from error
    items = document.get("segments") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise InvalidScriptError("a JSON script is a list of segments, or an object with a 'segments' list")
    return [_json_segment(item, index) for index, item in enumerate(items)]


def _json_segment(item, index: int) -> ScriptSegment:
    where = f"segment {index + 1}"
    if not isinstance(item, dict):
        raise InvalidScriptError(f"{where}: expected an object with start, end and text")
    start, end, text, language = (item.get(name) for name in ("start", "end", "text", "language"))
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (start, end)):
        raise InvalidScriptError(f"{where}: start and end must be numbers of seconds")
    if not isinstance(text, str):
        raise InvalidScriptError(f"{where}: text must be a string")
    if language is not None and not (isinstance(language, str) and 2 <= len(language) <= 16):
        raise InvalidScriptError(f"{where}: language must be a language code such as 'en'")
    return ScriptSegment(index, float(start), float(end), " ".join(text.split()), language)
