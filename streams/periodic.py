"""Background rounds a worker runs beside its stages: the deadline sweep, the audit checkpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("voxflow.worker")


async def run_every(interval_s: float, step: Callable[[], Awaitable[object]], what: str) -> None:
    """``step()`` every ``interval_s`` until cancelled; a failed round is logged and only delays the next."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except Exception as error:  # noqa: BLE001 — an outage only delays the next round
            log.warning("%s failed (%s: %s); next try in %g s", what, type(error).__name__, error, interval_s)
