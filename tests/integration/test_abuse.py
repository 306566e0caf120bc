"""Abuse controls on the real services: `voxflow block` stops a tenant or a voice in every stage (with the
reason), `voxflow unblock` lets the next request through, deny patterns refuse texts by name, and a voice
has a rate window of its own."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from infra.repositories import VoiceRepository
from schemas.events import AdaptationRequested, SynthesisRequested
from streams import topics
from streams.auditing import read_audit_log
from streams.blocks import BLOCKS_CACHE_S
from streams.client import upload_sample
from streams.results import ResultWatcher
from streams.session import database
from tests.journeys import RESULT_TIMEOUT_S, TENANT, consented_voice, eventually, wav_of_real_speech

pytestmark = pytest.mark.integration

VOICE_RATE_LIMIT = 4
# enough sentences that a block placed after the first chunk lands while chunks are still being made
LONG_TEXT = " ".join(f"Here is sentence number {n} of a long reading for the block test." for n in range(1, 31))


@pytest.fixture(scope="module")
def pipeline_settings(stack_settings):
    return stack_settings.model_copy(update={"synthesis_rate_limit": 1000,
                                             "voice_synthesis_rate_limit": VOICE_RATE_LIMIT})


@pytest.fixture(scope="module")
async def voice(session, pipeline_settings):
    """A consented, adapted voice of the test tenant: (correlation id, voice id)."""
    async with ResultWatcher(pipeline_settings.kafka_bootstrap, topics.RESULTS) as results:
        correlation, _, ready = await consented_voice(session, results, voice_id=f"abuse-{uuid.uuid4().hex[:6]}")
    return correlation, ready.voice_id


async def voxflow(settings, *args: str) -> str:
    """Run the `voxflow` command as an operator would, against the test stack; its standard output."""
    env = {**os.environ, "VOXFLOW_POSTGRES_DSN": settings.postgres_dsn, "VOXFLOW_DATA_DIR": str(settings.data_dir)}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("voxflow")), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def blocked(settings, kind: str, subject_id: str, reason: str) -> None:
    await voxflow(settings, "block", kind, subject_id, "--reason", reason, "--by", "trust-and-safety")
    await asyncio.sleep(BLOCKS_CACHE_S)  # what a running worker takes to see it


async def unblocked(settings, kind: str, subject_id: str) -> None:
    await voxflow(settings, "unblock", kind, subject_id)
    await asyncio.sleep(BLOCKS_CACHE_S)


async def ending_of(session, results, request: SynthesisRequested):
    await session.publisher.publish(request)
    answer = await results.wait_until(lambda e: getattr(e, "synthesis_id", None) == request.synthesis_id
                                      and e.type in {"synthesis.completed", "synthesis.failed"},
                                      timeout_s=RESULT_TIMEOUT_S)
    assert answer, f"no result for synthesis {request.synthesis_id}"
    return answer[0]


def request_for(voice_id: str, correlation=None, text: str = "Good morning, everyone. Here is the news.",
                tenant_id: str = TENANT) -> SynthesisRequested:
    return SynthesisRequested(tenant_id=tenant_id, voice_id=voice_id, correlation_id=correlation or uuid.uuid4(),
                              text=text, purpose="narration", engine="espeak")


async def registered_voice(settings) -> str:
    """A voice the tenant owns but has no consent for: requests get as far as the consent check."""
    voice_id = f"bare-{uuid.uuid4().hex[:6]}"
    async with database(settings) as pool:
        await VoiceRepository(pool).ensure_voice(voice_id=voice_id, tenant_id=TENANT)
    return voice_id


async def blocked_audit_record(settings, subject_event_id: uuid.UUID):
    def record_of(entries):
        return next((e.record for e in entries if e.record["subject_event_id"] == str(subject_event_id)
                     and e.record["decision"] == "blocked"), None)

    return record_of(await eventually(lambda: read_audit_log(settings), lambda entries: record_of(entries)))


async def test_a_blocked_tenant_is_refused_with_the_reason_until_it_is_unblocked(pipeline_settings, session,
                                                                                  results, voice):
    correlation, voice_id = voice
    await blocked(pipeline_settings, "tenant", TENANT, "chargeback fraud")
    try:
        refused_request = request_for(voice_id, correlation)
        refused = await ending_of(session, results, refused_request)
        upload = await upload_sample(session.store, session.publisher, data=wav_of_real_speech(5, offset=3),
                                     filename="more.wav", tenant_id=TENANT, voice_id=voice_id)
        rejected = await results.wait_until(lambda e: e.type == "sample.rejected" and e.sample_id == upload.sample_id,
                                            timeout_s=RESULT_TIMEOUT_S)
    finally:
        await unblocked(pipeline_settings, "tenant", TENANT)
    completed = await ending_of(session, results, request_for(voice_id, correlation))

    assert refused.type == "synthesis.failed"
    assert refused.reason.startswith(f"blocked: tenant {TENANT!r} is blocked since")
    assert refused.reason.endswith("by trust-and-safety: chargeback fraud")
    assert rejected and rejected[0].reasons == [refused.reason]
    assert completed.type == "synthesis.completed"
    record = await blocked_audit_record(pipeline_settings, refused_request.event_id)
    assert record is not None and record["stage"] == "synthesis" and "chargeback fraud" in record["detail"]["reason"]
    in_force = json.loads(await voxflow(pipeline_settings, "block", "list"))
    history = json.loads(await voxflow(pipeline_settings, "block", "list", "--all"))
    assert TENANT not in {block["subject_id"] for block in in_force}
    assert any(block["reason"] == "chargeback fraud" and block["lifted_at"] for block in history)


async def test_a_blocked_voice_is_refused_and_its_synthesis_under_way_stops(pipeline_settings, session, results,
                                                                             voice):
    correlation, voice_id = voice
    long_request = request_for(voice_id, correlation, text=LONG_TEXT)
    await session.publisher.publish(long_request)
    first = await results.wait_until(lambda e: e.type == "synthesis.chunk_ready"
                                     and e.synthesis_id == long_request.synthesis_id, timeout_s=RESULT_TIMEOUT_S)
    await blocked(pipeline_settings, "voice", voice_id, "the owner reported misuse")
    try:
        ended = await results.wait_until(lambda e: e.type in {"synthesis.failed", "synthesis.completed"}
                                         and e.synthesis_id == long_request.synthesis_id, timeout_s=RESULT_TIMEOUT_S)
        released = await results.wait_until(lambda e: e.type == "synthesis.chunk_ready"
                                            and e.synthesis_id == long_request.synthesis_id,
                                            first[0].chunk_count, timeout_s=3)
        adaptation = AdaptationRequested(tenant_id=TENANT, voice_id=voice_id, correlation_id=uuid.uuid4())
        await session.publisher.publish(adaptation)
        adapted = await results.wait_for(adaptation.correlation_id, {"adaptation.failed", "voice.ready"}, 1,
                                         timeout_s=RESULT_TIMEOUT_S)
    finally:
        await unblocked(pipeline_settings, "voice", voice_id)

    assert ended[0].type == "synthesis.failed"
    assert f"voice {voice_id!r} is blocked" in ended[0].reason and "the owner reported misuse" in ended[0].reason
    assert len(released) < first[0].chunk_count
    assert [e.type for e in adapted] == ["adaptation.failed"]
    assert adapted[0].reason.endswith("the owner reported misuse")


async def test_a_text_matching_a_deny_pattern_is_refused_by_the_patterns_name(pipeline_settings, session, results):
    voice_id = await registered_voice(pipeline_settings)
    async with ResultWatcher(pipeline_settings.kafka_bootstrap, topics.ANOMALIES) as anomalies:
        refused = await ending_of(session, results, request_for(voice_id, text="Your verification code is 482913."))
        alert = await anomalies.wait_until(lambda e: e.voice_id == voice_id, timeout_s=RESULT_TIMEOUT_S)

    assert refused.reason == "blocked: the text matches deny pattern 'one_time_code'"
    assert (alert[0].kind, alert[0].action) == ("denied_text", "blocked") and "482913" not in alert[0].detail


async def test_a_voice_has_a_rate_window_of_its_own(pipeline_settings, session, results):
    voice_id = await registered_voice(pipeline_settings)
    async with ResultWatcher(pipeline_settings.kafka_bootstrap, topics.ANOMALIES) as anomalies:
        endings = [await ending_of(session, results, request_for(voice_id)) for _ in range(VOICE_RATE_LIMIT + 1)]
        alert = await anomalies.wait_until(lambda e: e.voice_id == voice_id, timeout_s=RESULT_TIMEOUT_S)

    assert all("no verified, unexpired consent" in e.reason for e in endings[:VOICE_RATE_LIMIT])
    assert endings[-1].reason == (f"blocked: per-voice rate window: more than {VOICE_RATE_LIMIT} synthesis requests "
                                  f"for voice {voice_id!r} in 60 s")
    assert (alert[0].kind, alert[0].action) == ("rate_exceeded", "blocked")
