"""Ordinary faults on the real embedded stack: every request still ends once.

Delivery is the point here, not voices: the fastest engine (espeak-ng + WORLD) and short texts.
A result message can be sent twice after a retry, always with the same event id, so "once" is
counted in distinct event ids, the way consumers read the results topic.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest

from schemas.events import SynthesisRequested
from streams import topics
from streams.results import ResultWatcher
from tests.journeys import RESULT_TIMEOUT_S, SHORT_TEXT, TENANT, consented_voice

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_S = 20
ENDINGS = {"synthesis.completed", "synthesis.failed"}


@pytest.fixture(scope="module")
def pipeline_settings(stack_settings):
    """Load, not abuse, is the point here: no rate limit in the way."""
    return stack_settings.model_copy(update={"synthesis_rate_limit": 100_000})


@pytest.fixture(scope="module")
async def voice(session, stack_settings):
    async with ResultWatcher(stack_settings.kafka_bootstrap, topics.RESULTS) as watcher:
        correlation, _consent, _ready = await consented_voice(session, watcher, voice_id=f"faults-{uuid.uuid4().hex[:6]}",
                                                              max_uses=1000)
    return _ready.voice_id, correlation


def requests_for(voice_id: str, correlation: uuid.UUID, count: int, text: str = SHORT_TEXT) -> list[SynthesisRequested]:
    return [SynthesisRequested(tenant_id=TENANT, voice_id=voice_id, correlation_id=correlation, text=text,
                               purpose="narration") for _ in range(count)]


async def endings_of(results: ResultWatcher, requests: list[SynthesisRequested], *, settle_s: float = 3.0):
    """Each request's distinct ending events, once every request has one (and a little longer, to catch doubles)."""
    wanted = {request.synthesis_id for request in requests}

    def is_ending(event) -> bool:
        return event.type in ENDINGS and getattr(event, "synthesis_id", None) in wanted

    await results.wait_until(is_ending, len(wanted), timeout_s=RESULT_TIMEOUT_S + 2 * OUTAGE_S)
    await results.wait_until(lambda event: False, timeout_s=settle_s)  # reads on, in case a second ending comes
    endings: dict[uuid.UUID, dict[uuid.UUID, str]] = {synthesis_id: {} for synthesis_id in wanted}
    for event in await results.wait_until(is_ending, len(wanted) + 1, timeout_s=0):
        endings[event.synthesis_id][event.event_id] = event.type
    return endings


async def synthesis_statuses(stack_settings, requests) -> dict[uuid.UUID, str]:
    connection = await asyncpg.connect(stack_settings.postgres_dsn)
    try:
        rows = await connection.fetch("SELECT synthesis_id, status FROM syntheses WHERE synthesis_id = ANY($1::uuid[])",
                                      [request.synthesis_id for request in requests])
    finally:
        await connection.close()
    return {row["synthesis_id"]: row["status"] for row in rows}


async def test_postgres_stopped_for_20_s_loses_and_doubles_nothing(
    embedded_stack, stack_settings, session, results, voice, caplog
):
    voice_id, correlation = voice
    requests = requests_for(voice_id, correlation, 8)
    for request in requests[:4]:
        await session.publisher.publish(request)
    with caplog.at_level(logging.WARNING, logger="voxflow.outages"):
        await asyncio.to_thread(embedded_stack.down, "postgres")
        for request in requests[4:]:
            await session.publisher.publish(request)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(embedded_stack.up)

        endings = await endings_of(results, requests)

    assert {synthesis_id: list(ended.values()) for synthesis_id, ended in endings.items()} == {
        request.synthesis_id: ["synthesis.completed"] for request in requests
    }
    assert set((await synthesis_statuses(stack_settings, requests)).values()) == {"completed"}
    # the operator reads a line when it went away and one when it came back, not one per retry of every stage (a
    # pooled connection that went stale in the outage may fail once more after the first step went through)
    outage_lines = [record.getMessage() for record in caplog.records if record.name == "voxflow.outages"]
    states = [line.split(" (")[0].split(" after")[0] for line in outage_lines]
    assert states[:2] == ["PostgreSQL unavailable", "PostgreSQL answering again"], outage_lines
    assert len(states) <= 4 and states == states[:2] * (len(states) // 2), outage_lines


async def test_the_same_request_delivered_three_times_gets_one_result(stack_settings, session, results, voice):
    voice_id, correlation = voice
    (request,) = requests_for(voice_id, correlation, 1)
    for _ in range(3):
        await session.publisher.publish(request)

    endings = await endings_of(results, [request])

    assert list(endings[request.synthesis_id].values()) == ["synthesis.completed"]


async def test_a_text_too_short_to_judge_the_voice_by_still_ends(session, results, voice):
    voice_id, correlation = voice
    (request,) = requests_for(voice_id, correlation, 1, text="Hello there.")
    await session.publisher.publish(request)

    endings = await endings_of(results, [request], settle_s=0)

    assert len(endings[request.synthesis_id]) == 1
