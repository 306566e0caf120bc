"""Ordinary faults on the real embedded stack: every request still ends once, every bad message gets a fate.

Delivery is the point here, not voices: the fastest engine (espeak-ng + WORLD) and short texts.
A result message can be sent twice after a retry, always with the same event id, so "once" is
counted in distinct event ids, the way consumers read the results topic.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid

import asyncpg
import psutil
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from infra.kafka import KafkaProducer
from schemas.events import SampleUploaded, SynthesisRequested
from streams import topics
from streams.results import ResultWatcher
from streams.session import client_session
from streams.worker import VoxflowWorker
from tests.journeys import RESULT_TIMEOUT_S, SHORT_TEXT, TENANT, consented_voice

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_S = 20
ENDINGS = {"synthesis.completed", "synthesis.failed"}


@pytest.fixture(scope="module")
def fault_settings(stack_settings):
    """Load, not abuse, is the point here: no rate limit in the way."""
    return stack_settings.model_copy(update={"synthesis_rate_limit": 100_000})


@pytest.fixture(scope="module")
async def worker(fault_settings):
    async with VoxflowWorker(fault_settings) as running:
        yield running


@pytest.fixture(scope="module")
async def session(fault_settings, worker):
    async with client_session(fault_settings) as opened:
        yield opened


@pytest.fixture
async def results(stack_settings, worker):
    async with ResultWatcher(stack_settings.kafka_bootstrap, topics.RESULTS) as watcher:
        yield watcher


@pytest.fixture
async def dead_letters(stack_settings, worker):
    async with ResultWatcher(stack_settings.kafka_bootstrap, topics.DEAD_LETTER) as watcher:
        yield watcher


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
    embedded_stack, stack_settings, session, results, voice
):
    voice_id, correlation = voice
    requests = requests_for(voice_id, correlation, 8)
    for request in requests[:4]:
        await session.publisher.publish(request)
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


async def test_the_object_store_stopped_for_20_s_loses_and_doubles_nothing(
    embedded_stack, stack_settings, session, results, voice
):
    voice_id, correlation = voice
    requests = requests_for(voice_id, correlation, 4)
    for request in requests:
        await session.publisher.publish(request)
    await asyncio.to_thread(embedded_stack.down, "s3")
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(embedded_stack.up)

    endings = await endings_of(results, requests)

    assert [list(ended.values()) for ended in endings.values()] == [["synthesis.completed"]] * len(requests)


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


def _valid_request(voice_id: str) -> dict:
    return json.loads(SynthesisRequested(tenant_id=TENANT, voice_id=voice_id, text="Hi.", purpose="narration").to_bytes())


def hostile_events(voice_id: str) -> st.SearchStrategy[bytes]:
    """Messages no stage may accept: wrong types, nulls, huge fields, deep nesting, future versions, unknown types,
    and uploads naming another tenant's or voice's objects."""
    base = _valid_request(voice_id)
    field = st.sampled_from(sorted(base))
    junk = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
    wrong_type = st.builds(lambda key, value: {**base, key: value, "text": 123} if key != "text" else {**base, key: value},
                           field, junk)
    nulls = st.builds(lambda key: {**base, key: None, "purpose": None}, field)
    huge = st.builds(lambda size: {**base, "text": "a" * size, "purpose": None}, st.integers(200_000, 1_030_000))
    deep = st.builds(lambda depth: {**base, "controls": json.loads("[" * depth + "]" * depth)}, st.integers(17, 900))
    future = st.builds(lambda version: {**base, "schema_version": version},
                       st.one_of(st.integers(3, 10**6), st.just("2"), st.just(2.0)))
    unknown = st.builds(lambda name: {**base, "type": name}, st.text(min_size=1, max_size=30).filter(lambda t: "." not in t))
    listed_type = st.just({**base, "type": ["synthesis.requested"]})
    upload = json.loads(SampleUploaded(tenant_id=TENANT, voice_id=voice_id, object_key=f"uploads/{TENANT}/{voice_id}/a.wav",
                                       size_bytes=1).to_bytes())
    foreign_key = st.builds(lambda tenant, voice: {**upload, "object_key": f"uploads/{tenant}/{voice}/a.wav"},
                            st.sampled_from(["victim", TENANT]), st.sampled_from(["someone-else", "other-voice"]))
    documents = st.one_of(wrong_type, nulls, huge, deep, future, unknown, listed_type, foreign_key)
    not_json = st.binary(min_size=1, max_size=200).filter(lambda raw: not raw.strip().startswith(b"{"))
    return st.one_of(documents.map(lambda document: json.dumps(document).encode()), not_json)


HOSTILE_COUNT = 1000


# One example that draws the whole batch: the worker is shared, and 1,000 messages are one workload.
@settings(max_examples=1, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
async def test_hostile_events_each_get_a_fate_and_valid_traffic_still_completes(data, stack_settings, worker, voice):
    voice_id, correlation = voice
    hostile = data.draw(st.lists(hostile_events(voice_id), min_size=HOSTILE_COUNT, max_size=HOSTILE_COUNT))
    valid = requests_for(voice_id, correlation, 4)
    process = psutil.Process(os.getpid())
    rss_before = process.memory_info().rss
    async with (ResultWatcher(stack_settings.kafka_bootstrap, topics.RESULTS) as results,
                ResultWatcher(stack_settings.kafka_bootstrap, topics.DEAD_LETTER) as dead_letters):
        async with KafkaProducer(stack_settings.kafka_bootstrap) as producer:
            for index, raw in enumerate(hostile):
                await producer.send(topics.SYNTHESIS, key=b"hostile", value=raw)
                if index % (len(hostile) // len(valid)) == 0:
                    request = valid[index * len(valid) // len(hostile)]
                    await producer.send(topics.SYNTHESIS, key=request.key(), value=request.to_bytes())
        digests = {hashlib.sha256(raw).hexdigest() for raw in hostile}
        fated = await dead_letters.wait_until(lambda event: event.payload_sha256 in digests, len(digests),
                                              timeout_s=RESULT_TIMEOUT_S)
        endings = await endings_of(results, valid, settle_s=0)

    assert {event.payload_sha256 for event in fated} == digests
    assert all(event.reason for event in fated)
    assert [list(ended.values()) for ended in endings.values()] == [["synthesis.completed"]] * len(valid)
    assert process.memory_info().rss <= 1.2 * rss_before
