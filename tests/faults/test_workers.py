"""Worker processes killed or stopped mid-stream, on a private stack: every request still ends exactly once.

The workers are real `voxflow worker` processes, each in a session of its own, so a signal meant for
a worker (or its espeak-ng helper) never reaches pytest's process group, and each is killed with its
whole group when a test ends, passes or fails. Delivery is the point: the fastest engine, one-sentence
texts. A result can be sent twice after a crash, always with the same event id, so "exactly once" is
counted in distinct event ids, the way consumers read the results topic, and in database rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from aiokafka.partitioner import murmur2

from infra.kafka import ensure_topics
from infra.settings import Settings
from schemas.events import SynthesisRequested
from streams import topics
from streams.results import ResultWatcher
from streams.session import client_session
from streams.topics import ALL_TOPICS
from tests.journeys import TENANT, consented_voice

pytestmark = [pytest.mark.integration, pytest.mark.faults]

REQUESTS = 100
TEXT = "Good morning, everyone."  # one chunk: the requests' delivery is tested, not the voice
ENDINGS = {"synthesis.completed", "synthesis.failed"}
WORKER_START_TIMEOUT_S = 120  # starting took 10-15 s measured on 2 cores shared with three other test runs
WORKER_STOP_TIMEOUT_S = 30
TAKEOVER_REQUESTS = 20
# scoring (Whisper, DNSMOS) bounds the pace: 5-8 s a request measured on 2 cores shared with three other test runs
STALL_TIMEOUT_S = 90
STARTED_LINE = b"worker started"
LOG_TAIL_LINES = 15


class WorkerProcess:
    """A `voxflow worker` in a process group of its own; its log is a file in the settings' data directory."""

    def __init__(self, settings: Settings):
        self.log_path = settings.data_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from cli import main; main()", "worker"], env=worker_environment(settings),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=Path(__file__).parents[2],
            )

    async def started(self) -> None:
        """Returns once the worker's agents run; fails with its log if it exits or takes too long."""
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while STARTED_LINE not in self.log_path.read_bytes():
            assert self.process.poll() is None, f"the worker exited ({self.process.returncode}) while starting; {self.log_tail()}"
            assert time.monotonic() < deadline, f"the worker was not started after {WORKER_START_TIMEOUT_S} s; {self.log_tail()}"
            await asyncio.sleep(0.5)

    def signal_group(self, signum: int) -> None:
        """The worker and its children (the espeak-ng program): only this group, never pytest's."""
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    async def stopped(self, timeout_s: float = WORKER_STOP_TIMEOUT_S) -> int:
        try:
            return await asyncio.to_thread(self.process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not stop within {timeout_s:.0f} s; {self.log_tail()}")

    def reap(self) -> None:
        """SIGTERM, then SIGKILL for whatever of the group is left; never leaves a zombie or an orphan behind."""
        if self.process.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)
        self.process.wait()

    def log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return f"last lines of {self.log_path}:\n" + "\n".join(lines)


def worker_environment(settings: Settings) -> dict[str, str]:
    """The settings as the `VOXFLOW_*` variables a worker process reads (the data directory, and with it the
    worker's signing key, included)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("VOXFLOW_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            environment[f"VOXFLOW_{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return environment


@contextmanager
def worker_processes() -> Iterator[list[WorkerProcess]]:
    """Collects the workers a test starts, and reaps every one of them when it ends, however it ends."""
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.reap()


async def start_worker(settings: Settings, workers: list[WorkerProcess]) -> WorkerProcess:
    """One at a time: a worker that starts first makes the data directory's keys the next one reads."""
    worker = WorkerProcess(settings)
    workers.append(worker)
    await worker.started()
    return worker


@pytest.fixture(scope="module")
async def worker_settings(private_settings) -> Settings:
    """Topics made before the first worker starts, so results can be watched from the start."""
    await ensure_topics(private_settings.kafka_bootstrap, ALL_TOPICS, partitions=private_settings.topic_partitions,
                        replication=private_settings.topic_replication)
    return private_settings


def voice_ids_one_per_partition(prefix: str, partitions: int) -> list[str]:
    """Voice ids the producer's partitioner (murmur2 of the key) sends to partitions 0, 1, …: one voice's events
    share a partition, so two workers only both work when the voices cover every partition."""
    found: dict[int, str] = {}
    while len(found) < partitions:
        voice_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
        found.setdefault((murmur2(voice_id.encode()) & 0x7FFFFFFF) % partitions, voice_id)
    return [found[partition] for partition in range(partitions)]


async def send_requests(session, voices, count: int) -> list[SynthesisRequested]:
    """``count`` requests spread over ``voices`` (their ``voice.ready`` events)."""
    requests = [SynthesisRequested(tenant_id=TENANT, voice_id=voices[n % len(voices)].voice_id,
                                   correlation_id=voices[n % len(voices)].correlation_id, text=TEXT,
                                   purpose="narration") for n in range(count)]
    for request in requests:
        await session.publisher.publish(request)
    return requests


async def wait_for_endings(results: ResultWatcher, requests: list[SynthesisRequested], count: int,
                           workers: list[WorkerProcess]) -> None:
    """Returns once ``count`` of the requests have ended; fails with the workers' logs as soon as none ends
    for STALL_TIMEOUT_S (a bound on a stall, not on the run: a loaded machine is slow, not stuck)."""
    wanted = {request.synthesis_id for request in requests}

    def is_ending(event) -> bool:
        return event.type in ENDINGS and getattr(event, "synthesis_id", None) in wanted

    events: list = []
    while len({event.synthesis_id for event in events}) < count:
        seen = len(events)
        events = await results.wait_until(is_ending, seen + 1, timeout_s=STALL_TIMEOUT_S)
        assert len(events) > seen, (
            f"no request ended for {STALL_TIMEOUT_S} s: {len({e.synthesis_id for e in events})} of {len(requests)} "
            f"ended, waiting for {count}; " + "\n".join(worker.log_tail() for worker in workers))


async def delivery_summary(results: ResultWatcher, settings: Settings,
                           requests: list[SynthesisRequested]) -> dict[str, object]:
    """Per request: its distinct ending events, whether every chunk was announced; and the requests' rows."""
    await results.wait_until(lambda event: False, timeout_s=3)  # reads on a little, in case a second ending comes
    wanted = {request.synthesis_id for request in requests}
    endings: dict = {synthesis_id: {} for synthesis_id in wanted}
    chunks: dict = {synthesis_id: set() for synthesis_id in wanted}
    chunk_counts: dict = {}
    for event in await results.wait_until(lambda e: getattr(e, "synthesis_id", None) in wanted, 10**9, timeout_s=0):
        if event.type in ENDINGS:
            endings[event.synthesis_id][event.event_id] = event.type
        elif event.type == "synthesis.chunk_ready":
            chunks[event.synthesis_id].add(event.chunk_index)
            chunk_counts[event.synthesis_id] = event.chunk_count
    return {
        "endings": sorted({tuple(ended.values()) for ended in endings.values()}),
        "every_chunk_announced": sorted({len(chunks[s]) == chunk_counts.get(s, -1) for s in wanted}),
        "rows": await synthesis_rows(settings, wanted),
    }


async def synthesis_rows(settings: Settings, synthesis_ids: set[uuid.UUID]) -> dict[str, int]:
    """How many of the requests' rows are in each status (a request's row and its chunks' rows)."""
    connection = await asyncpg.connect(settings.postgres_dsn)
    try:
        ids = list(synthesis_ids)
        requests = await connection.fetch(
            "SELECT status, count(*) FROM syntheses WHERE synthesis_id = ANY($1::uuid[]) GROUP BY status", ids)
        chunks = await connection.fetchval(
            "SELECT count(*) FROM synthesis_chunks WHERE synthesis_id = ANY($1::uuid[])", ids)
    finally:
        await connection.close()
    return {**{row["status"]: row["count"] for row in requests}, "chunks": chunks}


def exactly_once(count: int) -> dict[str, object]:
    return {"endings": [("synthesis.completed",)], "every_chunk_announced": [True],
            "rows": {"completed": count, "chunks": count}}


async def test_a_worker_killed_mid_stream_and_restarted_completes_every_request_exactly_once(worker_settings):
    async with client_session(worker_settings) as session, \
            ResultWatcher(worker_settings.kafka_bootstrap, topics.RESULTS) as results:
        with worker_processes() as workers:
            first = await start_worker(worker_settings, workers)
            _, _, ready = await consented_voice(session, results, voice_id=f"killed-{uuid.uuid4().hex[:6]}",
                                                max_uses=10 * REQUESTS)
            requests = await send_requests(session, [ready], REQUESTS)
            await wait_for_endings(results, requests, REQUESTS // 3, workers)
            first.signal_group(signal.SIGKILL)
            assert await first.stopped() == -signal.SIGKILL
            await start_worker(worker_settings, workers)
            await wait_for_endings(results, requests, REQUESTS, workers)
            summary = await delivery_summary(results, worker_settings, requests)

    assert summary == exactly_once(REQUESTS)


async def test_when_one_of_two_workers_stops_the_other_takes_over_and_finishes(worker_settings):
    async with client_session(worker_settings) as session, \
            ResultWatcher(worker_settings.kafka_bootstrap, topics.RESULTS) as results:
        with worker_processes() as workers:
            await start_worker(worker_settings, workers)
            second = await start_worker(worker_settings, workers)
            voices = [(await consented_voice(session, results, voice_id=voice_id, max_uses=10 * REQUESTS))[2]
                      for voice_id in voice_ids_one_per_partition("shared", worker_settings.topic_partitions)]
            requests = await send_requests(session, voices, TAKEOVER_REQUESTS)
            await wait_for_endings(results, requests, TAKEOVER_REQUESTS // 4, workers)
            second.signal_group(signal.SIGTERM)
            assert await second.stopped() == 0
            await wait_for_endings(results, requests, TAKEOVER_REQUESTS, workers)
            summary = await delivery_summary(results, worker_settings, requests)

    assert summary == exactly_once(TAKEOVER_REQUESTS)
