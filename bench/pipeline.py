"""Pipeline latency on the embedded stack: what a stage hop costs, and request → completed for real clones.

    .venv/bin/python bench/pipeline.py [--requests 5] [--transport voxflow|kafka] [--out bench/results/pipeline.json]

Runs the worker in-process against a fresh embedded stack in a temporary directory, with a consenting
real voice (Asterisk prompts). Measures, one request at a time so nothing queues:
- `rejection_round_trip_s`: synthesis.requested for an unknown voice → synthesis.failed (one stage hop);
- `latency_s` / `first_chunk_latency_s`: synthesis.requested → synthesis.completed / first chunk_ready,
  for a two-sentence text (about 5 s of speech), scored with Whisper and DNSMOS like every request;
- `rtf`: compute seconds per second of speech reported by the synthesis stage.
Prints medians and writes them (with every sample) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from infra.embedded import EmbeddedStack  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.speech_assets import reference_utterance  # noqa: E402
from processors.audio.codec_quality import encode_wav  # noqa: E402
from schemas.events import AdaptationRequested, SynthesisRequested  # noqa: E402
from streams.client import upload_sample  # noqa: E402
from voxflow.envelopes import signed_consent  # noqa: E402
from streams.results import ResultWatcher  # noqa: E402
from streams.session import client_session  # noqa: E402
from streams.topics import RESULTS  # noqa: E402
from streams.worker import VoxflowWorker  # noqa: E402

TEXT = "The museum opens at nine in the morning. Tickets can be bought at the door."
TENANT = "bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def measure(settings: Settings, requests: int) -> dict:
    async with VoxflowWorker(settings), client_session(settings) as session, \
            ResultWatcher(settings.kafka_bootstrap, RESULTS) as results:
        voice = await _ready_voice(session, results)
        rejections = [await _round_trip(session, results, "no-such-voice") for _ in range(requests * 2)]
        clones = [await _clone(session, results, voice) for _ in range(requests)]
    return {
        "requests": requests,
        "transport": settings.faust_transport,
        "rejection_round_trip_s": _median(rejections),
        "latency_s": _median([c["latency_s"] for c in clones]),
        "first_chunk_latency_s": _median([c["first_chunk_latency_s"] for c in clones]),
        "rtf": _median([c["rtf"] for c in clones]),
        # the worker runs in this process with every model it uses loaded; broker and Postgres are children
        "worker_peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "samples": {"rejection_round_trip_s": rejections, "clones": clones},
    }


async def _ready_voice(session, results) -> str:
    voice, correlation = f"bench-{uuid.uuid4().hex[:6]}", uuid.uuid4()
    uploads = [await upload_sample(session.store, session.publisher, data=encode_wav(*reference_utterance(12, offset=i)),
                                   filename="s.wav", tenant_id=TENANT, voice_id=voice, correlation_id=correlation)
               for i in range(2)]
    await session.publisher.publish(signed_consent(
        Ed25519PrivateKey.generate(), tenant_id=TENANT, voice_id=voice, owner_id="bench", purposes=["demo"],
        languages=["en"], statement_text="I consent.", correlation_id=correlation))
    await session.publisher.publish(AdaptationRequested(tenant_id=TENANT, voice_id=voice, correlation_id=correlation,
                                                        sample_ids=[u.sample_id for u in uploads]))
    ready = await results.wait_for(correlation, {"voice.ready", "adaptation.failed"}, 1, timeout_s=300)
    if not ready or ready[0].type != "voice.ready":
        raise SystemExit(f"voice did not become ready: {ready}")
    return voice


async def _round_trip(session, results, voice: str) -> float:
    request = SynthesisRequested(tenant_id=TENANT, voice_id=voice, text="hello", purpose="demo")
    started = time.perf_counter()
    await session.publisher.publish(request)
    await results.wait_until(lambda e: getattr(e, "synthesis_id", None) == request.synthesis_id, timeout_s=60)
    return round(time.perf_counter() - started, 3)


async def _clone(session, results, voice: str) -> dict:
    request = SynthesisRequested(tenant_id=TENANT, voice_id=voice, text=TEXT, purpose="demo")
    await session.publisher.publish(request)
    done = await results.wait_until(lambda e: e.type in {"synthesis.completed", "synthesis.failed"}
                                    and e.synthesis_id == request.synthesis_id, timeout_s=300)
    if not done or done[0].type != "synthesis.completed":
        raise SystemExit(f"synthesis did not complete: {done}")
    first = await results.wait_until(lambda e: e.type == "synthesis.chunk_ready"
                                     and e.synthesis_id == request.synthesis_id and e.chunk_index == 0, timeout_s=5)
    return {"latency_s": done[0].latency_s, "first_chunk_latency_s": first[0].latency_s, "rtf": done[0].rtf}


def _median(values) -> float:
    return round(float(statistics.median(values)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--transport", choices=["voxflow", "kafka"], default="voxflow")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pipeline.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as directory:
        stack = EmbeddedStack(Path(directory), broker_port=free_port(), postgres_port=free_port(), s3_port=free_port())
        stack.up()
        try:
            settings = Settings(_env_file=None, data_dir=Path(directory), kafka_bootstrap=stack.kafka_bootstrap,
                                postgres_dsn=stack.postgres_dsn, s3_endpoint=stack.s3_endpoint, web_port=0,
                                faust_transport=args.transport, synthesis_rate_limit=1000,
                                require_spoken_consent=False)  # latency is measured here, not consent
            figures = asyncio.run(measure(settings, args.requests))
        finally:
            stack.down()
    for key in ("transport", "rejection_round_trip_s", "latency_s", "first_chunk_latency_s", "rtf", "worker_peak_memory_mb"):
        print(f"{key:>24}: {figures[key]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
