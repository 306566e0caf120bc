"""Rate and consent-failure detectors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from processors.trust.anomaly import consent_failure_burst, rate_exceeded
from processors.errors import InvalidAnomalyCheckError

NOW = datetime(2025, 3, 1, 12, tzinfo=timezone.utc)


def seconds_ago(*offsets: float) -> list[datetime]:
    return [NOW - timedelta(seconds=offset) for offset in offsets]


def test_more_requests_than_the_limit_inside_the_window_is_too_many():
    assert rate_exceeded(seconds_ago(1, 10, 30, 59), now=NOW, window_s=60, limit=3)


def test_up_to_the_limit_is_fine():
    assert not rate_exceeded(seconds_ago(1, 10, 30), now=NOW, window_s=60, limit=3)


def test_requests_outside_the_window_do_not_count():
    assert not rate_exceeded(seconds_ago(1, 10, 61, 3600, -5), now=NOW, window_s=60, limit=2)


def test_bad_windows_limits_and_mixed_time_zones_are_refused():
    with pytest.raises(InvalidAnomalyCheckError):
        rate_exceeded(seconds_ago(1), now=NOW, window_s=0, limit=3)
    with pytest.raises(InvalidAnomalyCheckError):
        rate_exceeded(seconds_ago(1), now=NOW, window_s=60, limit=-1)
    with pytest.raises(InvalidAnomalyCheckError, match="timezone-aware"):
        rate_exceeded([datetime(2025, 3, 1, 11, 59)], now=NOW, window_s=60, limit=3)


def test_consent_failures_below_the_limit_raise_nothing():
    assert consent_failure_burst(2, limit=3, window_s=600) is None


def test_a_burst_of_consent_failures_is_a_warning_then_critical():
    warning = consent_failure_burst(3, limit=3, window_s=600)
    assert warning.kind == "consent_failures" and warning.severity == "warning" and "3 rejected" in warning.detail
    assert consent_failure_burst(6, limit=3, window_s=600).severity == "critical"
