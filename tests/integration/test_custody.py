"""`voxflow verify FILE` and `voxflow audit replay --since` on the real stack: an output's chain of custody holds,
and breaks for the right reason once a byte of its audio flips or its manifest is stripped; the audit topic
matches Postgres until a row is deleted there."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from infra.repositories import AUDIT_CHAIN_LOCK_ID
from processors.audio.codec_quality import decode_audio, encode_wav
from streams import topics
from streams.results import ResultWatcher
from streams.session import database
from tests.journeys import consented_voice, eventually, synthesise

pytestmark = pytest.mark.integration

VOXFLOW = Path(sys.executable).parent / "voxflow"


@pytest.fixture(scope="module")
def pipeline_settings(stack_settings):
    return stack_settings.model_copy(update={"audit_checkpoint_interval_s": 1.0, "synthesis_rate_limit": 1000})


def environment_of(settings) -> dict[str, str]:
    """The VOXFLOW_ variables that make a `voxflow` process use these settings."""
    variables = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is not None:
            text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
            variables[f"VOXFLOW_{name.upper()}"] = text
    return {**os.environ, **variables}


async def voxflow(settings, *args: str) -> tuple[int, str]:
    """Run the `voxflow` command as a user would; its exit status and what it printed."""
    process = await asyncio.create_subprocess_exec(str(VOXFLOW), *args, env=environment_of(settings),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await process.communicate()
    assert process.returncode in (0, 1), stderr.decode()
    return process.returncode, stdout.decode()


async def verified(settings, path: Path) -> tuple[int, dict[str, dict]]:
    status, output = await voxflow(settings, "verify", str(path), "--json")
    report = json.loads(output)
    return status, {link["name"]: link for link in report["links"]}


@pytest.fixture(scope="module")
async def output_file(pipeline_settings, session, tmp_path_factory):
    """A completed output's file, once a signed checkpoint covers its completion."""
    async with ResultWatcher(pipeline_settings.kafka_bootstrap, topics.RESULTS) as results:
        correlation, consent, ready = await consented_voice(session, results, voice_id=f"custody-{uuid.uuid4().hex[:6]}")
        completed = await synthesise(session, results, voice_id=ready.voice_id, correlation=correlation)
    assert completed.type == "synthesis.completed", completed
    path = tmp_path_factory.mktemp("custody") / "output.wav"
    path.write_bytes(await session.store.get(completed.object_key))
    return path, completed, consent


async def test_verify_passes_every_link_of_an_untouched_output(pipeline_settings, output_file):
    path, completed, consent = output_file
    status, links = await eventually(lambda: verified(pipeline_settings, path), lambda result: result[0] == 0,
                                     timeout_s=60)

    assert status == 0, links
    assert all(link["ok"] for link in links.values())
    assert completed.watermark_payload in links["watermark"]["detail"]
    assert str(completed.synthesis_id) in links["synthesis"]["detail"]
    assert str(consent.consent_id) in links["consent_signature"]["detail"]
    assert "checkpoint at sequence" in links["audit_checkpoint"]["detail"]


async def test_verify_fails_on_the_content_credentials_after_one_flipped_byte(pipeline_settings, output_file, tmp_path):
    path, _, _ = output_file
    altered = bytearray(path.read_bytes())
    altered[altered.index(b"data") + 4000] ^= 0x01  # a sample's low bits, well inside the audio
    flipped = tmp_path / "flipped.wav"
    flipped.write_bytes(bytes(altered))

    status, links = await verified(pipeline_settings, flipped)

    assert status == 1
    assert [name for name, link in links.items() if not link["ok"]] == ["content_credentials"]
    assert "changed after the C2PA manifest was signed" in links["content_credentials"]["detail"]


async def test_verify_fails_when_the_manifest_is_stripped_yet_the_watermark_names_the_synthesis(
        pipeline_settings, output_file, tmp_path):
    path, completed, _ = output_file
    decoded = decode_audio(path.read_bytes())
    stripped = tmp_path / "stripped.wav"
    stripped.write_bytes(encode_wav(decoded.samples, decoded.sample_rate_hz))

    status, output = await voxflow(pipeline_settings, "verify", str(stripped))

    assert status == 1
    assert "FAILED content_credentials: no C2PA manifest" in output
    assert f"ok     synthesis: synthesis {completed.synthesis_id}" in output
    assert output.strip().endswith("chain of custody is broken")


async def test_audit_replay_finds_no_difference_then_names_a_row_deleted_from_postgres(pipeline_settings, output_file):
    since = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    # the audit stage trails the topic by moments: once it caught up, the copies agree
    status, output = await eventually(lambda: voxflow(pipeline_settings, "audit", "replay", "--since", since),
                                      lambda result: result[0] == 0)
    assert (status, json.loads(output)["differences"]) == (0, []), output

    async with database(pipeline_settings) as pool, pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", AUDIT_CHAIN_LOCK_ID)  # the worker's appends wait
        try:
            row = await connection.fetchrow("SELECT * FROM audit_log ORDER BY sequence DESC LIMIT 1")
            await connection.execute("DELETE FROM audit_log WHERE sequence = $1", row["sequence"])
            status, output = await voxflow(pipeline_settings, "audit", "replay", "--since", since)
            await connection.execute(
                "INSERT INTO audit_log (sequence, event_id, previous_hash, record_hash, record, recorded_at)"
                " VALUES ($1,$2,$3,$4,$5,$6)", row["sequence"], row["event_id"], row["previous_hash"],
                row["record_hash"], row["record"], row["recorded_at"])
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", AUDIT_CHAIN_LOCK_ID)

    differences = json.loads(output)["differences"]
    assert status == 1
    assert [(d["kind"], d["event_id"]) for d in differences] == [("missing_in_postgres", str(row["event_id"]))]
