"""The real speakers the cloning benchmark clones, each with a reference source and held-out speech.

- ``original_speakers``: Asterisk's US-English "Allison" and Fish Fillets' two Czech actors, from
  ``infra.speech_assets`` (the espeak-ng and Piper runs use these three).
- ``SPEAKER_SOURCES`` adds every other real voice the project can fetch offline: the French, Italian
  and Russian Asterisk voices (Debian ``asterisk-core-sounds-{fr,it,ru}-g722``, CC-BY-SA-3.0, one
  speaker each) and pyannote's two phone-call speakers (``pyannote/audio/sample/sample.wav`` and its
  RTTM, from the ``pyannote-audio==4.0.7`` wheel, MIT; about 10 s of speech each, so 5 s references only).

Downloads go with ``apt-get download`` / ``pip download --no-deps`` (nothing is installed) into
``infra.speech_assets.speech_cache_dir()``. A source that cannot be had raises ``SpeechAssetError``.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from infra.speech_assets import (
    SpeechAssetError,
    decode_g722,
    download_debian_package,
    run_command,
    czech_actor_utterance,
    heldout_utterance,
    reference_utterance,
    speech_cache_dir,
)

SAMPLE_RATE_HZ = 16000
HELDOUT_S = 12.0
CZECH_HELDOUT_OFFSET_CLIPS = 150  # far past the clips the 30 s reference uses
CLIP_GAP_S = 0.15  # silence between joined prompts or turns

ASTERISK_LANGUAGES = ("fr", "it", "ru")
ASTERISK_SOUNDS_DIR = "usr/share/asterisk/sounds"  # holds one <lang>_<REGION>_<f|m>_<Name> folder
G722_BYTES_PER_S = 8000
ASTERISK_PROMPT_S = (1.5, 12.0)  # prompts outside this range are skipped
ASTERISK_MAX_PROMPTS = 150

PYANNOTE_REQUIREMENT = "pyannote-audio==4.0.7"
PYANNOTE_MEMBERS = ("pyannote/audio/sample/sample.wav", "pyannote/audio/sample/sample.rttm")
PYANNOTE_SPEAKERS = {"speaker90": "diane_en_f", "speaker91": "sheila_en_f"}  # names and voices per sample.stm
PYANNOTE_REFERENCE_S = 5.0
MIN_TURN_S = 0.3  # shorter single-speaker stretches are left out


@dataclass(frozen=True)
class Speaker:
    """A real voice: ``reference(seconds)`` and ``heldout`` are float32 mono at 16 kHz and never overlap."""

    name: str
    reference: Callable[[float], np.ndarray]
    heldout: np.ndarray
    max_reference_s: float = math.inf


def original_speakers() -> list[Speaker]:
    """Allison (US English) and the two Fish Fillets actors (Czech)."""
    return [allison(), *fillets_actors()]


def allison() -> Speaker:
    return Speaker("allison_en_f", lambda seconds: reference_utterance(seconds)[0], heldout_utterance(HELDOUT_S)[0])


def fillets_actors() -> list[Speaker]:
    return [
        Speaker(
            f"{actor}_cs_{sex}",
            lambda seconds, actor=actor: czech_actor_utterance(actor, seconds)[0],
            czech_actor_utterance(actor, HELDOUT_S, offset=CZECH_HELDOUT_OFFSET_CLIPS)[0],
        )
        for actor, sex in (("small_fish", "f"), ("big_fish", "m"))
    ]


def asterisk_speaker(language: str) -> Speaker:
    """The one voice of ``asterisk-core-sounds-<language>-g722``: even prompts for references, odd ones held out."""
    name, prompts = asterisk_prompts(language)
    clips = [read_clip(path) for path in prompts]
    reference_clips, heldout_clips = clips[0::2], clips[1::2]
    return Speaker(name, lambda seconds: _joined(reference_clips, seconds), _joined(heldout_clips, HELDOUT_S))


def pyannote_speakers() -> list[Speaker]:
    """pyannote's two phone-call speakers: each one's first 5 s of single-speaker turns as reference, the rest held out."""
    samples, turns = _pyannote_sample()
    speakers = []
    for label, name in PYANNOTE_SPEAKERS.items():
        speech = _joined([samples[stretch] for stretch in _solo_stretches(turns, label, samples.size)], math.inf)
        reference, heldout = np.split(speech, [int(PYANNOTE_REFERENCE_S * SAMPLE_RATE_HZ)])
        speakers.append(Speaker(name, lambda seconds, reference=reference: reference[: int(seconds * SAMPLE_RATE_HZ)],
                                heldout, max_reference_s=PYANNOTE_REFERENCE_S))
    return speakers


SPEAKER_SOURCES: tuple[tuple[str, Callable[[], list[Speaker]]], ...] = (
    ("Asterisk en (Allison)", lambda: [allison()]),
    ("Fish Fillets cs", fillets_actors),
    *((f"Asterisk {language}", lambda language=language: [asterisk_speaker(language)]) for language in ASTERISK_LANGUAGES),
    (f"pyannote sample ({PYANNOTE_REQUIREMENT})", pyannote_speakers),
)


def _joined(clips: list[np.ndarray], seconds: float) -> np.ndarray:
    """Clips in order with short gaps, cut at ``seconds`` (all of them for ``inf``); never loops back."""
    gap = np.zeros(int(CLIP_GAP_S * SAMPLE_RATE_HZ), dtype=np.float32)
    joined = np.concatenate([piece for clip in clips for piece in (clip, gap)])
    if math.isfinite(seconds):
        wanted = int(round(seconds * SAMPLE_RATE_HZ))
        if joined.size < wanted:
            raise SpeechAssetError(f"{joined.size / SAMPLE_RATE_HZ:.1f} s of speech, {seconds} s wanted")
        return joined[:wanted]
    return joined


def read_clip(path: Path) -> np.ndarray:
    samples, rate_hz = sf.read(str(path), dtype="float32")
    if rate_hz != SAMPLE_RATE_HZ or samples.ndim != 1:
        raise SpeechAssetError(f"{path.name}: expected 16 kHz mono, got {rate_hz} Hz, shape {samples.shape}")
    return samples


def asterisk_prompts(language: str) -> tuple[str, list[Path]]:
    """The speaker's name (``june_fr_f``) and its decoded prompts, 16 kHz mono WAV, sorted by file name."""
    cache = speech_cache_dir() / f"asterisk-{language}"
    if not (cache / ".complete").exists():
        with tempfile.TemporaryDirectory() as staging:
            unpacked = download_debian_package(f"asterisk-core-sounds-{language}-g722", Path(staging))
            folders = sorted(path for path in (unpacked / ASTERISK_SOUNDS_DIR).glob(f"{language}_*") if path.is_dir())
            if len(folders) != 1:
                raise SpeechAssetError(f"asterisk-core-sounds-{language}-g722 has {len(folders)} speaker folders, not 1")
            partial = Path(staging) / "prompts"
            (partial / folders[0].name).mkdir(parents=True)
            decode_g722(_useful_prompts(folders[0]), partial / folders[0].name)
            (partial / ".complete").touch()
            shutil.rmtree(cache, ignore_errors=True)
            cache.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(partial), cache)
    (folder,) = [path for path in cache.iterdir() if path.is_dir()]
    language_code, _region, sex, voice = folder.name.split("_", 3)
    return f"{voice.lower().removesuffix(language_code)}_{language_code}_{sex}", sorted(folder.glob("*.wav"))


def _useful_prompts(folder: Path) -> list[Path]:
    """Prompts of a useful length, spread evenly over the alphabet, at most ``ASTERISK_MAX_PROMPTS``."""
    low, high = (seconds * G722_BYTES_PER_S for seconds in ASTERISK_PROMPT_S)
    eligible = [path for path in sorted(folder.glob("*.g722")) if low <= path.stat().st_size <= high]
    stride = max(1.0, len(eligible) / ASTERISK_MAX_PROMPTS)
    return [eligible[int(index * stride)] for index in range(min(len(eligible), ASTERISK_MAX_PROMPTS))]


def _pyannote_sample() -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """The sample's 16 kHz speech and its RTTM turns ``(speaker, start_s, end_s)``."""
    cache = speech_cache_dir() / "pyannote-sample"
    if not (cache / ".complete").exists():
        _fetch_pyannote_sample(cache)
    samples = read_clip(cache / "sample.wav")
    turns = []
    for line in (cache / "sample.rttm").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.append((fields[7], start, start + duration))
    return samples, turns


def _fetch_pyannote_sample(cache: Path) -> None:
    with tempfile.TemporaryDirectory() as staging:
        run_command([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
              "--disable-pip-version-check", PYANNOTE_REQUIREMENT, "-d", staging], Path(staging))
        wheels = sorted(Path(staging).glob("pyannote_audio-*.whl"))
        if not wheels:
            raise SpeechAssetError(f"pip download {PYANNOTE_REQUIREMENT} produced no wheel")
        partial = Path(staging) / "sample"
        partial.mkdir()
        try:
            with zipfile.ZipFile(wheels[-1]) as archive:
                for member in PYANNOTE_MEMBERS:
                    (partial / Path(member).name).write_bytes(archive.read(member))
        except (zipfile.BadZipFile, KeyError) as error:
            raise SpeechAssetError(f"the {PYANNOTE_REQUIREMENT} wheel lacks its sample: {error}") from error
        (partial / ".complete").touch()
        shutil.rmtree(cache, ignore_errors=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(partial), cache)


def _solo_stretches(turns: list[tuple[str, float, float]], speaker: str, length: int) -> list[slice]:
    """Sample ranges where ``speaker`` talks and nobody else does, at least ``MIN_TURN_S`` long."""
    mine, others = np.zeros(length, dtype=bool), np.zeros(length, dtype=bool)
    for label, start_s, end_s in turns:
        (mine if label == speaker else others)[int(start_s * SAMPLE_RATE_HZ) : int(end_s * SAMPLE_RATE_HZ)] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mine & ~others, [0]]).astype(np.int8)))
    return [slice(start, end) for start, end in zip(edges[0::2], edges[1::2]) if end - start >= MIN_TURN_S * SAMPLE_RATE_HZ]


