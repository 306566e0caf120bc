# SPDX-License-Identifier: GPL-3.0-or-later
"""A long-running espeak-ng speaker: one JSON request per stdin line, 16-bit PCM back on stdout.

This file is GPL-3.0-or-later, unlike the rest of voxflow (Apache-2.0), because it loads
libespeak-ng (GPL-3.0). It runs as its own process and voxflow talks to it only through pipes,
as it would to the ``espeak-ng`` command. It stays running so that each utterance no longer pays
the command's start-up (loading 35 shared libraries and the phoneme data: ~16 ms of the ~21 ms a
short sentence took). Each request is spoken by a fresh fork of the initialised program: espeak-ng
keeps state between utterances (its output drifts by a few samples), and a fork starts every
utterance from the same state, so the same request always gives the same samples, and a crash
inside the library costs one request, not the program. It imports nothing from voxflow and
nothing outside the standard library.

Usage: ``python espeak_program.py LIBRARY`` (``LIBRARY`` is libespeak-ng's file name or path).
On start it writes ``{"sample_rate_hz": int}`` (or ``{"error": str}`` and exits) as one JSON line.
Request:  ``{"text": str, "voice": str, "words_per_minute": int}`` and a newline.
Response: a JSON line ``{"sample_rate_hz": int, "samples": n}`` followed by ``2 * n`` bytes of
little-endian int16 samples, or ``{"error": str}`` alone. The samples equal ``espeak-ng --stdout``'s.
"""

import ctypes
import json
import os
import sys

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE_PARAMETER = 1
POSITION_IN_CHARACTERS = 1
# the flags the espeak-ng command speaks with: UTF-8 text, [[phoneme]] input, a pause at the end
SYNTH_FLAGS = 0x1 | 0x100 | 0x1000
SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Speaker:
    """libespeak-ng, initialised once, speaking whole utterances synchronously into memory."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._library = library
        self.sample_rate_hz = library.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if self.sample_rate_hz <= 0:
            raise RuntimeError("espeak-ng could not start (is espeak-ng-data installed?)")
        self._pieces: list[bytes] = []
        self._callback = SYNTH_CALLBACK(self._collect)  # kept referenced: the library calls it later
        library.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._pieces.append(ctypes.string_at(samples, count * 2))
        return 0

    def speak(self, text: str, voice: str, words_per_minute: int) -> bytes:
        if self._library.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self._library.espeak_SetParameter(ESPEAK_RATE_PARAMETER, int(words_per_minute), 0)
        encoded = text.encode("utf-8")
        self._pieces.clear()
        status = self._library.espeak_Synth(
            encoded, len(encoded) + 1, 0, POSITION_IN_CHARACTERS, 0, SYNTH_FLAGS, None, None
        )
        if status != 0:
            raise RuntimeError(f"espeak-ng failed with status {status}")
        return b"".join(self._pieces)


def serve(speaker: Speaker, requests, replies) -> None:
    for line in requests:
        child = os.fork()
        if child == 0:
            exit_status = 1
            try:
                replies.write(reply_to(speaker, line))
                replies.flush()
                exit_status = 0
            finally:
                os._exit(exit_status)  # never back into the loop: only the parent serves
        _, status = os.waitpid(child, 0)
        if status != 0:  # the child died before replying: its reply is all or nothing
            replies.write(json.dumps({"error": f"espeak-ng crashed (wait status {status})"}).encode() + b"\n")
            replies.flush()


def reply_to(speaker: Speaker, line: bytes) -> bytes:
    try:
        request = json.loads(line)
        pcm = speaker.speak(request["text"], request["voice"], request["words_per_minute"])
        header = {"sample_rate_hz": speaker.sample_rate_hz, "samples": len(pcm) // 2}
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        pcm, header = b"", {"error": str(error)}
    return json.dumps(header).encode() + b"\n" + pcm


def main(library_path: str) -> int:
    replies = sys.stdout.buffer
    try:
        speaker = Speaker(ctypes.CDLL(library_path))
    except (OSError, RuntimeError) as error:
        replies.write(json.dumps({"error": f"espeak-ng library unavailable: {error}"}).encode() + b"\n")
        return 1
    replies.write(json.dumps({"sample_rate_hz": speaker.sample_rate_hz}).encode() + b"\n")
    replies.flush()
    serve(speaker, sys.stdin.buffer, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
