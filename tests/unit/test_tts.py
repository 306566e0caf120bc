"""espeak-ng as a long-running program: the same speech as the espeak-ng command, and it recovers."""

import io
import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from processors.constants import PIPER_SPREAD_RATIO_BOUNDS, UNBOUNDED_SPREAD_RATIO
from processors.errors import SynthesisError
from processors.synthesis.base_voices import EspeakTTS, LanguageRoutedTTS

SENTENCE = "The birch canoe slid on the smooth planks."


def espeak_command_speech(text: str, voice: str, words_per_minute: int) -> np.ndarray:
    command = ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-b", "1", "--stdout"]
    completed = subprocess.run(command, input=text.encode(), capture_output=True, check=True)
    samples, _ = sf.read(io.BytesIO(completed.stdout), dtype="float32")
    return samples


def espeak_programs_of_this_process() -> set[int]:
    """PIDs of the espeak programs this test process started."""
    programs = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and b"espeak_program.py" in command:
            programs.add(int(entry.name))
    return programs


@pytest.mark.parametrize(
    ("text", "language", "gender", "voice"),
    [(SENTENCE, "en", "female", "en-us+f3"), ("നമസ്കാരം, സുഖമാണോ?", "ml", "male", "ml")],
)
def test_speech_equals_the_espeak_ng_commands(text, language, gender, voice):
    samples, sample_rate_hz = EspeakTTS().synthesize(text, language, 170, gender)

    assert sample_rate_hz == 22050
    np.testing.assert_array_equal(samples, espeak_command_speech(text, voice, 170))


def test_the_same_request_gives_the_same_samples(espeak_tts):
    first, _ = espeak_tts.synthesize(SENTENCE, "en", 160)
    espeak_tts.synthesize("Something else in between.", "en", 220, "female")
    again, _ = espeak_tts.synthesize(SENTENCE, "en", 160)

    np.testing.assert_array_equal(first, again)


def test_threads_speaking_at_once_each_get_their_own_speech(espeak_tts):
    texts = [f"Sentence number {number} is spoken now." for number in range(6)]
    alone = {text: espeak_tts.synthesize(text, "en", 160)[0] for text in texts}
    together: dict[str, np.ndarray] = {}

    def speak(text: str) -> None:
        together[text] = espeak_tts.synthesize(text, "en", 160)[0]

    threads = [threading.Thread(target=speak, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for text in texts:
        np.testing.assert_array_equal(together[text], alone[text])


def started_program(tts: EspeakTTS) -> int:
    """Speak once with ``tts`` and return the PID of the program that started for it."""
    running = espeak_programs_of_this_process()
    tts.synthesize(SENTENCE, "en", 160)
    (program,) = espeak_programs_of_this_process() - running
    return program


def test_a_program_that_died_between_requests_is_replaced_unnoticed():
    tts = EspeakTTS()
    program = started_program(tts)
    before, _ = tts.synthesize(SENTENCE, "en", 160)
    os.kill(program, signal.SIGKILL)
    os.waitid(os.P_PID, program, os.WEXITED | os.WNOWAIT)  # dead, left for the TTS to notice

    after, _ = tts.synthesize(SENTENCE, "en", 160)

    np.testing.assert_array_equal(after, before)
    assert program not in espeak_programs_of_this_process()


def test_a_hung_program_is_a_named_error_not_a_hung_worker():
    tts = EspeakTTS(timeout_s=1.0)
    program = started_program(tts)
    os.kill(program, signal.SIGSTOP)

    with pytest.raises(SynthesisError, match="did not finish within 1.0 s"):
        tts.synthesize(SENTENCE, "en", 160)
    samples, _ = tts.synthesize(SENTENCE, "en", 160)

    assert samples.size > 0
    assert program not in espeak_programs_of_this_process()


class NaturalEnglishVoice:
    """Stands in for a Piper voice (an optional extra) in routing tests."""

    def supported_languages(self) -> frozenset[str]:
        return frozenset({"en"})

    def spread_ratio_bounds(self, language: str) -> tuple[float, float]:
        return PIPER_SPREAD_RATIO_BOUNDS


def test_each_language_is_converted_with_the_bounds_of_the_voice_that_speaks_it(espeak_tts):
    routed = LanguageRoutedTTS(espeak_tts, {"en": NaturalEnglishVoice()})

    assert routed.spread_ratio_bounds("en") == PIPER_SPREAD_RATIO_BOUNDS
    assert routed.spread_ratio_bounds("ml") == UNBOUNDED_SPREAD_RATIO
