"""Request deadlines: a synthesis or a dub with no result long after it was accepted is failed with the reason.

Whatever stalled it — a stage stopped for good, a message parked forever — the caller gets a
``synthesis.failed`` (``dub.failed``) instead of waiting without end. The sweep claims the rows in one update, so
several workers can sweep at once and each stalled request is failed once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from infra.repositories import StalledDub, StalledSynthesis
from schemas.envelope import Event, utc_now
from schemas.events import DubFailed, SynthesisFailed

log = logging.getLogger("voxflow.deadlines")


class StalledRequests(Protocol):
    async def fail_stalled(self, *, requested_before: datetime, reason: str) -> list[Any]: ...


class RequestDeadlines:
    """Fails requests older than ``deadline_s`` that have not ended, and publishes their failures (``failure_of``
    builds one: ``synthesis_failure`` or ``dub_failure``)."""

    def __init__(self, requests: StalledRequests, publish: Callable[[list[Event]], Awaitable[None]], deadline_s: float,
                 clock: Callable[[], datetime] = utc_now, failure_of: Callable[[Any, str], Event] | None = None):
        self._requests = requests
        self._failure_of = failure_of or synthesis_failure
        self._publish = publish
        self.deadline_s = deadline_s
        self._clock = clock
        self._unsent: list[Event] = []

    async def sweep(self) -> list[Event]:
        """One round: send failures a previous round could not send, then fail what is past its deadline."""
        reason = f"no result within {self.deadline_s:g} s of the request; it was stopped (VOXFLOW_REQUEST_DEADLINE_S)"
        stalled = await self._requests.fail_stalled(
            requested_before=self._clock() - timedelta(seconds=self.deadline_s), reason=reason)
        failures = [self._failure_of(request, reason) for request in stalled]
        self._unsent += failures
        outcomes, self._unsent = self._unsent, []
        try:
            await self._publish(outcomes)
        except Exception:
            self._unsent = outcomes  # the rows are already failed: their events must still go out
            raise
        for failure in failures:
            log.warning("%s (journey %s): past its %g s deadline", failure.type, failure.correlation_id, self.deadline_s)
        return outcomes


def synthesis_failure(request: StalledSynthesis, reason: str) -> SynthesisFailed:
    cause = request.request_event_id or request.synthesis_id
    journey = {"correlation_id": request.correlation_id} if request.correlation_id else {}
    return SynthesisFailed(event_id=uuid.uuid5(cause, "synthesis.failed:deadline"), tenant_id=request.tenant_id,
                           voice_id=request.voice_id, causation_id=request.request_event_id,
                           synthesis_id=request.synthesis_id, reason=reason, **journey)


def dub_failure(request: StalledDub, reason: str) -> DubFailed:
    """Under the id the dubbing stage gives its own failure of the request, so a redelivery's copy is the same event."""
    cause = request.request_event_id or request.dub_id
    journey = {"correlation_id": request.correlation_id} if request.correlation_id else {}
    return DubFailed(event_id=uuid.uuid5(cause, "dub.failed:"), tenant_id=request.tenant_id,
                     voice_id=request.voice_id, causation_id=request.request_event_id, dub_id=request.dub_id,
                     reason=reason, **journey)
