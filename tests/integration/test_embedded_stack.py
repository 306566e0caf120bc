"""The embedded stack on real processes: the rclone S3 server, a Tansu broker on it and PostgreSQL 18 under a
temporary data dir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.embedded import BROKER_BUCKET, EmbeddedStack, StackStatus
from infra.errors import PortInUseError, PortMismatchError
from tests.conftest import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
# Tansu holds a group's first JoinGroup for half the session timeout; a short one keeps the test quick.
CONSUMER_SESSION_TIMEOUT_MS = 2000
CONSUMER_HEARTBEAT_INTERVAL_MS = 500


def start_in_another_process(stack: EmbeddedStack) -> None:
    """`up()` from a short-lived interpreter, as `voxflow stack up` does from the CLI."""
    script = (
        "import sys; from pathlib import Path; from infra.embedded import EmbeddedStack; "
        "EmbeddedStack(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])).up()"
    )
    subprocess.run([sys.executable, "-c", script, str(stack.data_dir), str(stack.broker_port),
                    str(stack.postgres_port), str(stack.s3_port)], cwd=REPO_ROOT, check=True, timeout=120)


def pids(status: StackStatus) -> tuple[int | None, int | None, int | None, int | None]:
    return status.s3.pid, status.broker.pid, status.postgres.pid, status.s3_preconditions.pid


def exited_pid() -> int:
    """The pid of a process that has already exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


async def execute(stack: EmbeddedStack, *statements: str) -> None:
    connection = await asyncpg.connect(stack.postgres_dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def fetch_value(stack: EmbeddedStack, query: str) -> object:
    connection = await asyncpg.connect(stack.postgres_dsn)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = EmbeddedStack(tmp_path_factory.mktemp("embedded"), broker_port=free_port(), postgres_port=free_port(),
                          s3_port=free_port())
    start_in_another_process(stack)
    yield stack
    stack.down()


def test_services_outlive_the_process_that_started_them(stack):
    status = stack.status()

    assert status.running
    assert status.broker.url == f"kafka://{stack.kafka_bootstrap}"
    assert status.postgres.url == stack.postgres_dsn
    assert status.s3.url == f"http://{stack.s3_endpoint}"
    # Another session: a Ctrl-C or hang-up in the terminal that ran `stack up` does not reach them.
    assert all(os.getsid(pid) != os.getsid(0) for pid in pids(status))


async def test_a_message_produced_to_the_broker_is_consumed_back(stack):
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    sent = {f"key-{n}".encode(): f"value-{n}".encode() for n in range(5)}
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        for key, value in sent.items():
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap, group_id=f"stack-test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest", session_timeout_ms=CONSUMER_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=CONSUMER_HEARTBEAT_INTERVAL_MS,
    )
    await consumer.start()
    received = {}
    try:
        while len(received) < len(sent):
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"nothing more after {len(received)} of {len(sent)} messages"
            received.update((record.key, record.value) for records in batches.values() for record in records)
    finally:
        await consumer.stop()

    assert received == sent


async def test_postgres_serves_the_voxflow_database_with_pgvector(stack):
    assert await fetch_value(stack, "select 1") == 1
    assert await fetch_value(stack, "select current_database()") == "voxflow"

    await execute(stack, "create extension if not exists vector")

    assert await fetch_value(stack, "select '[1, 2, 3]'::vector <-> '[1, 2, 5]'::vector") == pytest.approx(2.0)


def test_up_on_a_running_stack_changes_nothing(stack):
    before = stack.status()

    after = stack.up()

    assert after.running
    assert pids(after) == pids(before)


def test_up_with_other_ports_than_the_running_stack_is_refused(stack):
    moved = EmbeddedStack(stack.data_dir, broker_port=free_port(), postgres_port=stack.postgres_port,
                          s3_port=stack.s3_port)

    with pytest.raises(PortMismatchError, match="broker"):
        moved.up()
    assert stack.status().running


def test_a_port_taken_by_another_process_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken_port = squatter.getsockname()[1]
        stack = EmbeddedStack(tmp_path, broker_port=free_port(), postgres_port=taken_port, s3_port=free_port())

        with pytest.raises(PortInUseError, match=str(taken_port)):
            stack.up()

    status = stack.status()
    assert not status.s3.running
    assert not status.broker.running
    assert not status.postgres.running


async def test_down_stops_all_and_up_restarts_them_keeping_postgres_data(stack):
    before = stack.status()
    await execute(stack, "create table kept (note text)", "insert into kept values ('survives a restart')")

    stack.down()

    stopped = stack.status()
    assert not stopped.s3.running
    assert not stopped.broker.running
    assert not stopped.postgres.running
    assert not stopped.s3_preconditions.running
    # Binding the ports proves nothing listens on them any more.
    with socket.create_server(("127.0.0.1", stack.broker_port)), \
            socket.create_server(("127.0.0.1", stack.postgres_port)), \
            socket.create_server(("127.0.0.1", stack.s3_port)):
        pass

    (stack.data_dir / "broker.pid").write_text(f"{exited_pid()}\n")
    assert not stack.status().broker.running

    restarted = stack.up()
    assert restarted.running
    assert set(pids(restarted)).isdisjoint(pids(before))
    assert await fetch_value(stack, "select note from kept") == "survives a restart"


def test_the_s3_server_and_the_broker_listen_on_localhost_only(stack):
    status = stack.status()
    for service in (status.s3, status.broker, status.s3_preconditions):
        listening = {c.laddr.ip for c in psutil.Process(service.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}, service.name


def test_the_s3_endpoint_refuses_anonymous_requests(stack):
    """Unsigned requests get an S3 error (rclone answers 400 UnsupportedAlgorithm): no listing, no write."""
    bucket_url = f"http://{stack.s3_endpoint}/{BROKER_BUCKET}"
    for request in (urllib.request.Request(f"{bucket_url}?list-type=2"),
                    urllib.request.Request(f"{bucket_url}/planted", data=b"x", method="PUT")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (400, 403)
    assert not (stack.data_dir / "s3" / BROKER_BUCKET / "planted").exists()


def test_the_broker_writes_through_the_s3_preconditions_proxy(stack):
    status = stack.status()

    environment = psutil.Process(status.broker.pid).environ()

    assert environment["AWS_ENDPOINT"] == status.s3_preconditions.url
    assert f"{stack.s3_endpoint}" in psutil.Process(status.s3_preconditions.pid).cmdline()


def test_up_restarts_the_broker_with_its_proxy_when_the_proxy_is_gone(stack):
    before = stack.status()
    psutil.Process(before.s3_preconditions.pid).kill()
    psutil.Process(before.s3_preconditions.pid).wait(10)

    after = stack.up()

    assert after.running
    assert after.broker.pid != before.broker.pid
    assert psutil.Process(after.broker.pid).environ()["AWS_ENDPOINT"] == after.s3_preconditions.url


async def test_a_consumer_that_stops_cleanly_leaves_its_group_at_once(embedded_stack):
    """Tansu's first generation is 0, from which stock aiokafka never sends LeaveGroup (streams/transport.py)."""
    import streams.transport  # noqa: F401 — the fix under test

    topic, group = f"leave-{uuid.uuid4().hex[:6]}", f"leave-group-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=embedded_stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=embedded_stack.kafka_bootstrap, group_id=group,
                                    session_timeout_ms=30_000, heartbeat_interval_ms=1_000)
        await consumer.start()
        await consumer.getmany(timeout_ms=5_000)  # joined once partitions are assigned
        assert consumer.assignment()
        await consumer.stop()

        (described,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()

    members = described.groups[0][-1] if hasattr(described, "groups") else described[0][-1]
    assert members == [], f"{len(members)} member(s) still listed after a clean stop"
