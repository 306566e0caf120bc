"""Load: how much one worker takes, whether a second one helps, and how fast the voice search is.

    .venv/bin/python bench/load.py [--quick] [--only PARTS] [--out bench/results/load.json]

Starts a private embedded stack (rclone S3, Tansu on it, PostgreSQL with pgvector) in a temporary
directory. Workers run as `voxflow worker --stages ...` processes of their own, one consumer group for
the whole run (one phase's worker after the other, so none replays what an earlier phase handled), on
the fastest engine (espeak-ng + WORLD: the voices are not the point here), with 4 partitions per topic.

- `control_events_per_s`: a backlog of signed consents (tenant key), audit records and anomalies (worker
  key, as the stages emit them) is produced first; then one `consent,audit,anomaly` worker drains it.
  Rate of Postgres effects (rows in consents, audit_log, anomalies; the audit records the consent stage
  derives count too) from the first to the last one.
- `adaptation_50_total_s`, `adaptation_peak_memory_mb`: one `ingest,consent,adaptation` worker; samples
  (2 × 10 s of real speech per voice) and consents are decided first, then every adaptation request is
  sent at once: request → the last voice.ready, and the worker's peak resident memory (VmHWM).
- `synthesis_requests_per_s_1_worker` / `_2_workers`: a backlog of requests for a 3 s sentence, spread
  over voices on every partition, through `synthesis,watermark,scoring` workers, from the first request
  to the last output scored (the work a worker must keep up with); `scale_out_ratio` is 2 over 1.
- `synthesis_latency_p50/p95/p99_s`: one worker at a steady rate of half its measured throughput;
  request → completed as the watermark stage reports it (`latency_s`; the scores follow in synthesis.scored).
- `voice_search_p95_ms`: profiles of protected voices with random unit embeddings, loaded with COPY, the
  HNSW index of migration 0007 built on them, then `ProfileRepository.closest_protected_voice` timed
  from the client; queries are stored embeddings with noise (cosine ≈ 0.8), answers checked against
  the exact nearest neighbour (`voice_search_recall_at_1`), the plan checked for the index.
- `broker_s3_vs_memory_produce_ratio`: reused from bench/results/broker.json (`make bench-broker`).

`--quick` runs every part at reduced sizes (a few minutes on 2 cores); `--only control,synthesis` runs those
parts and keeps the other figures from the `--out` file (named in `details.kept_from_previous_run`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import re
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from aiokafka.partitioner import DefaultPartitioner  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from infra.db import create_pool  # noqa: E402
from infra.embedded import EmbeddedStack  # noqa: E402
from infra.kafka import KafkaProducer  # noqa: E402
from infra.repositories import ProfileRepository  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.signing_keys import worker_signer  # noqa: E402
from infra.speech_assets import reference_utterance  # noqa: E402
from processors.audio.codec_quality import encode_wav  # noqa: E402
from processors.constants import EMBEDDING_SIZE  # noqa: E402
from schemas.envelope import utc_now  # noqa: E402
from schemas.events import AdaptationRequested, AnomalyDetected, AuditRecorded, SynthesisRequested  # noqa: E402
from streams.client import upload_sample  # noqa: E402
from voxflow.envelopes import signed_consent  # noqa: E402
from streams.publisher import EventPublisher, signed_by  # noqa: E402
from streams.results import ResultWatcher  # noqa: E402
from streams.session import client_session, database, prepare_stack  # noqa: E402
from streams.tenants import register_tenant  # noqa: E402
from streams.topics import DEAD_LETTER, RESULTS  # noqa: E402

TENANT = "bench-load"
PARTITIONS = 4
# About 3 s of espeak-ng speech, one sentence: one chunk per request.
SENTENCE = "The museum opens at nine in the morning on weekdays."
SYNTHESIS_STAGES = ["synthesis", "watermark", "scoring"]
LATENCY_LOAD = 0.5  # the steady rate, as a share of one worker's measured throughput
SAMPLE_SECONDS = 10.0
SAMPLES_PER_VOICE = 2
DISTINCT_RECORDINGS = 4  # voices reuse a few recordings: ingest and adaptation cost the same either way
QUERY_NOISE_COSINE = 0.8
SEARCH_WARM_UP_QUERIES = 20
HNSW_INDEX = "voice_profiles_embedding_hnsw"
HNSW_MIGRATION = REPO / "infra" / "migrations" / "0007_voice_search_hnsw.sql"
BROKER_RESULTS = REPO / "bench" / "results" / "broker.json"
WORKER_START_TIMEOUT_S = 300.0
WORKER_STOP_TIMEOUT_S = 30.0
RESULT_TIMEOUT_S = 900.0
EFFECT_POLL_S = 0.05
SCALE_OUT_WARM_UP_ROUNDS = 5
PARTS = ("control", "adaptation", "synthesis", "voice_search")
INDEX_BUILD_MEMORY = "1GB"  # the 100,000-vector graph fits in memory: built in one pass, not spilled


@dataclass(frozen=True)
class Sizes:
    control_events_per_kind: int
    adaptations: int
    synthesis_voices: int
    synthesis_requests: int
    latency_requests: int
    search_profiles: int
    search_queries: int


FULL = Sizes(control_events_per_kind=1000, adaptations=50, synthesis_voices=8, synthesis_requests=40,
             latency_requests=60, search_profiles=100_000, search_queries=500)
QUICK = Sizes(control_events_per_kind=200, adaptations=8, synthesis_voices=8, synthesis_requests=16,
              latency_requests=16, search_profiles=20_000, search_queries=100)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WorkerProcess:
    """`voxflow worker --stages ...` in a process of its own (its own core), logging to a file."""

    def __init__(self, settings: Settings, stages: list[str], name: str, directory: Path):
        self.settings = settings.model_copy(update={"data_dir": directory / f"worker-{name}"})
        self.stages = stages
        self.name = name
        self.log_file = directory / f"worker-{name}.log"
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "WorkerProcess":
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [str(REPO / ".venv" / "bin" / "voxflow"), "worker", "--stages", ",".join(self.stages)],
                env=_worker_environment(self.settings), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc_info) -> None:
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    async def started(self) -> None:
        """Return once the worker says its agents started (models loaded); SystemExit if it died."""
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while "worker started" not in self.log():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker {self.name} did not start; its log ends:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.5)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def peak_memory_mb(self) -> float:
        """Peak resident memory of the worker process so far (VmHWM)."""
        status = Path(f"/proc/{self._process.pid}/status").read_text()
        return round(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024, 1)

    def cpu_s(self) -> float:
        """User and system CPU seconds the worker process used so far."""
        times = psutil.Process(self._process.pid).cpu_times()
        return times.user + times.system

    def partitions_handled(self, topic: str) -> set[int]:
        """Partitions of ``topic`` this worker logged handling a message of."""
        return {int(p) for p in re.findall(rf"{re.escape(topic)}\[(\d+)\]@\d+: ", self.log())}

    def handler_mean_ms(self) -> dict[str, float]:
        """Mean time of one handled message (inbox, handler, publishing, marking done) per stage and event type."""
        url = re.search(r"serving /metrics\b.* on (\S+)", self.log()).group(1)
        text = urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=10).read().decode()
        sums, counts = {}, {}
        for family in text_string_to_metric_families(text):
            if family.name != "voxflow_handler_seconds":
                continue
            for sample in family.samples:
                label = f"{sample.labels.get('stage')}/{sample.labels.get('type')}"
                if sample.name.endswith("_sum"):
                    sums[label] = sample.value
                elif sample.name.endswith("_count"):
                    counts[label] = sample.value
        return {label: round(1000 * sums[label] / counts[label], 2) for label in sums if counts.get(label)}


def _worker_environment(settings: Settings) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VOXFLOW_")}
    for name in settings.model_fields_set:
        environment[f"VOXFLOW_{name.upper()}"] = str(getattr(settings, name))
    return environment


def voices_on_every_partition(count: int, prefix: str) -> list[str]:
    """``count`` voice ids, interleaved so that any leading slice spreads evenly over the partitions."""
    partitioner, partitions = DefaultPartitioner(), list(range(PARTITIONS))
    per_partition = math.ceil(count / PARTITIONS)
    by_partition: dict[int, list[str]] = {p: [] for p in partitions}
    for n in itertools.count():
        voice_id = f"{prefix}-{n:04d}"
        chosen = by_partition[partitioner(voice_id.encode(), partitions, partitions)]
        if len(chosen) < per_partition:
            chosen.append(voice_id)
        if all(len(v) == per_partition for v in by_partition.values()):
            break
    interleaved = [v for row in zip(*by_partition.values()) for v in row]
    return interleaved[:count]


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), 100 * share))


# --- control events ----------------------------------------------------------------------------


async def measure_control(settings: Settings, sizes: Sizes, directory: Path) -> dict:
    count = sizes.control_events_per_kind
    owner_key = Ed25519PrivateKey.generate()
    consents = [signed_consent(owner_key, tenant_id=TENANT, voice_id=f"control-{n:05d}", owner_id="bench",
                               purposes=["narration"], languages=["en"], statement_text="I consent.")
                for n in range(count)]
    audits = [AuditRecorded(tenant_id=TENANT, voice_id=f"control-{n:05d}", stage="bench", action="bench.load",
                            decision="accepted", subject_event_id=uuid.uuid4()) for n in range(count)]
    anomalies = [AnomalyDetected(tenant_id=TENANT, voice_id=f"control-{n:05d}", kind="rate_exceeded",
                                 severity="info", detail="load benchmark", action="alert") for n in range(count)]
    async with client_session(settings, with_store=False) as tenant, KafkaProducer(settings.kafka_bootstrap) as producer:
        stages = EventPublisher(producer, signed_by(worker_signer(settings)))
        await asyncio.gather(*(tenant.publisher.publish(e) for e in consents),
                             *(stages.publish(e) for e in [*audits, *anomalies]))
    # every verified consent adds the audit record of its decision
    expected = 4 * count
    with WorkerProcess(settings, ["consent", "audit", "anomaly"], "control", directory) as worker:
        async with database(settings) as pool:
            first, last, rows = await _effects(pool, expected, worker)
        worker_cpu_s = worker.cpu_s() - first[2]
        handler_ms = worker.handler_mean_ms()
    drain_s = last - first[0]
    return {
        "control_events_per_s": round((rows - first[1]) / drain_s, 1),
        "control_events_handled": rows,
        "control_events_sent": 3 * count,
        "control_drain_s": round(drain_s, 2),
        # well under 1: the worker waits (database round trips, broker acknowledgements) more than it computes
        "control_worker_cpu_share": round(worker_cpu_s / drain_s, 3),
        "control_handler_mean_ms": handler_ms,
    }


async def _effects(pool: asyncpg.Pool, expected: int, worker: WorkerProcess) -> tuple[tuple, float, int]:
    """Poll the rows the control stages write: (time, count and worker CPU seconds at the first seen row,
    time of the last, count)."""
    first, deadline = None, time.monotonic() + WORKER_START_TIMEOUT_S + RESULT_TIMEOUT_S
    rows = 0
    while rows < expected and time.monotonic() < deadline:
        rows = await pool.fetchval("SELECT (SELECT count(*) FROM consents) + (SELECT count(*) FROM audit_log)"
                                   " + (SELECT count(*) FROM anomalies)")
        now = time.perf_counter()
        if rows and first is None:
            first = (now, rows, worker.cpu_s())
        await asyncio.sleep(EFFECT_POLL_S)
    if rows < expected:
        raise SystemExit(f"control events: {rows} of {expected} Postgres effects after the timeout")
    return first, now, rows


# --- adaptation --------------------------------------------------------------------------------


async def measure_adaptation(settings: Settings, voices: list[str], directory: Path) -> dict:
    recordings = [encode_wav(*reference_utterance(SAMPLE_SECONDS, offset=n)) for n in range(DISTINCT_RECORDINGS)]
    owner_key = Ed25519PrivateKey.generate()
    with WorkerProcess(settings, ["ingest", "consent", "adaptation"], "adaptation", directory) as worker:
        async with client_session(settings) as session, ResultWatcher(settings.kafka_bootstrap, RESULTS) as results:
            correlations, requests = set(), []
            started = time.perf_counter()
            for n, voice_id in enumerate(voices):
                correlation = uuid.uuid4()
                correlations.add(correlation)
                uploads = [await upload_sample(session.store, session.publisher,
                                               data=recordings[(n + k) % DISTINCT_RECORDINGS], filename=f"s{k}.wav",
                                               tenant_id=TENANT, voice_id=voice_id, correlation_id=correlation)
                           for k in range(SAMPLES_PER_VOICE)]
                await session.publisher.publish(signed_consent(
                    owner_key, tenant_id=TENANT, voice_id=voice_id, owner_id="bench", purposes=["narration"],
                    languages=["en"], statement_text="I consent.", correlation_id=correlation))
                requests.append(AdaptationRequested(tenant_id=TENANT, voice_id=voice_id, correlation_id=correlation,
                                                    sample_ids=[u.sample_id for u in uploads]))
            decided = await results.wait_until(
                lambda e: e.correlation_id in correlations and e.type in {"sample.accepted", "consent.verified"},
                len(voices) * (SAMPLES_PER_VOICE + 1), timeout_s=RESULT_TIMEOUT_S)
            if len(decided) < len(voices) * (SAMPLES_PER_VOICE + 1):
                raise SystemExit(f"only {len(decided)} samples and consents accepted: see {worker.log_file}")
            ingest_s = time.perf_counter() - started
            started = time.perf_counter()
            await asyncio.gather(*(session.publisher.publish(r) for r in requests))
            outcomes = await results.wait_until(
                lambda e: e.correlation_id in correlations and e.type in {"voice.ready", "adaptation.failed"},
                len(voices), timeout_s=RESULT_TIMEOUT_S)
            total_s = time.perf_counter() - started
        peak_mb = worker.peak_memory_mb()
    ready = [e for e in outcomes if e.type == "voice.ready"]
    if len(ready) < len(voices):
        raise SystemExit(f"{len(voices) - len(ready)} adaptations did not end in voice.ready: "
                         f"{[e.reason for e in outcomes if e.type == 'adaptation.failed']}")
    return {
        "adaptation_total_s": round(total_s, 2),
        "adaptation_peak_memory_mb": peak_mb,
        "adaptation_mean_s": round(statistics.mean(e.adaptation_s for e in ready), 3),
        "ingest_and_consent_s": round(ingest_s, 2),
    }


# --- synthesis ---------------------------------------------------------------------------------


async def measure_synthesis(settings: Settings, sizes: Sizes, voices: list[str], directory: Path) -> dict:
    async with client_session(settings, with_store=False) as session, \
            ResultWatcher(settings.kafka_bootstrap, RESULTS) as results:
        run = SynthesisRun(session.publisher, results, voices)
        with WorkerProcess(settings, SYNTHESIS_STAGES, "synthesis-a", directory) as one:
            await one.started()
            await run.warm_up([one])
            cpu_before = one.cpu_s()
            one_worker = await run.throughput(sizes.synthesis_requests)
            one_worker_cpu_s = one.cpu_s() - cpu_before
            load_1_worker = _load_average()
            steady = await run.steady(one_worker["requests_per_s"] * LATENCY_LOAD, sizes.latency_requests)
            handler_ms = one.handler_mean_ms()
        with WorkerProcess(settings, SYNTHESIS_STAGES, "synthesis-b", directory) as first, \
                WorkerProcess(settings, SYNTHESIS_STAGES, "synthesis-c", directory) as second:
            await asyncio.gather(first.started(), second.started())
            partitions = await run.warm_up([first, second])
            two_workers = await run.throughput(sizes.synthesis_requests)
            load_2_workers = _load_average()
    latencies = steady["latencies_s"]
    return {
        "synthesis_requests_per_s_1_worker": one_worker["requests_per_s"],
        "synthesis_requests_per_s_2_workers": two_workers["requests_per_s"],
        "scale_out_ratio": round(two_workers["requests_per_s"] / one_worker["requests_per_s"], 3),
        "synthesis_latency_p50_s": round(percentile(latencies, 0.50), 3),
        "synthesis_latency_p95_s": round(percentile(latencies, 0.95), 3),
        "synthesis_latency_p99_s": round(percentile(latencies, 0.99), 3),
        "synthesis_steady_rate_per_s": round(steady["rate_per_s"], 3),
        "synthesis_audio_s": steady["audio_s"],
        "synthesis_rtf_median": steady["rtf_median"],
        "synthesis_partitions_per_worker": partitions,
        "synthesis_load_average_1m_after": {"1_worker": load_1_worker, "2_workers": load_2_workers},
        # CPU seconds the single worker used per request of the backlog, and per handled message by type
        "synthesis_worker_cpu_s_per_request": round(one_worker_cpu_s / sizes.synthesis_requests, 3),
        "synthesis_handler_mean_ms": handler_ms,
        "synthesis_failed": one_worker["failed"] + two_workers["failed"] + steady["failed"],
    }


class SynthesisRun:
    """Sends requests for the 3 s sentence round-robin over the voices and collects their outcomes."""

    def __init__(self, publisher, results: ResultWatcher, voices: list[str]):
        self.publisher = publisher
        self.results = results
        self.voices = voices

    def _requests(self, count: int) -> list[SynthesisRequested]:
        return [SynthesisRequested(tenant_id=TENANT, voice_id=voice_id, text=SENTENCE, purpose="narration")
                for voice_id in itertools.islice(itertools.cycle(self.voices), count)]

    async def _outcomes(self, requests: list[SynthesisRequested]) -> list:
        """The requests' endings, once every completed output was scored too (no scoring left for the next phase)."""
        wanted = {r.synthesis_id for r in requests}
        outcomes = await self.results.wait_until(
            lambda e: e.type in {"synthesis.completed", "synthesis.failed"} and e.synthesis_id in wanted,
            len(wanted), timeout_s=RESULT_TIMEOUT_S)
        if len(outcomes) < len(wanted):
            raise SystemExit(f"{len(wanted) - len(outcomes)} of {len(wanted)} syntheses did not end in time")
        completed = {e.synthesis_id for e in outcomes if e.type == "synthesis.completed"}
        scored = await self.results.wait_until(lambda e: e.type == "synthesis.scored" and e.synthesis_id in completed,
                                               len(completed), timeout_s=RESULT_TIMEOUT_S)
        if len(scored) < len(completed):
            raise SystemExit(f"{len(completed) - len(scored)} of {len(completed)} outputs were not scored in time")
        return outcomes + scored

    async def warm_up(self, workers: list[WorkerProcess]) -> dict[str, list[int]]:
        """One request per voice until every worker handled synthesis messages (the group settled)."""
        for _ in range(SCALE_OUT_WARM_UP_ROUNDS):
            requests = self._requests(len(self.voices))
            await asyncio.gather(*(self.publisher.publish(r) for r in requests))
            await self._outcomes(requests)
            handled = {w.name: sorted(w.partitions_handled("voxflow.synthesis")) for w in workers}
            if all(handled.values()):
                return handled
        raise SystemExit(f"not every worker got synthesis partitions: {handled}")

    async def throughput(self, count: int) -> dict:
        """A backlog of ``count`` requests at once: requests per second from the first request to the last outcome."""
        requests = self._requests(count)
        await asyncio.gather(*(self.publisher.publish(r) for r in requests))
        outcomes = await self._outcomes(requests)
        started = min(r.occurred_at for r in requests)
        ended = max(e.occurred_at for e in outcomes)  # the last output scored
        return {"requests_per_s": round(count / (ended - started).total_seconds(), 3),
                "failed": _failures(outcomes)}

    async def steady(self, rate_per_s: float, count: int) -> dict:
        requests = self._requests(count)
        started = time.perf_counter()
        for n, request in enumerate(requests):
            await asyncio.sleep(max(0.0, started + n / rate_per_s - time.perf_counter()))
            # stamped when sent, not when built: latency_s counts from occurred_at
            request = requests[n] = request.model_copy(update={"occurred_at": utc_now()})
            await self.publisher.publish(request)
        outcomes = await self._outcomes(requests)
        completed = [e for e in outcomes if e.type == "synthesis.completed"]
        return {"rate_per_s": rate_per_s, "latencies_s": [e.latency_s for e in completed],
                "audio_s": round(statistics.median(e.duration_s for e in completed), 2),
                "rtf_median": round(statistics.median(e.rtf for e in completed), 4), "failed": _failures(outcomes)}


def _failures(outcomes) -> list[str]:
    return [e.reason for e in outcomes if e.type == "synthesis.failed"]


# --- voice search ------------------------------------------------------------------------------


async def measure_voice_search(settings: Settings, sizes: Sizes) -> dict:
    rng = np.random.default_rng(9)
    embeddings = _unit(rng.standard_normal((sizes.search_profiles, EMBEDDING_SIZE), dtype=np.float32))
    voice_ids = [f"protected-{n:06d}" for n in range(sizes.search_profiles)]
    connection = await asyncpg.connect(settings.postgres_dsn)
    try:
        await connection.set_type_codec("vector", schema="public", format="binary",
                                        encoder=_vector_binary, decoder=lambda data: data)
        started = time.perf_counter()
        await _load_profiles(connection, voice_ids, embeddings)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        await connection.execute(f"SET maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        await connection.execute(HNSW_MIGRATION.read_text())
        index_s = time.perf_counter() - started
        await connection.execute("ANALYZE voices; ANALYZE voice_profiles")
    finally:
        await connection.close()
    queries, nearest = _queries_near(embeddings, sizes.search_queries, rng)
    pool = await create_pool(settings.postgres_dsn, max_size=1)
    try:
        profiles = ProfileRepository(pool, sealer=None)  # the search reads embeddings, never a sealed profile
        for query in queries[:SEARCH_WARM_UP_QUERIES]:
            await profiles.closest_protected_voice(embedding=query, other_than="")
        timings_ms, hits = [], 0
        for query, expected in zip(queries, nearest):
            started = time.perf_counter()
            found = await profiles.closest_protected_voice(embedding=query, other_than="")
            timings_ms.append(1000 * (time.perf_counter() - started))
            hits += found is not None and found[0] == voice_ids[expected]
        plan = await _plan_of_search(pool, queries[0])
    finally:
        await pool.close()
    return {
        "voice_search_p50_ms": round(percentile(timings_ms, 0.50), 2),
        "voice_search_p95_ms": round(percentile(timings_ms, 0.95), 2),
        "voice_search_recall_at_1": round(hits / len(queries), 3),
        "voice_search_uses_hnsw_index": HNSW_INDEX in json.dumps(plan),
        "voice_search_plan": _plan_outline(plan),
        "voice_search_copy_s": round(load_s, 2),
        "voice_search_index_build_s": round(index_s, 2),
    }


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def _vector_binary(values) -> bytes:
    """pgvector's binary format: dimensions and a reserved int16, then big-endian float4s."""
    return struct.pack(">HH", len(values), 0) + np.asarray(values, dtype=">f4").tobytes()


async def _load_profiles(connection: asyncpg.Connection, voice_ids: list[str], embeddings: np.ndarray) -> None:
    """COPY the voices and one profile each; the HNSW index is dropped first and rebuilt after, as for a bulk load."""
    await connection.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
    await connection.copy_records_to_table("voices", columns=["voice_id", "tenant_id", "protected"],
                                           records=((v, TENANT, True) for v in voice_ids))
    await connection.copy_records_to_table(
        "voice_profiles", columns=["voice_id", "version", "adaptation_id", "sample_ids", "embedding", "sealed_profile"],
        records=((v, 1, uuid.uuid4(), [], e, b"") for v, e in zip(voice_ids, embeddings)))  # search reads no profile


def _queries_near(embeddings: np.ndarray, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Stored embeddings moved to cosine ≈ QUERY_NOISE_COSINE (a new recording of a known voice), and
    the index of each query's exact nearest neighbour."""
    chosen = rng.choice(len(embeddings), size=count, replace=False)
    noise = _unit(rng.standard_normal((count, EMBEDDING_SIZE), dtype=np.float32))
    spread = math.sqrt(1 - QUERY_NOISE_COSINE ** 2)
    queries = _unit(QUERY_NOISE_COSINE * embeddings[chosen] + spread * noise)
    return queries, np.argmax(queries @ embeddings.T, axis=1)


async def _plan_of_search(pool: asyncpg.Pool, query: np.ndarray) -> list:
    """EXPLAIN ANALYZE of the very statements the repository sends: ``pool`` holds one connection, whose
    query logger catches them."""
    sent = []
    async with pool.acquire() as connection:
        connection.add_query_logger(sent.append)
    await ProfileRepository(pool, sealer=None).closest_protected_voice(embedding=query, other_than="")
    async with pool.acquire() as connection:
        connection.remove_query_logger(sent.append)
        search = next(logged for logged in sent if "<=>" in logged.query)
        async with connection.transaction():
            for logged in sent:
                if logged.query.lstrip().upper().startswith("SET"):
                    await connection.execute(logged.query)
            return json.loads(await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {search.query}",
                                                        *search.args))


def _plan_outline(plan: list) -> list[str]:
    """The plan's nodes, outermost first: node type and the index or relation it reads."""
    outline = []

    def walk(node, depth):
        target = node.get("Index Name") or node.get("Relation Name") or ""
        outline.append(f"{'  ' * depth}{node['Node Type']} {target}".rstrip())
        for child in node.get("Plans", ()):
            walk(child, depth + 1)

    walk(plan[0]["Plan"], 0)
    return outline


# --- the run -----------------------------------------------------------------------------------


def broker_ratio() -> dict:
    figures = json.loads(BROKER_RESULTS.read_text())
    return {"broker_s3_vs_memory_produce_ratio": figures["broker_s3_vs_memory_produce_ratio"],
            "broker_source": f"{BROKER_RESULTS.relative_to(REPO)} (bench/broker.py, "
                             f"{figures['messages']} messages on {figures['cpu_cores']} cores), reused"}


def bench_settings(directory: Path, stack: EmbeddedStack) -> Settings:
    return Settings(
        _env_file=None, data_dir=directory / "client", kafka_bootstrap=stack.kafka_bootstrap,
        postgres_dsn=stack.postgres_dsn, s3_endpoint=stack.s3_endpoint, s3_access_key=stack.s3_access_key,
        s3_secret_key=stack.s3_secret_key, topic_partitions=PARTITIONS, consumer_group="voxflow-bench-load",
        engine="espeak", refinement_steps=0, web_port=0, synthesis_rate_limit=1_000_000,
        # consents without a spoken statement: load, not consent, is measured here
        require_spoken_consent=False,
        # shared by every worker process: each keeps its own data dir, so nothing is generated twice at once
        watermark_key_hex=secrets.token_hex(32), audit_key_hex=secrets.token_hex(32),
        worker_key_hex=secrets.token_hex(32), master_keys_dir=directory / "master-keys",
    )


async def prepare(settings: Settings) -> None:
    await prepare_stack(settings)
    await register_tenant(settings, TENANT)


async def run(settings: Settings, sizes: Sizes, directory: Path, parts: list[str]) -> dict:
    await prepare(settings)
    # a shared machine's load moves between phases: the 1- and 2-worker figures are only comparable at a like load
    load_after, figures = {}, {}
    async with ResultWatcher(settings.kafka_bootstrap, DEAD_LETTER) as dead_letters:
        if "control" in parts:
            figures |= await measure_control(settings, sizes, directory)
            load_after["control"] = _load_average()
            _say(figures, "control_events_per_s")
        voices = voices_on_every_partition(sizes.adaptations, "load-voice")
        if "adaptation" in parts:
            figures |= await measure_adaptation(settings, voices, directory)
            load_after["adaptation"] = _load_average()
            _say(figures, "adaptation_total_s", "adaptation_peak_memory_mb")
        if "synthesis" in parts:
            if "adaptation" not in parts:  # the voices spoken with, not measured
                await measure_adaptation(settings, voices[:sizes.synthesis_voices], directory)
            figures |= await measure_synthesis(settings, sizes, voices[:sizes.synthesis_voices], directory)
            load_after["synthesis"] = _load_average()
            _say(figures, "synthesis_requests_per_s_1_worker", "synthesis_requests_per_s_2_workers", "scale_out_ratio",
                 "synthesis_latency_p50_s", "synthesis_latency_p95_s", "synthesis_latency_p99_s")
        if "voice_search" in parts:
            figures |= await measure_voice_search(settings, sizes)
            load_after["voice_search"] = _load_average()
            _say(figures, "voice_search_p95_ms", "voice_search_recall_at_1", "voice_search_uses_hnsw_index")
        dead = await dead_letters.wait_until(lambda e: True, 10 ** 9, timeout_s=2.0)
    figures["dead_letters"] = [f"{e.original_topic}: {e.reason}: {e.error[:200]}" for e in dead]
    figures["load_average_1m_after"] = load_after
    return figures


def _load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _say(figures: dict, *keys: str) -> None:
    for key in keys:
        print(f"{key:>38}: {figures[key]}  ({os.cpu_count()} cores)", flush=True)


def report(figures: dict, sizes: Sizes) -> dict:
    goals = {
        "control_events_per_s >= 2000": figures["control_events_per_s"] >= 2000,
        "scale_out_ratio >= 1.6": figures["scale_out_ratio"] >= 1.6,
        "synthesis_latency_p95_s <= 1.0": figures["synthesis_latency_p95_s"] <= 1.0,
        "adaptation_peak_memory_mb <= 1024": figures["adaptation_peak_memory_mb"] <= 1024,
        "voice_search_p95_ms <= 50": figures["voice_search_p95_ms"] <= 50,
    }
    keys = ("control_events_per_s", "synthesis_requests_per_s_1_worker", "synthesis_requests_per_s_2_workers",
            "scale_out_ratio", "synthesis_latency_p50_s", "synthesis_latency_p95_s", "synthesis_latency_p99_s")
    result = {key: figures[key] for key in keys}
    result["adaptation_50_total_s"] = figures["adaptation_total_s"]
    result["adaptation_peak_memory_mb"] = figures["adaptation_peak_memory_mb"]
    result["voice_search_p95_ms"] = figures["voice_search_p95_ms"]
    result |= broker_ratio()
    return {**result, "cpu_count": os.cpu_count(),
            "sizes": asdict(sizes), "goals": goals,
            "details": {k: v for k, v in figures.items() if k not in result and k != "adaptation_total_s"}}


def figures_kept_from(previous: dict, parts: list[str]) -> dict:
    """The figures of ``previous`` (a result this script wrote) for the parts not run again, named as ``run`` names them."""
    figures = {**previous["details"],
               **{k: v for k, v in previous.items() if k not in ("details", "goals", "sizes", "cpu_count")}}
    figures["adaptation_total_s"] = figures.pop("adaptation_50_total_s")
    figures["kept_from_previous_run"] = [part for part in PARTS if part not in parts]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every part at reduced sizes (a few minutes)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load.json")
    parser.add_argument("--only", type=lambda names: names.split(","), default=list(PARTS),
                        help=f"comma-separated parts to run ({', '.join(PARTS)}); the others' figures are kept "
                             "from --out")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    kept = {} if set(args.only) >= set(PARTS) else figures_kept_from(json.loads(args.out.read_text()), args.only)
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-load-") as name:
        directory = Path(name)
        stack = EmbeddedStack(directory / "stack", broker_port=free_port(), postgres_port=free_port(),
                              s3_port=free_port())
        stack.up()
        try:
            figures = kept | asyncio.run(run(bench_settings(directory, stack), sizes, directory, args.only))
        finally:
            stack.down()
    result = report(figures, sizes)
    print(f"{'broker_s3_vs_memory_produce_ratio':>38}: {result['broker_s3_vs_memory_produce_ratio']}  "
          f"({result['broker_source']})")
    for goal, met in result["goals"].items():
        print(f"{goal:>38}: {'met' if met else 'NOT met'}  ({os.cpu_count()} cores)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
