"""A request that never gets a result is failed once its deadline passes, with the reason, exactly once."""

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from infra.errors import BrokerUnavailable
from infra.repositories import StalledDub, StalledSynthesis
from streams.deadlines import RequestDeadlines, dub_failure

NOW = datetime(2026, 12, 1, 13, 0, tzinfo=timezone.utc)


class AcceptedRequests:
    """Requests still accepted, by id; ``fail_stalled`` claims the old ones as the SQL update does."""

    def __init__(self, requested_at: dict):
        self.requested_at = dict(requested_at)
        self.failed: dict = {}

    async def fail_stalled(self, *, requested_before, reason):
        stalled = [synthesis_id for synthesis_id, at in self.requested_at.items() if at < requested_before]
        for synthesis_id in stalled:
            self.failed[synthesis_id] = reason
            del self.requested_at[synthesis_id]
        return [StalledSynthesis(synthesis_id, "t", "v", uuid.uuid4(), uuid.uuid4(), NOW) for synthesis_id in stalled]


async def test_only_requests_past_their_deadline_are_failed_and_only_once():
    old, recent = uuid.uuid4(), uuid.uuid4()
    requests = AcceptedRequests({old: NOW - timedelta(hours=2), recent: NOW - timedelta(minutes=5)})
    published = []

    async def publish(outcomes):
        published.extend(outcomes)

    deadlines = RequestDeadlines(requests, publish, deadline_s=3600, clock=lambda: NOW)
    await deadlines.sweep()
    await deadlines.sweep()

    assert [(e.type, e.synthesis_id) for e in published] == [("synthesis.failed", old)]
    assert "3600 s" in published[0].reason and recent in requests.requested_at


async def test_a_failure_the_broker_refused_is_sent_on_the_next_round():
    stalled = uuid.uuid4()
    requests = AcceptedRequests({stalled: NOW - timedelta(hours=2)})
    published, broker_down = [], [True]

    async def publish(outcomes):
        if broker_down.pop():
            raise BrokerUnavailable("restarting")
        published.extend(outcomes)

    deadlines = RequestDeadlines(requests, publish, deadline_s=60, clock=lambda: NOW)
    with pytest.raises(BrokerUnavailable):
        await deadlines.sweep()
    broker_down.append(False)
    await deadlines.sweep()

    assert [e.synthesis_id for e in published] == [stalled]


class AcceptedDubs:
    def __init__(self, requested_at: dict):
        self.requested_at = dict(requested_at)

    async def fail_stalled(self, *, requested_before, reason):
        stalled = [dub_id for dub_id, at in self.requested_at.items() if at < requested_before]
        for dub_id in stalled:
            del self.requested_at[dub_id]
        return [StalledDub(dub_id, "t", "v", uuid.uuid4(), request_event_id, NOW) for dub_id in stalled]


request_event_id = uuid.uuid4()


async def test_a_stalled_dub_is_failed_under_the_id_its_stage_would_give_that_failure():
    stalled = uuid.uuid4()
    published = []

    async def publish(outcomes):
        published.extend(outcomes)

    deadlines = RequestDeadlines(AcceptedDubs({stalled: NOW - timedelta(hours=2)}), publish, deadline_s=3600,
                                 clock=lambda: NOW, failure_of=dub_failure)
    await deadlines.sweep()

    [failure] = published
    assert (failure.type, failure.dub_id, failure.causation_id) == ("dub.failed", stalled, request_event_id)
    assert failure.event_id == uuid.uuid5(request_event_id, "dub.failed:") and "3600 s" in failure.reason
