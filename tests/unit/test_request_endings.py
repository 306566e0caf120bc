"""A request ends once: a stage that gives up on one of its events fails it, unless it already ended,
and a redelivery after a crash re-sends the endings the first delivery may not have sent."""

import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np

from processors.audio.codec_quality import encode_wav
from schemas.events import (SynthesisChunkReady, SynthesisChunkRequested, SynthesisCompleted, SynthesisProduced,
                            SynthesisRequested, SynthesisScoringRequested)
from streams.context import StageContext
from streams.handlers.synthesis import fail_synthesis, synthesize_chunk
from streams.handlers.watermark import release_output
from infra.records import SynthesisChunk
from tests.unit.fakes import FakeSyntheses, InMemoryStore, a_synthesis

REQUESTED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def context_with(syntheses: FakeSyntheses) -> StageContext:
    return StageContext(repos=SimpleNamespace(syntheses=syntheses), store=InMemoryStore(), watermark_key=b"k" * 32)


def request() -> SynthesisRequested:
    return SynthesisRequested(tenant_id="t", voice_id="v", text="Hello there.", purpose="narration")


def produced(synthesis_id) -> SynthesisProduced:
    return SynthesisProduced(tenant_id="t", voice_id="v", synthesis_id=synthesis_id, chunk_index=0, chunk_count=1,
                             raw_key="syntheses/t/v/x.unmarked.wav", sample_rate_hz=24000, duration_s=1.5, rtf=0.4,
                             requested_at=REQUESTED_AT)


async def test_a_request_the_stage_gave_up_on_before_recording_it_is_recorded_failed_and_answered():
    syntheses, event = FakeSyntheses(), request()

    outcomes = await fail_synthesis(event, context_with(syntheses), "HandlerError: boom")

    assert [(o.type, o.reason) for o in outcomes] == [("synthesis.failed", "HandlerError: boom")]
    assert syntheses.rows[event.synthesis_id].status == "failed"


async def test_an_accepted_request_whose_chunk_was_given_up_on_ends_failed():
    syntheses, event = FakeSyntheses(), request()
    syntheses.put(a_synthesis(event.synthesis_id))

    outcomes = await fail_synthesis(produced(event.synthesis_id), context_with(syntheses), "gave up")

    assert [o.type for o in outcomes] == ["synthesis.failed"]
    assert (syntheses.rows[event.synthesis_id].status, syntheses.rows[event.synthesis_id].reason) == ("failed",
                                                                                                    "gave up")


async def test_a_request_that_already_completed_is_not_failed_afterwards():
    syntheses, event = FakeSyntheses(), request()
    syntheses.put(a_synthesis(event.synthesis_id, status="completed"))

    assert await fail_synthesis(produced(event.synthesis_id), context_with(syntheses), "late failure") == []
    assert syntheses.rows[event.synthesis_id].status == "completed"


async def test_a_redelivered_last_chunk_of_a_completed_synthesis_re_sends_its_chunk_ready_completion_and_scoring():
    syntheses, event = FakeSyntheses(), produced(request().synthesis_id)
    syntheses.put(a_synthesis(event.synthesis_id, status="completed", object_key="syntheses/t/v/output.wav",
                              watermark_payload="ab" * 8, latency_s=2.0, rtf=0.4, duration_s=1.5))
    syntheses.chunks[(event.synthesis_id, 0)] = SynthesisChunk(
        event.synthesis_id, 0, duration_s=1.5, compute_s=0.6, object_key="syntheses/t/v/chunk-0000.wav",
        released_at=REQUESTED_AT + timedelta(seconds=1.2))

    outcomes = await release_output(event, context_with(syntheses))

    assert [type(o) for o in outcomes] == [SynthesisChunkReady, SynthesisCompleted, SynthesisScoringRequested]
    ready, completed, scoring = outcomes
    assert (ready.object_key, ready.latency_s) == ("syntheses/t/v/chunk-0000.wav", 1.2)
    assert completed.object_key == "syntheses/t/v/output.wav" and scoring.synthesis_id == completed.synthesis_id
    assert [o.event_id for o in outcomes] == [o.event_id for o in await release_output(event, context_with(syntheses))]


async def test_a_redelivered_chunk_request_whose_chunk_was_recorded_but_not_sent_on_sends_it_again():
    """The worker stopped (or the broker refused the send) after the chunk was stored and recorded."""
    syntheses, synthesis_id = FakeSyntheses(), request().synthesis_id
    event = SynthesisChunkRequested(tenant_id="t", voice_id="v", synthesis_id=synthesis_id, chunk_index=0,
                                    chunk_count=1, text="Hello there.", requested_at=REQUESTED_AT)
    raw_key = "syntheses/t/v/chunk-0000.unmarked.wav"
    syntheses.put(a_synthesis(synthesis_id))
    syntheses.chunks[(synthesis_id, 0)] = SynthesisChunk(synthesis_id, 0, duration_s=1.5, compute_s=0.3, raw_key=raw_key)
    context = context_with(syntheses)
    await context.store.put(raw_key, encode_wav(np.zeros(24000 * 3 // 2, dtype=np.float32), 24000))

    outcomes = await synthesize_chunk(event, context)

    assert [(type(o), o.raw_key, o.sample_rate_hz, o.duration_s, o.rtf) for o in outcomes] == [
        (SynthesisProduced, raw_key, 24000, 1.5, 0.2)]
    assert outcomes[0].event_id == uuid.uuid5(event.event_id, "synthesis.produced:")  # inboxes skip a copy
