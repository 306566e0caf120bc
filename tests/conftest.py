"""Shared fixtures. Integration fixtures start real services: the embedded stack (infra.embedded): the
rclone S3 endpoint, the Tansu broker that keeps its log on it, and PostgreSQL."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory):
    from infra.embedded import EmbeddedStack

    stack = EmbeddedStack(tmp_path_factory.mktemp("stack"), broker_port=free_port(), postgres_port=free_port(),
                          s3_port=free_port())
    stack.up()
    yield stack
    stack.down()


@pytest.fixture(scope="session")
def stack_settings(embedded_stack, tmp_path_factory) -> Settings:
    """Settings for a worker on the embedded stack's broker, Postgres and S3 endpoint (its own bucket)."""
    return Settings(
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
        synthesis_rate_limit=8,
        synthesis_rate_window_s=60,
        # delivery, consent and audit are the point here, not voices: the fastest engine, no style fits
        # (tests/integration/test_voice_tiers.py runs Kokoro and the refined tier)
        engine="espeak",
        refinement_steps=0,
        web_port=0,  # several workers run at once (tests/faults/test_workers.py): each serves /metrics on its own port
    )
