"""Runs a voice's style fit in a child process, so the worker never imports torch.

The child is ``python -m processors.voice.refinement``: the request goes in on stdin as ``.npz``
bytes, progress comes back as JSON lines, then one result line (see that module's docstring).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from processors.constants import REFINEMENT_TIMEOUT_S
from processors.errors import FittingDivergedError, VoiceFittingError

log = logging.getLogger("voxflow.refiner")

ProgressCallback = Callable[[int, int, float], Awaitable[None]]


@dataclass(frozen=True)
class StyleFit:
    """What the fit found: an offset ``[256]`` to add to the voice's style table, and its objective before and after."""

    style_offset: np.ndarray
    similarity_before: float
    similarity_after: float
    steps: int
    seconds: float


class SubprocessRefiner:
    """One fit per call, each in a fresh ``python -m processors.voice.refinement`` process."""

    def __init__(self, timeout_s: float = REFINEMENT_TIMEOUT_S, python: str = sys.executable) -> None:
        self._timeout_s = timeout_s
        self._python = python

    async def refine(
        self, *, style_table: np.ndarray, target_embedding: np.ndarray, phrases: Sequence[Sequence[int]], steps: int,
        on_progress: ProgressCallback,
    ) -> StyleFit:
        process = await asyncio.create_subprocess_exec(
            self._python, "-m", "processors.voice.refinement",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            return await asyncio.wait_for(self._converse(process, _request(style_table, target_embedding, phrases, steps),
                                                         on_progress), self._timeout_s)
        except asyncio.TimeoutError as error:
            raise VoiceFittingError(f"the style fit took over {self._timeout_s:.0f} s") from error
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def _converse(self, process, request: bytes, on_progress: ProgressCallback) -> StyleFit:
        try:
            process.stdin.write(request)
            await process.stdin.drain()
            process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it died before reading the request: what it said on stderr is reported below
        async for line in process.stdout:
            reply = json.loads(line)
            if "step" in reply and "style_offset" not in reply:
                await on_progress(int(reply["step"]), int(reply["steps"]), float(reply["similarity"]))
                continue
            return _fit_from(reply)
        stderr = (await process.stderr.read()).decode(errors="replace")[-500:]
        raise VoiceFittingError(f"the style fit stopped without a result (exit {await process.wait()}): {stderr}")


def _request(style_table: np.ndarray, target_embedding: np.ndarray, phrases: Sequence[Sequence[int]], steps: int) -> bytes:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        style_table=np.asarray(style_table, dtype=np.float32),
        target_embedding=np.asarray(target_embedding, dtype=np.float32),
        phrase_tokens=np.concatenate([np.asarray(tokens, dtype=np.int64) for tokens in phrases]),
        phrase_lengths=np.asarray([len(tokens) for tokens in phrases], dtype=np.int64),
        steps=np.asarray(steps, dtype=np.int64),
    )
    return buffer.getvalue()


def _fit_from(reply: dict) -> StyleFit:
    if "error" in reply:
        error_class = FittingDivergedError if reply.get("kind") == "diverged" else VoiceFittingError
        raise error_class(reply["error"])
    return StyleFit(
        style_offset=np.asarray(reply["style_offset"], dtype=np.float32),
        similarity_before=float(reply["similarity_before"]),
        similarity_after=float(reply["similarity_after"]),
        steps=int(reply["steps"]),
        seconds=float(reply["seconds"]),
    )
