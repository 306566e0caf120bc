"""Audio and video containers through ffmpeg: probe a file, pull its sound out, put a new track in, change tempo.

Everything goes in and out as bytes and arrays; the temporary files ffmpeg needs (an MP4 is written with
seeks) stay inside each call. ``MediaEngine`` is the interface the dubbing stage uses, so a test or another
tool can stand in for ffmpeg.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from processors.audio.codec_quality import decode_audio, encode_wav, to_mono
from processors.constants import FFMPEG_TIMEOUT_S
from processors.errors import ExternalToolMissingError, ProcessorError

DUBBED_AUDIO_BITRATE = "160k"
MAX_MEDIA_DURATION_S = 3600.0
# atempo takes factors in [0.5, 2.0] per filter; dubbing asks for far less
ATEMPO_RANGE = (0.5, 2.0)
STDERR_LINES_KEPT = 3


class MediaError(ProcessorError):
    """ffmpeg could not read, convert or write the media (the message keeps its last words)."""


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    has_video: bool
    has_audio: bool


class MediaEngine(Protocol):
    def probe(self, data: bytes) -> MediaInfo: ...

    def audio_track(self, data: bytes, sample_rate_hz: int) -> np.ndarray: ...

    def with_audio_track(self, video: bytes, samples: np.ndarray, sample_rate_hz: int) -> bytes: ...

    def change_tempo(self, samples: np.ndarray, sample_rate_hz: int, tempo: float) -> np.ndarray: ...


class FfmpegMediaEngine:
    """``MediaEngine`` over the ffmpeg and ffprobe programs; ``ExternalToolMissingError`` when they are not on PATH."""

    def __init__(self, timeout_s: float = FFMPEG_TIMEOUT_S):
        self.timeout_s = timeout_s

    def probe(self, data: bytes) -> MediaInfo:
        """Duration and streams; ``MediaError`` for bytes that are no media or last over an hour."""
        with tempfile.TemporaryDirectory(prefix="voxflow-media-") as directory:
            source = _written(Path(directory) / "input", data)
            report = self._run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
                                "-of", "json", str(source)], "read the media")
        try:
            document = json.loads(report)
            kinds = {stream.get("codec_type") for stream in document.get("streams", [])}
            duration_s = float(document["format"]["duration"])
        except (ValueError, KeyError, TypeError) as error:
            raise MediaError("ffprobe found no duration: not a media file ffmpeg reads") from error
        if not 0 < duration_s <= MAX_MEDIA_DURATION_S:
            raise MediaError(f"the media lasts {duration_s:.1f} s; dubbing takes up to {MAX_MEDIA_DURATION_S:g} s")
        return MediaInfo(duration_s=duration_s, has_video="video" in kinds, has_audio="audio" in kinds)

    def audio_track(self, data: bytes, sample_rate_hz: int) -> np.ndarray:
        """The first audio stream as float32 mono ``[n]`` at ``sample_rate_hz``."""
        with tempfile.TemporaryDirectory(prefix="voxflow-media-") as directory:
            source = _written(Path(directory) / "input", data)
            wav = self._run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(source), "-map", "0:a:0", "-vn",
                             "-ac", "1", "-ar", str(sample_rate_hz), "-c:a", "pcm_f32le", "-f", "wav", "pipe:1"],
                            "extract the audio track")
        return to_mono(decode_audio(wav).samples)

    def with_audio_track(self, video: bytes, samples: np.ndarray, sample_rate_hz: int) -> bytes:
        """An MP4 of ``video``'s picture, copied as it is, with ``samples`` (mono ``[n]``) as its only sound (AAC)."""
        with tempfile.TemporaryDirectory(prefix="voxflow-media-") as directory:
            folder = Path(directory)
            source = _written(folder / "input", video)
            track = _written(folder / "track.wav", encode_wav(samples, sample_rate_hz))
            output = folder / "output.mp4"
            self._run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(source), "-i", str(track),
                       "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", DUBBED_AUDIO_BITRATE,
                       "-movflags", "+faststart", "-f", "mp4", str(output)], "mux the dubbed track into the video")
            return output.read_bytes()

    def change_tempo(self, samples: np.ndarray, sample_rate_hz: int, tempo: float) -> np.ndarray:
        """``samples`` played ``tempo`` times as fast at the same pitch (ffmpeg atempo): about ``n / tempo`` long."""
        if not ATEMPO_RANGE[0] <= tempo <= ATEMPO_RANGE[1]:
            raise MediaError(f"tempo {tempo:g} is outside atempo's {ATEMPO_RANGE[0]:g}-{ATEMPO_RANGE[1]:g}")
        with tempfile.TemporaryDirectory(prefix="voxflow-media-") as directory:
            source = _written(Path(directory) / "speech.wav", encode_wav(samples, sample_rate_hz))
            wav = self._run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(source), "-filter:a", f"atempo={tempo:.6f}",
                             "-c:a", "pcm_f32le", "-f", "wav", "pipe:1"], "change the tempo")
        return to_mono(decode_audio(wav).samples)

    def _run(self, command: list[str], purpose: str) -> bytes:
        if shutil.which(command[0]) is None:
            raise ExternalToolMissingError(f"dubbing needs {command[0]} on PATH (apt-get install -y ffmpeg)")
        try:
            completed = subprocess.run(command, capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as timeout:
            raise MediaError(f"{command[0]} did not {purpose} within {self.timeout_s:g} s") from timeout
        if completed.returncode != 0:
            detail = completed.stderr.decode(errors="replace").strip().splitlines()[-STDERR_LINES_KEPT:]
            raise MediaError(f"{command[0]} could not {purpose}: {' / '.join(detail) or 'no reason given'}")
        return completed.stdout


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
