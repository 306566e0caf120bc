"""Real human speech for tests, benchmarks and the demo, fetched from Debian on first use.

Two sources, both downloaded with ``apt-get download`` (never installed) into a cache directory
(``~/.cache/voxflow/speech`` unless ``VOXFLOW_SPEECH_CACHE`` says otherwise):

- ``asterisk-core-sounds-en-g722`` (CC-BY-SA-3.0): one studio voice, US English, female
  ("Allison"). A bounded set of prompts is decoded once from G.722 to 16 kHz mono WAV and split
  into a reference set and a disjoint held-out set.
- ``fillets-ng-data-cs`` (GPL-2): two Czech actors ("small fish", female; "big fish", male),
  22.05 kHz Ogg Vorbis clips, read as they are. Fetched only when a caller asks for them.

Concurrent first uses (parallel test workers) are serialised by a lock file in the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from infra.cache import cache_lock

SPEECH_CACHE_ENV = "VOXFLOW_SPEECH_CACHE"
DEFAULT_SPEECH_CACHE = Path("~/.cache/voxflow/speech")

ASTERISK_PACKAGE = "asterisk-core-sounds-en-g722"
ASTERISK_SPEAKER_DIR = "usr/share/asterisk/sounds/en_US_f_Allison"
ASTERISK_SAMPLE_RATE_HZ = 16000
G722_BYTES_PER_S = 8000  # 64 kbit/s, so a prompt's duration is known before decoding it
ASTERISK_MIN_PROMPT_S = 1.5
ASTERISK_MAX_PROMPT_S = 12.0
ASTERISK_MAX_PROMPTS = 150

FILLETS_PACKAGE = "fillets-ng-data-cs"
FILLETS_SOUND_DIR = "usr/share/games/fillets-ng/sound"
FILLETS_ACTOR_INFIXES = {"small_fish": "-m-", "big_fish": "-v-"}

UTTERANCE_SAMPLE_RATE_HZ = 16000
PROMPT_GAP_S = 0.15
MIN_UTTERANCE_PROMPT_S = 1.0
COMMAND_TIMEOUT_S = 300


class SpeechAssetError(RuntimeError):
    """Real speech could not be fetched, unpacked or decoded (missing tool, no network, bad package)."""


def speech_cache_dir() -> Path:
    """The cache root: ``$VOXFLOW_SPEECH_CACHE`` or ``~/.cache/voxflow/speech``."""
    configured = os.environ.get(SPEECH_CACHE_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_SPEECH_CACHE.expanduser()


def english_prompts(min_duration_s: float = 0.0) -> list[Path]:
    """Decoded Asterisk prompts (16 kHz mono PCM16 WAV), sorted by name, at least ``min_duration_s`` long."""
    prompt_dir = _ensure_asterisk_prompts()
    return [path for path in sorted(prompt_dir.glob("*.wav")) if sf.info(str(path)).duration >= min_duration_s]


def reference_utterance(seconds: float, offset: int = 0) -> tuple[np.ndarray, int]:
    """``seconds`` of the English voice built from the reference prompts, starting at prompt ``offset``.

    Returns float32 mono samples at 16 kHz and the sample rate. Prompts are joined with short
    silent gaps; the reference and held-out sets never share a prompt.
    """
    reference_prompts, _ = _split_prompts()
    return _concatenate(reference_prompts, seconds, offset), UTTERANCE_SAMPLE_RATE_HZ


def heldout_utterance(seconds: float, offset: int = 0) -> tuple[np.ndarray, int]:
    """Like :func:`reference_utterance`, built from prompts that the reference set never uses."""
    _, heldout_prompts = _split_prompts()
    return _concatenate(heldout_prompts, seconds, offset), UTTERANCE_SAMPLE_RATE_HZ


def czech_actor_clips(actor: str) -> list[Path]:
    """Ogg Vorbis clips (22.05 kHz mono) of one Fish Fillets actor: ``"small_fish"`` or ``"big_fish"``."""
    if actor not in FILLETS_ACTOR_INFIXES:
        raise SpeechAssetError(f"unknown actor {actor!r}; choose one of {sorted(FILLETS_ACTOR_INFIXES)}")
    sound_dir = _ensure_fillets_sounds()
    return sorted(sound_dir.glob(f"*/cs/*{FILLETS_ACTOR_INFIXES[actor]}*.ogg"))


def czech_actor_utterance(actor: str, seconds: float, offset: int = 0) -> tuple[np.ndarray, int]:
    """``seconds`` of one Czech actor at 16 kHz float32 mono, clips joined from clip ``offset`` on."""
    clips = [clip for clip in czech_actor_clips(actor) if sf.info(str(clip)).duration >= MIN_UTTERANCE_PROMPT_S]
    return _concatenate(clips, seconds, offset), UTTERANCE_SAMPLE_RATE_HZ


def _split_prompts() -> tuple[list[Path], list[Path]]:
    prompts = english_prompts(min_duration_s=MIN_UTTERANCE_PROMPT_S)
    return prompts[0::2], prompts[1::2]


def _concatenate(clips: list[Path], seconds: float, offset: int) -> np.ndarray:
    if seconds <= 0:
        raise SpeechAssetError(f"utterance length must be positive, got {seconds} s")
    if not clips:
        raise SpeechAssetError("no speech clips available to build an utterance from")
    wanted = int(round(seconds * UTTERANCE_SAMPLE_RATE_HZ))
    gap = np.zeros(int(PROMPT_GAP_S * UTTERANCE_SAMPLE_RATE_HZ), dtype=np.float32)
    pieces: list[np.ndarray] = []
    collected = 0
    index = offset
    while collected < wanted:
        clip = _read_mono_16k(clips[index % len(clips)])
        pieces.extend([clip, gap])
        collected += clip.size + gap.size
        index += 1
    return np.concatenate(pieces)[:wanted]


def _read_mono_16k(path: Path) -> np.ndarray:
    samples, rate_hz = sf.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate_hz != UTTERANCE_SAMPLE_RATE_HZ:
        divisor = np.gcd(rate_hz, UTTERANCE_SAMPLE_RATE_HZ)
        mono = resample_poly(mono, UTTERANCE_SAMPLE_RATE_HZ // divisor, rate_hz // divisor)
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def _ensure_asterisk_prompts() -> Path:
    prompt_dir = speech_cache_dir() / "asterisk-en" / "prompts"
    marker = prompt_dir / ".complete"
    if marker.exists():
        return prompt_dir
    with cache_lock(speech_cache_dir()):
        if marker.exists():
            return prompt_dir
        _require_tools("apt-get", "dpkg-deb", "ffmpeg")
        with tempfile.TemporaryDirectory(dir=speech_cache_dir()) as staging:
            speaker_dir = download_debian_package(ASTERISK_PACKAGE, Path(staging)) / ASTERISK_SPEAKER_DIR
            partial_dir = Path(staging) / "prompts"
            partial_dir.mkdir()
            decode_g722(_select_prompts(speaker_dir), partial_dir)
            (partial_dir / ".complete").touch()
            shutil.rmtree(prompt_dir, ignore_errors=True)
            prompt_dir.parent.mkdir(parents=True, exist_ok=True)
            partial_dir.rename(prompt_dir)
    return prompt_dir


def _ensure_fillets_sounds() -> Path:
    sound_dir = speech_cache_dir() / "fillets-cs" / "sound"
    marker = sound_dir / ".complete"
    if marker.exists():
        return sound_dir
    with cache_lock(speech_cache_dir()):
        if marker.exists():
            return sound_dir
        _require_tools("apt-get", "dpkg-deb")
        with tempfile.TemporaryDirectory(dir=speech_cache_dir()) as staging:
            unpacked_sound_dir = download_debian_package(FILLETS_PACKAGE, Path(staging)) / FILLETS_SOUND_DIR
            if not unpacked_sound_dir.is_dir():
                raise SpeechAssetError(f"{FILLETS_PACKAGE} has no {FILLETS_SOUND_DIR}")
            (unpacked_sound_dir / ".complete").touch()
            shutil.rmtree(sound_dir, ignore_errors=True)
            sound_dir.parent.mkdir(parents=True, exist_ok=True)
            unpacked_sound_dir.rename(sound_dir)
    return sound_dir


def _select_prompts(speaker_dir: Path) -> list[Path]:
    """Prompts of a useful length, spread evenly over the alphabet, at most ``ASTERISK_MAX_PROMPTS``."""
    if not speaker_dir.is_dir():
        raise SpeechAssetError(f"{ASTERISK_PACKAGE} has no {ASTERISK_SPEAKER_DIR}")
    min_bytes = ASTERISK_MIN_PROMPT_S * G722_BYTES_PER_S
    max_bytes = ASTERISK_MAX_PROMPT_S * G722_BYTES_PER_S
    eligible = [path for path in sorted(speaker_dir.glob("*.g722")) if min_bytes <= path.stat().st_size <= max_bytes]
    stride = max(1, len(eligible) / ASTERISK_MAX_PROMPTS)
    return [eligible[int(position * stride)] for position in range(min(len(eligible), ASTERISK_MAX_PROMPTS))]


def decode_g722(prompts: list[Path], output_dir: Path) -> None:
    """Decode G.722 prompts to 16 kHz mono WAV in ``output_dir``, in one ffmpeg process (one output per prompt)."""
    inputs: list[str] = []
    outputs: list[str] = []
    for index, prompt in enumerate(prompts):
        inputs += ["-f", "g722", "-i", str(prompt)]
        outputs += [
            "-map",
            f"{index}:a",
            "-ar",
            str(ASTERISK_SAMPLE_RATE_HZ),
            "-ac",
            "1",
            str(output_dir / f"{prompt.stem}.wav"),
        ]
    run_command(["ffmpeg", "-nostdin", "-v", "error", "-y", *inputs, *outputs], cwd=output_dir)


def download_debian_package(package: str, staging: Path) -> Path:
    """``apt-get download`` a package (never installing it) and unpack it under ``staging``; returns the unpacked root."""
    download_dir = staging / "download"
    unpack_dir = staging / "unpacked"
    download_dir.mkdir()
    # The _apt sandbox user cannot write into a root-owned cache; apt only warns, so say it up front.
    run_command(["apt-get", "download", "-o", "APT::Sandbox::User=root", package], cwd=download_dir)
    debs = sorted(download_dir.glob(f"{package}_*.deb"))
    if not debs:
        raise SpeechAssetError(f"apt-get download {package} produced no .deb file")
    run_command(["dpkg-deb", "-x", str(debs[-1]), str(unpack_dir)], cwd=staging)
    return unpack_dir


def run_command(command: list[str], cwd: Path) -> None:
    """Run a tool, raising ``SpeechAssetError`` with its error output if it fails or hangs."""
    try:
        completed = subprocess.run(command, cwd=cwd, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as timeout:
        raise SpeechAssetError(f"{command[0]} took longer than {COMMAND_TIMEOUT_S} s") from timeout
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip()[-2000:]
        raise SpeechAssetError(f"{' '.join(command[:3])} … failed (exit {completed.returncode}): {detail}")


def _require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise SpeechAssetError(
            f"real test speech needs {', '.join(missing)} on PATH "
            "(Debian: apt-get install -y ffmpeg; apt-get and dpkg-deb come with the base system)"
        )
