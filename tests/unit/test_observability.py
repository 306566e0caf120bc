"""/metrics counts what a stage processor did; /health names the dependency that fails. No services."""

import asyncio
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from infra.errors import DatabaseUnavailable, ObjectStoreUnavailable
from schemas.events import SampleRejected, SampleUploaded, SynthesisProduced
from streams.metrics import WorkerMetrics
from streams.processing import MessageLocation, RetryPolicy, StageProcessor
from streams.stages import Stage
from streams.web import WebServer, check_health, create_web_app
from tests.unit.test_processing import FakeInbox, RecordingPublisher, TrustingAuthenticator, uploaded

NO_WAITING = RetryPolicy(transient_retry_s=0.05, base_delay_s=0.001, max_delay_s=0.005)
LOCATION = MessageLocation("voxflow.ingest", 0, 7)


def processor_with(handler, metrics):
    context = SimpleNamespace(repos=SimpleNamespace(inbox=FakeInbox()))
    processor = StageProcessor(context, RecordingPublisher(), TrustingAuthenticator(), policy=NO_WAITING,
                               metrics=metrics)
    return processor, Stage("ingest", "voxflow.ingest", {SampleUploaded: handler})


async def rejecting(event, context):
    return [event.follow_up(SampleRejected, sample_id=event.sample_id, reasons=["too short"])]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def fetch(app, path):
    async with TestClient(TestServer(app)) as client:
        response = await client.get(path)
        return response.status, response.headers["Content-Type"], await response.text()


async def test_metrics_count_events_in_and_out_dead_letters_retries_and_handler_time():
    metrics = WorkerMetrics()
    processor, stage = processor_with(rejecting, metrics)
    for _ in range(3):
        await processor.process(stage, uploaded().to_bytes(), LOCATION)
    await processor.process(stage, b"\xff not json", LOCATION)

    async def down(event, context):
        raise ObjectStoreUnavailable("S3 endpoint unreachable")

    broken, broken_stage = processor_with(down, metrics)
    await broken.process(broken_stage, uploaded().to_bytes(), LOCATION)

    status, content_type, text = await fetch(create_web_app(metrics, {}), "/metrics")
    got = samples(text)
    assert status == 200 and content_type.startswith("text/plain")
    assert got[("voxflow_events_in_total", (("topic", "voxflow.ingest"), ("type", "sample.uploaded")))] == 4
    assert got[("voxflow_events_in_total", (("topic", "voxflow.ingest"), ("type", "unparsed")))] == 1
    assert got[("voxflow_events_out_total", (("topic", "voxflow.results"), ("type", "sample.rejected")))] == 3
    assert got[("voxflow_events_out_total", (("topic", "voxflow.deadletter"), ("type", "dead_letter")))] == 2
    assert got[("voxflow_dead_letters_total", (("reason", "MalformedEvent"),))] == 1
    assert got[("voxflow_dead_letters_total", (("reason", "GaveUpAfterRetries"),))] == 1
    assert got[("voxflow_retries_total", (("error", "ObjectStoreUnavailable"), ("stage", "ingest")))] >= 1
    handled = (("stage", "ingest"), ("type", "sample.uploaded"))
    assert got[("voxflow_handler_seconds_count", handled)] >= 4
    assert got[("voxflow_in_flight", (("stage", "ingest"),))] == 0


async def test_in_flight_counts_a_message_while_its_stage_works_on_it():
    metrics, started, release = WorkerMetrics(), asyncio.Event(), asyncio.Event()

    async def slow(event, context):
        started.set()
        await release.wait()
        return []

    processor, stage = processor_with(slow, metrics)
    working = asyncio.create_task(processor.process(stage, uploaded().to_bytes(), LOCATION))
    await started.wait()
    assert metrics.registry.get_sample_value("voxflow_in_flight", {"stage": "ingest"}) == 1
    release.set()
    await working
    assert metrics.registry.get_sample_value("voxflow_in_flight", {"stage": "ingest"}) == 0


def test_lag_is_the_messages_behind_the_high_water_mark_and_rtf_comes_from_outgoing_events():
    metrics = WorkerMetrics()
    metrics.lag("voxflow.synthesis", 1, offset=41, highwater=50)
    metrics.lag("voxflow.synthesis", 0, offset=3, highwater=None)  # not fetched yet: no figure
    metrics.event_out(SynthesisProduced(
        tenant_id="t", voice_id="v", synthesis_id=uuid.uuid4(), chunk_index=0, chunk_count=1,
        raw_key="syntheses/t/v/x.unmarked.wav", sample_rate_hz=24000, duration_s=1.5, rtf=0.25,
        requested_at=datetime.now(timezone.utc)))
    metrics.event_out(uploaded())  # no rtf field: nothing observed

    got = samples(metrics.render().decode())
    assert got[("voxflow_consumer_lag", (("partition", "1"), ("topic", "voxflow.synthesis")))] == 8
    assert ("voxflow_consumer_lag", (("partition", "0"), ("topic", "voxflow.synthesis"))) not in got
    assert got[("voxflow_synthesis_rtf_sum", (("type", "synthesis.produced"),))] == 0.25
    assert got[("voxflow_synthesis_rtf_count", (("type", "synthesis.produced"),))] == 1


async def passes():
    return None


async def test_health_is_200_when_every_dependency_answers():
    app = create_web_app(WorkerMetrics(), {"broker": passes, "postgres": passes, "s3": passes})
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/health")
        assert response.status == 200
        assert await response.json() == {"status": "ok", "broker": "ok", "postgres": "ok", "s3": "ok"}


async def test_health_is_503_naming_the_failing_dependency_and_why():
    async def postgres_down():
        raise DatabaseUnavailable("Postgres did not answer SELECT 1:\nConnectionRefusedError")

    app = create_web_app(WorkerMetrics(), {"broker": passes, "postgres": postgres_down, "s3": passes})
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/health")
        report = await response.json()
    assert response.status == 503
    assert report["status"] == "failing" and report["broker"] == report["s3"] == "ok"
    assert report["postgres"] == "DatabaseUnavailable: Postgres did not answer SELECT 1: ConnectionRefusedError"


async def test_a_check_that_hangs_fails_after_its_timeout():
    async def hangs():
        await asyncio.sleep(60)

    healthy, report = await check_health({"s3": hangs, "broker": passes}, timeout_s=0.05)
    assert not healthy and report == {"status": "failing", "s3": "no answer within 0.05 s", "broker": "ok"}


async def test_the_server_listens_on_an_ephemeral_port_when_asked_for_port_0():
    server = WebServer(create_web_app(WorkerMetrics(), {"broker": passes}), "127.0.0.1", 0)
    await server.start()
    try:
        assert server.port > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.0\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).split()[1] == b"200"
        writer.close()
    finally:
        await server.stop()
