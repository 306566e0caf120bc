"""Worker processes killed or stopped mid-stream: every request still ends exactly once, every chunk is announced.

The workers are real `voxflow worker` processes on the shared embedded stack; delivery is the point,
so they speak with the fastest engine and the texts are short.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiokafka.partitioner import murmur2

from infra.kafka import ensure_topics
from infra.settings import Settings
from schemas.events import SynthesisRequested
from streams import topics
from streams.results import ResultWatcher
from streams.session import client_session
from streams.topics import ALL_TOPICS
from tests.journeys import RESULT_TIMEOUT_S, SHORT_TEXT, TENANT, consented_voice

pytestmark = [pytest.mark.integration, pytest.mark.faults]

REQUESTS = 100
SECONDS_PER_REQUEST = 20  # generous: 3-5 s each on a quiet 2-core machine, 11 s measured under heavy load
ENDINGS = {"synthesis.completed", "synthesis.failed"}


def worker_environment(settings: Settings) -> dict[str, str]:
    """The settings as the `VOXFLOW_*` variables a worker process reads."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("VOXFLOW_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            environment[f"VOXFLOW_{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return environment


@contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen]:
    """A `voxflow worker`; its log goes to a ``worker-*.log`` file in the settings' data directory."""
    log_file = open(settings.data_dir / f"worker-{uuid.uuid4().hex[:6]}.log", "wb")
    process = subprocess.Popen([sys.executable, "-c", "from cli import main; main()", "worker"], env=worker_environment(settings),
                               stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
async def worker_settings(stack_settings) -> Settings:
    """The shared consumer group (its offsets are past what earlier tests sent), no rate limit in the way,
    and the topics made before the first worker starts, so results can be watched from the start."""
    await ensure_topics(stack_settings.kafka_bootstrap, ALL_TOPICS, partitions=stack_settings.topic_partitions,
                        replication=stack_settings.topic_replication)
    return stack_settings.model_copy(update={"synthesis_rate_limit": 100_000})


def voice_ids_one_per_partition(prefix: str, partitions: int) -> list[str]:
    """Voice ids the producer's partitioner (murmur2 of the key) sends to partitions 0, 1, …: one voice's events
    share a partition, so two workers only both work when the voices cover every partition."""
    found: dict[int, str] = {}
    while len(found) < partitions:
        voice_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
        found.setdefault((murmur2(voice_id.encode()) & 0x7FFFFFFF) % partitions, voice_id)
    return [found[partition] for partition in range(partitions)]


async def send_requests(session, voices, count: int) -> list[SynthesisRequested]:
    """``count`` requests spread over ``voices`` (``voice.ready`` events)."""
    requests = [SynthesisRequested(tenant_id=TENANT, voice_id=voices[n % len(voices)].voice_id,
                                   correlation_id=voices[n % len(voices)].correlation_id, text=SHORT_TEXT,
                                   purpose="narration") for n in range(count)]
    for request in requests:
        await session.publisher.publish(request)
    return requests


async def wait_for_endings(results: ResultWatcher, requests: list[SynthesisRequested], count: int) -> None:
    wanted = {request.synthesis_id for request in requests}
    await results.wait_until(lambda e: e.type in ENDINGS and getattr(e, "synthesis_id", None) in wanted, count,
                             timeout_s=RESULT_TIMEOUT_S + SECONDS_PER_REQUEST * len(requests))


async def delivery_summary(results: ResultWatcher, requests: list[SynthesisRequested]) -> dict[str, list]:
    """Per request: its distinct ending types, and whether every chunk got its chunk_ready."""
    await results.wait_until(lambda event: False, timeout_s=3)  # a little longer, in case a second ending comes
    wanted = {request.synthesis_id for request in requests}
    endings: dict = {synthesis_id: {} for synthesis_id in wanted}
    chunks: dict = {synthesis_id: set() for synthesis_id in wanted}
    counts: dict = {}
    for event in await results.wait_until(lambda e: getattr(e, "synthesis_id", None) in wanted, 10**9, timeout_s=0):
        if event.type in ENDINGS:
            endings[event.synthesis_id][event.event_id] = event.type
        elif event.type == "synthesis.chunk_ready":
            chunks[event.synthesis_id].add(event.chunk_index)
            counts[event.synthesis_id] = event.chunk_count
    return {
        "endings": sorted({tuple(ended.values()) for ended in endings.values()}),
        "every_chunk_announced": sorted({len(chunks[s]) == counts.get(s, -1) for s in wanted}),
    }


async def test_a_worker_killed_mid_stream_and_restarted_completes_every_request_exactly_once(worker_settings):
    async with client_session(worker_settings) as session, \
            ResultWatcher(worker_settings.kafka_bootstrap, topics.RESULTS) as results:
        with worker_process(worker_settings) as first:
            _, _, ready = await consented_voice(session, results, voice_id=f"killed-{uuid.uuid4().hex[:6]}",
                                                max_uses=10 * REQUESTS)
            requests = await send_requests(session, [ready], REQUESTS)
            await wait_for_endings(results, requests, REQUESTS // 3)
            first.send_signal(signal.SIGKILL)
            first.wait()
        with worker_process(worker_settings):
            await wait_for_endings(results, requests, REQUESTS)
            summary = await delivery_summary(results, requests)

    assert summary == {"endings": [("synthesis.completed",)], "every_chunk_announced": [True]}


async def test_when_one_of_two_workers_stops_the_other_takes_over_and_finishes(worker_settings):
    async with client_session(worker_settings) as session, \
            ResultWatcher(worker_settings.kafka_bootstrap, topics.RESULTS) as results:
        with worker_process(worker_settings), worker_process(worker_settings) as second:
            voices = [(await consented_voice(session, results, voice_id=voice_id, max_uses=10 * REQUESTS))[2]
                      for voice_id in voice_ids_one_per_partition("shared", worker_settings.topic_partitions)]
            requests = await send_requests(session, voices, REQUESTS // 2)
            await wait_for_endings(results, requests, REQUESTS // 10)
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 60)
            await wait_for_endings(results, requests, REQUESTS // 2)
            summary = await delivery_summary(results, requests)

    assert summary == {"endings": [("synthesis.completed",)], "every_chunk_announced": [True]}
