"""Per-user caches of fetched assets: one lock file per cache, so concurrent first uses fetch once."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def cache_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory/.lock`` exclusively (creating the directory) while the block runs."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
