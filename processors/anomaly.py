"""Pure anomaly detectors over counts and timestamps; the stages decide what to block."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence


@dataclass(frozen=True)
class AnomalyFinding:
    kind: str
    severity: str
    detail: str


def rate_exceeded(event_times: Sequence[datetime], *, now: datetime, window_s: float, limit: int) -> bool:
    """More than `limit` events inside the window ending at `now`."""
    window_start = now - timedelta(seconds=window_s)
    return sum(1 for moment in event_times if window_start <= moment <= now) > limit


def consent_failure_burst(failures_in_window: int, *, limit: int, window_s: float) -> AnomalyFinding | None:
    """Repeated rejected consents for one voice look like someone forging or replaying consent."""
    if failures_in_window < limit:
        return None
    severity = "critical" if failures_in_window >= 2 * limit else "warning"
    return AnomalyFinding("consent_failures", severity,
                          f"{failures_in_window} rejected consents for this voice in {window_s:g} s")
