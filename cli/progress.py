"""How the CLI shows long work: a rich progress bar on a terminal, and one plain line per update (stderr) elsewhere.

Anything that reports ``percent`` done (adaptation.progress, dub.progress) or chunk counts
(synthesis.chunk_ready) can drive it; ``ProgressDisplay.on_event`` is a client's ``on_progress``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import click

FULL_PERCENT = 100.0


@dataclass(frozen=True)
class ProgressUpdate:
    percent: float
    detail: str


def progress_of(event) -> ProgressUpdate | None:
    """What an event says about work under way: its ``percent``, or for chunk ``chunk_index`` (0-based) of
    ``chunk_count`` that many chunks done; None for an event that says neither."""
    percent = getattr(event, "percent", None)
    chunk_index, chunk_count = getattr(event, "chunk_index", None), getattr(event, "chunk_count", None)
    if percent is None and chunk_index is not None and chunk_count:
        percent = FULL_PERCENT * (chunk_index + 1) / chunk_count
    if percent is None:
        return None
    return ProgressUpdate(min(max(float(percent), 0.0), FULL_PERCENT), _detail(event))


def _detail(event) -> str:
    parts = [event.type]
    if getattr(event, "tier", None):
        parts.append(f"{event.tier} tier")
    if getattr(event, "steps", None):
        parts.append(f"step {event.step}/{event.steps}")
    if getattr(event, "chunk_count", None):
        parts.append(f"chunk {event.chunk_index + 1}/{event.chunk_count}")
    if getattr(event, "segment_count", None):
        parts.append(f"line {event.segments_done}/{event.segment_count}")
    if getattr(event, "similarity_objective", None) is not None:
        parts.append(f"similarity {event.similarity_objective:.3f}")
    return ", ".join(parts)


def fit_update(step: int, steps: int, similarity: float) -> ProgressUpdate:
    """A local style fit's report (what ``voxflow clone`` gets from the refiner) as an update."""
    return ProgressUpdate(FULL_PERCENT * step / steps, f"step {step}/{steps}, similarity {similarity:.3f}")


class ProgressDisplay:
    """``with ProgressDisplay("synthesis") as progress: ... progress.show(update)``.

    On a terminal the bar appears at the first update (no bar for work that reports none) and never
    moves back; elsewhere each update is one line on stderr, so stdout stays the command's output.
    ``interactive`` overrides the terminal check.
    """

    def __init__(self, title: str, *, interactive: bool | None = None):
        from rich.console import Console

        self.title = title
        self._console = Console(stderr=True)
        self._interactive = self._console.is_terminal if interactive is None else interactive
        self._bar = None
        self._task = None
        self._percent = 0.0

    def __enter__(self) -> "ProgressDisplay":
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.stop()

    def show(self, update: ProgressUpdate) -> None:
        if not self._interactive:
            click.echo(f"{self.title}: {update.percent:.0f}% {update.detail}", err=True)
            return
        self._percent = max(self._percent, update.percent)
        if self._bar is None:
            self._start_bar()
        self._bar.update(self._task, completed=self._percent, detail=update.detail)

    def on_event(self, event) -> None:
        """A client's ``on_progress``: shows each event that says how far the work is, ignores the others."""
        update = progress_of(event)
        if update is not None:
            self.show(update)

    def fit_callback(self) -> Callable[[int, int, float], None]:
        return lambda step, steps, similarity: self.show(fit_update(step, steps, similarity))

    def _start_bar(self) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                             TimeElapsedColumn(), TextColumn("{task.fields[detail]}"), console=self._console)
        self._bar.start()
        self._task = self._bar.add_task(self.title, total=FULL_PERCENT, detail="")
