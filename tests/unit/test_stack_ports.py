"""`voxflow stack` takes its ports and S3 keys from the settings (no services started)."""

from __future__ import annotations

import pytest

from infra.embedded import EmbeddedStack
from infra.errors import StackConfigError
from infra.settings import EMBEDDED_BROKER_PORT, EMBEDDED_POSTGRES_PORT, EMBEDDED_S3_PORT, Settings


def test_defaults_are_the_embedded_ports():
    stack = EmbeddedStack.from_settings(Settings(_env_file=None))

    assert (stack.broker_port, stack.postgres_port, stack.s3_port) == (
        EMBEDDED_BROKER_PORT, EMBEDDED_POSTGRES_PORT, EMBEDDED_S3_PORT)


def test_ports_and_keys_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("VOXFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
    monkeypatch.setenv("VOXFLOW_POSTGRES_DSN", "postgresql://postgres@localhost:25432/voxflow")
    monkeypatch.setenv("VOXFLOW_S3_ENDPOINT", "127.0.0.1:29000")
    monkeypatch.setenv("VOXFLOW_S3_ACCESS_KEY", "operator")
    monkeypatch.setenv("VOXFLOW_S3_SECRET_KEY", "operator-secret")

    stack = EmbeddedStack.from_settings(Settings(_env_file=None))

    assert (stack.broker_port, stack.postgres_port, stack.s3_port) == (29092, 25432, 29000)
    assert (stack.s3_access_key, stack.s3_secret_key) == ("operator", "operator-secret")
    assert stack.kafka_bootstrap == "127.0.0.1:29092" and stack.s3_endpoint == "127.0.0.1:29000"


@pytest.mark.parametrize("update", [
    {"kafka_bootstrap": "kafka:9092"},
    {"s3_endpoint": "minio:9000"},
    {"postgres_dsn": "postgresql://voxflow@127.0.0.1/voxflow"},
    {"s3_secure": True},
    {"s3_endpoint": "127.0.0.1:15432"},
    {"s3_access_key": "AK"},
])
def test_settings_the_embedded_stack_cannot_serve_are_refused(update):
    with pytest.raises(StackConfigError):
        EmbeddedStack.from_settings(Settings(_env_file=None).model_copy(update=update))
