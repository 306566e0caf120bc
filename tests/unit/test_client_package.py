"""The `voxflow` client package: importable without the worker, its events signed as the pipeline checks them,
its waits ending in the typed outcome or a timeout that names what it waited for, its downloads signed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.errors import DataKeyDestroyed
from infra.repositories import TenantKey
from infra.settings import Settings
from processors.trust.consent import (private_key_to_raw, raw_public_key, verify_consent_signature,
                                      verify_revocation_signature)
from processors.trust.erasure import signed_by_an_owner
from processors.trust.signing import EventSigner
from schemas import parse_event
from schemas.events import (AdaptationProgress, AdaptationRequested, DeadLettered, SynthesisChunkReady,
                            SynthesisCompleted, SynthesisFailed, SynthesisRequested, VoiceReady)
from streams.authentication import ProducerAuthenticator
from streams.delivery import OutputDelivery
from streams.metrics import WorkerMetrics
from streams.topics import TOPIC_OF
from streams.web import WebServer, create_web_app
from tests.unit.fakes import InMemoryStore, a_synthesis
from voxflow import (AsyncClient, BrokerUnreachable, Client, ClientConfig, ClientConfigError, DeliveryForbidden,
                     DeliveryUnauthorized, RequestDeadLettered, RequestFailed, ResultTimeout, SynthesisNotAvailable,
                     VoiceErased, schema)
from voxflow.client import succeeded
from voxflow.envelopes import DEAD_LETTER_TOPIC, RESULTS_TOPIC
from voxflow.envelopes import TOPIC_OF as CLIENT_TOPIC_OF
from voxflow.envelopes import consent_document
from voxflow.results import ResultFeed, expectation_for

REPOSITORY = Path(__file__).parents[2]
TENANT_KEY = Ed25519PrivateKey.generate()
TENANT = EventSigner(TENANT_KEY)
WORKER = EventSigner(Ed25519PrivateKey.generate())


def config(**overrides) -> ClientConfig:
    return ClientConfig(**{"tenant_id": "acme", "tenant_key": private_key_to_raw(TENANT_KEY), **overrides})


# --- the package on its own -------------------------------------------------------------------


def test_the_package_imports_without_the_worker():
    probe = ("import json, sys; from voxflow import Client, AsyncClient; "
             "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=REPOSITORY, capture_output=True,
                                       text=True, check=True).stdout)

    assert {"voxflow", "schemas"} <= set(loaded)
    assert not {"streams", "infra", "faust", "asyncpg", "torch", "cli"} & set(loaded)


def test_the_package_ships_the_committed_json_schemas():
    shipped = {p.name: p.read_text() for p in (REPOSITORY / "voxflow" / "schemas").iterdir()}
    committed = {p.name: p.read_text() for p in (REPOSITORY / "docs" / "schemas").iterdir()}

    differing = sorted(name for name in shipped.keys() | committed.keys() if shipped.get(name) != committed.get(name))
    assert differing == [], ("voxflow/schemas and docs/schemas differ; regenerate both: `voxflow schemas export "
                             "docs/schemas && voxflow schemas export voxflow/schemas`")


def test_a_schema_is_looked_up_by_event_type():
    assert {"text", "purpose", "voice_id"} <= set(schema("synthesis.requested")["required"])
    with pytest.raises(LookupError, match="synthesis.requested"):
        schema("synthesis.wished")


def test_each_request_goes_to_the_topic_the_pipeline_reads_it_from():
    assert CLIENT_TOPIC_OF == {event_type: TOPIC_OF[event_type] for event_type in CLIENT_TOPIC_OF}


# --- configuration ----------------------------------------------------------------------------


def test_the_environment_configures_the_client_as_it_does_the_cli(tmp_path):
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "acme.key").write_text(private_key_to_raw(TENANT_KEY).hex())
    environment = {"VOXFLOW_DATA_DIR": str(tmp_path), "VOXFLOW_TENANT_ID": "acme", "VOXFLOW_S3_SECURE": "true",
                   "VOXFLOW_WEB_PORT": "7000",
                   "VOXFLOW_WORKER_PUBLIC_KEY": base64.b64encode(WORKER.public_key).decode()}

    configured = ClientConfig.from_environment(environment)
    settings = Settings(_env_file=None)

    assert configured.tenant_key == private_key_to_raw(TENANT_KEY) and configured.s3_secure
    assert configured.delivery_url == "http://127.0.0.1:7000" and configured.worker_public_key == WORKER.public_key
    assert (configured.kafka_bootstrap, configured.s3_endpoint, configured.s3_bucket, configured.s3_access_key) == (
        settings.kafka_bootstrap, settings.s3_endpoint, settings.s3_bucket, settings.s3_access_key)
    assert "tenant_key" not in repr(configured) and configured.s3_secret_key not in repr(configured)


def test_a_missing_tenant_key_is_named(tmp_path):
    with pytest.raises(ClientConfigError, match=r"tenants/shop\.key"):
        ClientConfig.from_environment({"VOXFLOW_DATA_DIR": str(tmp_path), "VOXFLOW_TENANT_ID": "shop"})
    with pytest.raises(ClientConfigError, match="32-byte"):
        ClientConfig(tenant_id="acme", tenant_key=b"short")


# --- what goes on the wire --------------------------------------------------------------------


class RecordingProducer:
    def __init__(self, log: list):
        self.log = log

    async def send_and_wait(self, topic, *, value, key, headers):
        self.log.append(("sent", topic, key, value, headers))


class RecordingUploads:
    def __init__(self, log: list):
        self.log = log

    async def put(self, key, data):
        self.log.append(("put", key, data))


class RegisteredKeys:
    """The operator registered the tenant's key, and no other."""

    async def get(self, *, key_id):
        if key_id != TENANT.key_id:
            return None
        return TenantKey(TENANT.key_id, "acme", TENANT.public_key, datetime.now(timezone.utc), None)


@pytest.fixture
def wire():
    """An AsyncClient whose producer and store only record what it sends and puts, in order."""
    log: list = []
    client = AsyncClient(config())
    client._producer, client._uploads = RecordingProducer(log), RecordingUploads(log)
    return client, log


async def test_an_upload_puts_the_audio_before_announcing_it_signed_by_the_tenant(wire):
    client, log = wire

    uploaded = await client.upload_sample("narrator-1", b"RIFF-audio", filename="Take 1.WAV")

    (_, key, data), (_, topic, message_key, value, headers) = log
    assert (key, data) == (uploaded.object_key, b"RIFF-audio") and key.startswith("uploads/acme/narrator-1/")
    assert key.endswith(".wav") and (topic, message_key) == ("voxflow.ingest", b"narrator-1")
    assert parse_event(value) == uploaded
    await ProducerAuthenticator(RegisteredKeys(), WORKER.public_key).authenticate(uploaded, value, headers)


async def test_consent_revocation_and_erasure_carry_the_owners_signatures(wire):
    client, log = wire
    owner = Ed25519PrivateKey.generate()

    granted = await client.grant_consent(owner, "narrator-1", "ada", ["narration"], ["en"], "I consent.",
                                         b"RIFF-spoken")
    revoked = await client.revoke_consent(owner, "narrator-1", granted.consent_id)
    erasure = await client.erase_voice(owner, "narrator-1")

    verify_consent_signature(consent_document(granted), base64.b64decode(granted.signature), raw_public_key(owner))
    verify_revocation_signature(str(revoked.consent_id), revoked.revoked_at, base64.b64decode(revoked.signature),
                                raw_public_key(owner))
    assert signed_by_an_owner(base64.b64decode(erasure.owner_signature), [raw_public_key(owner)],
                              erasure_id=str(erasure.erasure_id), tenant_id="acme", voice_id="narrator-1",
                              requested_at=erasure.requested_at)
    assert log[0] == ("put", granted.statement_audio_key, b"RIFF-spoken")
    assert [entry[1] for entry in log[1:]] == ["voxflow.consent", "voxflow.consent", "voxflow.erasure"]


async def test_a_synthesis_request_carries_its_controls_and_validates_them(wire):
    client, log = wire

    request = await client.synthesize("narrator-1", "Hello there.", speed=1.2, emotion="happy",
                                      voice_mix={"narrator-1": 0.5, "narrator-2": 0.5})

    sent = parse_event(log[-1][3])
    assert sent == request and sent.controls.speed == 1.2 and len(sent.voice_mix) == 2
    with pytest.raises(ValueError, match="speed"):
        await client.synthesize("narrator-1", "Too fast.", speed=9)


def test_a_client_without_a_broker_says_so_and_leaves_no_thread_behind():
    with pytest.raises(BrokerUnreachable, match="127.0.0.1:1"):
        with Client(config(kafka_bootstrap="127.0.0.1:1", broker_timeout_s=3)):
            pass

    assert "voxflow-client" not in {thread.name for thread in threading.enumerate()}


# --- waiting for results ----------------------------------------------------------------------


class FakeConsumer:
    """The results and dead-letter topics, one partition each, fed by the test."""

    def __init__(self):
        self.arriving: asyncio.Queue = asyncio.Queue()

    async def start(self):
        pass

    async def stop(self):
        pass

    async def topics(self):
        return {RESULTS_TOPIC, DEAD_LETTER_TOPIC}

    def partitions_for_topic(self, topic):
        return {0}

    def assign(self, partitions):
        pass

    async def seek_to_end(self, *partitions):
        pass

    async def position(self, partition):
        return 0

    async def getmany(self, timeout_ms):
        try:
            record = await asyncio.wait_for(self.arriving.get(), timeout_ms / 1000)
        except TimeoutError:
            return {}
        return {TopicPartition(RESULTS_TOPIC, 0): [record]}

    def deliver(self, event, signer: EventSigner = WORKER):
        value = event.to_bytes()
        self.arriving.put_nowait(SimpleNamespace(value=value, headers=signer.headers_for(value)))


@pytest.fixture
async def results():
    consumer = FakeConsumer()
    feed = ResultFeed(consumer, bootstrap="fake", tenant_id="acme", worker_public_key=WORKER.public_key,
                      broker_timeout_s=1)
    await feed.start()
    yield consumer, feed
    await feed.stop()


def synthesis_request(tenant_id: str = "acme") -> SynthesisRequested:
    return SynthesisRequested(tenant_id=tenant_id, voice_id="narrator-1", text="One. Two.", purpose="narration")


def chunk_of(request: SynthesisRequested, index: int) -> SynthesisChunkReady:
    return request.follow_up(SynthesisChunkReady, discriminator=str(index), synthesis_id=request.synthesis_id,
                             chunk_index=index, chunk_count=2, object_key=f"syntheses/acme/narrator-1/{index}.wav",
                             sample_rate_hz=24000, duration_s=1.0, latency_s=0.4)


def completion_of(request: SynthesisRequested) -> SynthesisCompleted:
    return request.follow_up(SynthesisCompleted, synthesis_id=request.synthesis_id, chunk_count=2, duration_s=2.0,
                             object_key=f"syntheses/{request.tenant_id}/narrator-1/output.wav", sample_rate_hz=24000,
                             rtf=0.1, latency_s=1.0, watermark_payload="ab")


async def test_a_wait_reports_progress_and_returns_the_typed_ending(results):
    consumer, feed = results
    request, progress = synthesis_request(), []
    for event in (chunk_of(request, 0), chunk_of(request, 1), completion_of(request)):
        consumer.deliver(event)

    ending = await feed.wait(expectation_for(request), timeout_s=5, on_progress=progress.append)

    assert isinstance(ending, SynthesisCompleted) and ending.synthesis_id == request.synthesis_id
    assert [event.chunk_index for event in progress] == [0, 1]


def voice_of(request: AdaptationRequested, tier: str) -> VoiceReady:
    return request.follow_up(VoiceReady, discriminator=tier, adaptation_id=request.adaptation_id, tier=tier,
                             profile_version=1 if tier == "instant" else 2, sample_count=2, speech_s=18.0,
                             embedding_spread=0.1, f0_median_hz=120.0, adaptation_s=3.0)


async def test_a_wait_for_the_refined_voice_passes_the_instant_one_and_reports_the_fit(results):
    consumer, feed = results
    request, progress = AdaptationRequested(tenant_id="acme", voice_id="narrator-1"), []
    fit = request.follow_up(AdaptationProgress, adaptation_id=request.adaptation_id, tier="refined", percent=50,
                            step=2, steps=4)
    for event in (voice_of(request, "instant"), fit, voice_of(request, "refined")):
        consumer.deliver(event)

    refined = await feed.wait(expectation_for(request), timeout_s=5, where=lambda e: e.tier == "refined",
                              on_progress=progress.append)
    first_of_journey = await feed.wait(expectation_for(request.correlation_id, "voice.ready"), timeout_s=5)

    assert (refined.tier, refined.profile_version, first_of_journey.tier) == ("refined", 2, "instant")
    assert progress == [fit]


async def test_a_wait_that_times_out_names_what_it_waited_for(results):
    _, feed = results
    request = synthesis_request()

    with pytest.raises(ResultTimeout) as timed_out:
        await feed.wait(expectation_for(request), timeout_s=0.3)

    assert str(timed_out.value) == (f"no synthesis.completed or synthesis.failed of synthesis.requested "
                                    f"{request.synthesis_id} within 0.3 s")
    assert isinstance(timed_out.value, TimeoutError)


async def test_results_forged_or_of_another_tenant_are_not_taken(results):
    consumer, feed = results
    request, elsewhere = synthesis_request(), synthesis_request("other")
    consumer.deliver(completion_of(request), signer=TENANT)
    consumer.deliver(completion_of(elsewhere.model_copy(update={"synthesis_id": request.synthesis_id})))

    with pytest.raises(ResultTimeout):
        await feed.wait(expectation_for(request), timeout_s=0.5)
    consumer.deliver(completion_of(request))
    assert (await feed.wait(expectation_for(request), timeout_s=5)).tenant_id == "acme"


async def test_a_request_the_pipeline_refused_unread_raises_with_the_reason(results):
    consumer, feed = results
    request = synthesis_request()
    consumer.deliver(request.follow_up(DeadLettered, original_topic="voxflow.synthesis", partition=0, offset=7,
                                       reason="Unauthenticated", error="signed by key 0f, which no operator registered",
                                       payload_text="{}"))

    with pytest.raises(RequestDeadLettered, match="which no operator registered") as refused:
        await feed.wait(expectation_for(request), timeout_s=5)
    assert refused.value.reason == "Unauthenticated"


def test_a_failed_step_of_a_journey_raises_with_its_reason():
    request = synthesis_request()
    failed = request.follow_up(SynthesisFailed, synthesis_id=request.synthesis_id, reason="consent revoked at 12:00")

    with pytest.raises(RequestFailed, match="synthesis.failed for voice narrator-1: consent revoked at 12:00") as error:
        succeeded(failed)
    assert error.value.event == failed and succeeded(completion_of(request)).type == "synthesis.completed"


def test_a_journey_wait_must_name_its_endings():
    with pytest.raises(ValueError, match="name the event types"):
        expectation_for(uuid.uuid4())


# --- delivery ---------------------------------------------------------------------------------


class Syntheses:
    def __init__(self, rows):
        self.rows = rows

    async def get(self, *, synthesis_id):
        return self.rows.get(synthesis_id)


class ErasedStore(InMemoryStore):
    async def get(self, key):
        raise DataKeyDestroyed(f"{key}: the voice was erased")


@contextlib.asynccontextmanager
async def delivery_endpoint(rows: dict, store: InMemoryStore):
    """The worker's web app with a real OutputDelivery over in-memory syntheses; yields its base url."""
    delivery = OutputDelivery(Syntheses(rows), RegisteredKeys(), store)
    server = WebServer(create_web_app(WorkerMetrics(), {}, delivery=delivery), "127.0.0.1", 0)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


def row(tenant_id="acme", status="completed"):
    return a_synthesis(tenant_id=tenant_id, status=status, object_key=f"syntheses/{tenant_id}/v/{uuid.uuid4()}.wav")


async def test_a_download_is_signed_by_the_tenant_and_refusals_are_named():
    mine, theirs, pending = (uuid.uuid4() for _ in range(3))
    rows = {mine: row(), theirs: row("other"), pending: row(status="chunking")}
    store = InMemoryStore({rows[mine].object_key: b"RIFF-watermarked"})

    async with delivery_endpoint(rows, store) as url:
        client, stranger = AsyncClient(config(delivery_url=url)), AsyncClient(config(delivery_url=url,
                                                                                     tenant_key=bytes(32)))
        assert await client.download(mine, timeout_s=5) == b"RIFF-watermarked"
        with pytest.raises(DeliveryForbidden, match="another tenant"):
            await client.download(theirs, timeout_s=5)
        with pytest.raises(SynthesisNotAvailable, match="not completed") as pending_refusal:
            await client.download(pending, timeout_s=5)
        with pytest.raises(DeliveryUnauthorized, match="not a registered"):
            await stranger.download(mine, timeout_s=5)
    assert pending_refusal.value.status == 404


async def test_a_download_of_an_erased_voice_says_so():
    synthesis_id = uuid.uuid4()

    async with delivery_endpoint({synthesis_id: row()}, ErasedStore()) as url:
        with pytest.raises(VoiceErased, match="erased") as refused:
            await AsyncClient(config(delivery_url=url)).download(synthesis_id, timeout_s=5)
    assert refused.value.status == 410
