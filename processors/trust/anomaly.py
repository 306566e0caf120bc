"""Pure anomaly detectors over counts and timestamps; the stages decide what to block."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from processors.errors import InvalidAnomalyCheckError

Severity = Literal["info", "warning", "critical"]
CRITICAL_MULTIPLE_OF_LIMIT = 2  # twice the allowed failures is an attack in progress, not a typo


@dataclass(frozen=True)
class AnomalyFinding:
    kind: str
    severity: Severity
    detail: str


def rate_exceeded(event_times: Sequence[datetime], *, now: datetime, window_s: float, limit: int) -> bool:
    """More than ``limit`` events in the window ``[now - window_s, now]``; later events do not count.

    Times must all be timezone-aware (or all naive); ``InvalidAnomalyCheckError`` otherwise.
    """
    _check_window(window_s, limit)
    window_start = now - timedelta(seconds=window_s)
    try:
        return sum(1 for moment in event_times if window_start <= moment <= now) > limit
    except TypeError as error:
        raise InvalidAnomalyCheckError(f"event times and now must all be timezone-aware: {error}") from error


@dataclass(frozen=True)
class RateWindow:
    """At most ``limit`` requests in any ``window_s`` for one subject: a tenant, or one of its voices."""

    scope: Literal["tenant", "voice"]
    subject_id: str
    limit: int
    window_s: float


def rate_window_finding(window: RateWindow, request_times: Sequence[datetime], *,
                        now: datetime) -> AnomalyFinding | None:
    """A ``rate_exceeded`` finding naming the window when ``request_times`` overflow it; None otherwise."""
    if not rate_exceeded(request_times, now=now, window_s=window.window_s, limit=window.limit):
        return None
    preposition = "from" if window.scope == "tenant" else "for"
    return AnomalyFinding("rate_exceeded", "warning",
                          f"per-{window.scope} rate window: more than {window.limit} synthesis requests "
                          f"{preposition} {window.scope} {window.subject_id!r} in {window.window_s:g} s")


def consent_failure_burst(failures_in_window: int, *, limit: int, window_s: float) -> AnomalyFinding | None:
    """Repeated rejected consents for one voice look like someone forging or replaying consent.

    A warning from ``limit`` failures in the window, critical from twice that; None below.
    """
    _check_window(window_s, limit)
    if failures_in_window < max(limit, 1):
        return None
    critical = failures_in_window >= CRITICAL_MULTIPLE_OF_LIMIT * max(limit, 1)
    return AnomalyFinding("consent_failures", "critical" if critical else "warning",
                          f"{failures_in_window} rejected consents for this voice in {window_s:g} s")


def _check_window(window_s: float, limit: int) -> None:
    if not window_s > 0:
        raise InvalidAnomalyCheckError(f"the window must be a positive number of seconds, got {window_s!r}")
    if not isinstance(limit, int) or limit < 0:
        raise InvalidAnomalyCheckError(f"the limit must be a non-negative integer, got {limit!r}")
