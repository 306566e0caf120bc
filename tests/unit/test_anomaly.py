"""Rate windows (per tenant, per voice), deny patterns at the synthesis stage, and consent-failure detectors."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from processors.trust.anomaly import RateWindow, consent_failure_burst, rate_exceeded, rate_window_finding
from processors.errors import InvalidAnomalyCheckError
from schemas.events import SynthesisRequested
from streams.context import Limits, StageContext
from streams.handlers.synthesis import accept_synthesis
from tests.unit.fakes import FakeSyntheses, FakeVoices, InMemoryStore

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


def test_a_rate_window_finding_names_the_window_that_tripped():
    voice_window = RateWindow("voice", "narrator-1", limit=2, window_s=60)

    finding = rate_window_finding(voice_window, seconds_ago(1, 5, 9), now=NOW)

    assert finding.kind == "rate_exceeded" and finding.severity == "warning"
    assert finding.detail == "per-voice rate window: more than 2 synthesis requests for voice 'narrator-1' in 60 s"
    assert rate_window_finding(voice_window, seconds_ago(1, 90, 400), now=NOW) is None
    tenant = rate_window_finding(RateWindow("tenant", "acme", limit=1, window_s=10), seconds_ago(1, 2), now=NOW)
    assert tenant.detail.startswith("per-tenant rate window: more than 1 synthesis requests from tenant 'acme'")


def synthesis_context(**limits) -> StageContext:
    voices, syntheses = FakeVoices(), FakeSyntheses()
    voices.owners.update({"busy": "acme", "quiet": "acme"})
    return StageContext(repos=SimpleNamespace(voices=voices, syntheses=syntheses), store=InMemoryStore(),
                        watermark_key=b"k" * 32, limits=Limits(**limits), clock=lambda: NOW)


def request_for(voice_id: str, text: str = "Hello there.") -> SynthesisRequested:
    return SynthesisRequested(tenant_id="acme", voice_id=voice_id, text=text, purpose="narration", occurred_at=NOW)


async def earlier_requests(context: StageContext, voice_id: str, *offsets_s: float) -> None:
    for requested_at in seconds_ago(*offsets_s):
        await context.repos.syntheses.record_request(
            synthesis_id=uuid.uuid4(), voice_id=voice_id, tenant_id="acme", text="x", language="en",
            purpose="narration", controls={}, requested_at=requested_at, status="completed")


async def test_a_flooded_voice_is_blocked_by_its_own_window_while_the_tenant_is_within_its_own():
    context = synthesis_context(synthesis_rate_limit=30, voice_synthesis_rate_limit=2)
    await earlier_requests(context, "busy", 3, 10)

    anomaly, failed = await accept_synthesis(request_for("busy"), context)

    assert (anomaly.kind, anomaly.action) == ("rate_exceeded", "blocked")
    assert anomaly.detail.startswith("per-voice rate window: more than 2 synthesis requests for voice 'busy'")
    assert failed.type == "synthesis.failed" and failed.reason == f"blocked: {anomaly.detail}"
    # the tenant's other voice has a window of its own: its request gets past the rate checks (to the text policy)
    (_, other) = await accept_synthesis(request_for("quiet", "Your code is 1234."), context)
    assert "deny pattern" in other.reason


async def test_the_tenant_window_trips_first_across_all_its_voices():
    context = synthesis_context(synthesis_rate_limit=2, voice_synthesis_rate_limit=2)
    await earlier_requests(context, "busy", 3)
    await earlier_requests(context, "quiet", 4)

    anomaly, _ = await accept_synthesis(request_for("quiet"), context)

    assert anomaly.detail.startswith("per-tenant rate window: more than 2 synthesis requests from tenant 'acme'")


async def test_a_denied_text_fails_naming_the_pattern_and_never_repeats_the_text():
    context = synthesis_context()
    text = "Hello, this is Officer Daniels from the police. You must pay a fine of $500 today."

    anomaly, failed = await accept_synthesis(request_for("busy", text), context)

    assert (anomaly.kind, anomaly.severity, anomaly.action) == ("denied_text", "warning", "blocked")
    assert failed.reason == "blocked: the text matches deny pattern 'official_impersonation'"
    assert "Daniels" not in anomaly.detail + failed.reason
