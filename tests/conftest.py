"""Shared fixtures. Integration fixtures start real services: the embedded stack (infra.embedded): the
rclone S3 endpoint, the Tansu broker that keeps its log on it, and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from pathlib import Path

import pytest

from infra.settings import Settings

pytest_plugins = ["tests.conftest_speech"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def started_stack(directory: Path):
    """An embedded stack on free ports under ``directory``, up for the block and down after it."""
    from infra.embedded import EmbeddedStack

    stack = EmbeddedStack(directory, broker_port=free_port(), postgres_port=free_port(), s3_port=free_port())
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory):
    with started_stack(tmp_path_factory.mktemp("stack")) as stack:
        yield stack


def with_registered_tenants(settings: Settings, *tenant_ids: str) -> Settings:
    """``settings`` once each tenant has a signing key under its data dir, registered on its Postgres."""
    from streams.tenants import register_tenant

    async def register() -> None:
        for tenant_id in tenant_ids:
            await register_tenant(settings, tenant_id)

    asyncio.run(register())
    return settings


@pytest.fixture(scope="session")
def stack_settings(embedded_stack, tmp_path_factory) -> Settings:
    """Settings for a worker on the embedded stack's broker, Postgres and S3 endpoint (its own bucket),
    with the test tenants' signing keys registered."""
    from tests.journeys import TENANT

    settings = Settings(
        _env_file=None,
        data_dir=Path(tmp_path_factory.mktemp("worker")),
        kafka_bootstrap=embedded_stack.kafka_bootstrap,
        postgres_dsn=embedded_stack.postgres_dsn,
        s3_endpoint=embedded_stack.s3_endpoint,
        s3_access_key=embedded_stack.s3_access_key,
        s3_secret_key=embedded_stack.s3_secret_key,
        s3_bucket=f"voxflow-{uuid.uuid4().hex[:8]}",
        topic_partitions=2,
        consumer_group=f"voxflow-test-{uuid.uuid4().hex[:8]}",
        watermark_key_hex="11" * 32,
        audit_key_hex="22" * 32,
        # the modules share one database, so one tenant's window counts every module's requests; the fault
        # tests send 100 requests for one voice (test_pipeline and test_abuse set lower limits of their own)
        synthesis_rate_limit=1000,
        voice_synthesis_rate_limit=1000,
        synthesis_rate_window_s=60,
        # delivery, consent and audit are the point here, not voices: the fastest engine, no style fits
        # (tests/integration/test_voice_tiers.py runs Kokoro and the refined tier)
        engine="espeak",
        refinement_steps=0,
        # their consents carry no recording of anyone saying the consent phrase; the spoken-consent tests send one
        require_spoken_consent=False,
        web_port=0,  # several workers run at once (tests/faults/test_workers.py): each serves /metrics on its own port
    )
    return with_registered_tenants(settings, TENANT, "flooder")


@pytest.fixture(scope="module")
def pipeline_settings(stack_settings) -> Settings:
    """The settings of the module's worker and client session; a module overrides this fixture to change them."""
    return stack_settings


@pytest.fixture(scope="module")
async def worker(pipeline_settings):
    from streams.worker import VoxflowWorker

    async with VoxflowWorker(pipeline_settings) as running:
        yield running


@pytest.fixture(scope="module")
async def session(pipeline_settings, worker):
    from streams.session import client_session

    async with client_session(pipeline_settings) as opened:
        yield opened


@pytest.fixture
async def results(pipeline_settings, worker):
    from streams import topics
    from streams.results import ResultWatcher

    async with ResultWatcher(pipeline_settings.kafka_bootstrap, topics.RESULTS) as watcher:
        yield watcher


@pytest.fixture
async def dead_letters(pipeline_settings, worker):
    from streams import topics
    from streams.results import ResultWatcher

    async with ResultWatcher(pipeline_settings.kafka_bootstrap, topics.DEAD_LETTER) as watcher:
        yield watcher
