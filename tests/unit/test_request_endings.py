"""A request ends once: a stage that gives up on one of its events fails it, unless it already ended,
and a redelivery after a crash re-sends the endings the first delivery may not have sent."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from schemas.events import SynthesisChunkReady, SynthesisCompleted, SynthesisProduced, SynthesisRequested
from streams.context import StageContext
from streams.handlers.synthesis import fail_synthesis
from streams.handlers.watermark import release_output
from tests.unit.fakes import FakeSyntheses, InMemoryStore

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
    assert syntheses.rows[event.synthesis_id]["status"] == "failed"


async def test_an_accepted_request_whose_chunk_was_given_up_on_ends_failed():
    syntheses, event = FakeSyntheses(), request()
    syntheses.rows[event.synthesis_id] = {"status": "accepted"}

    outcomes = await fail_synthesis(produced(event.synthesis_id), context_with(syntheses), "gave up")

    assert [o.type for o in outcomes] == ["synthesis.failed"]
    assert syntheses.rows[event.synthesis_id] == {"status": "failed", "reason": "gave up"}


async def test_a_request_that_already_completed_is_not_failed_afterwards():
    syntheses, event = FakeSyntheses(), request()
    syntheses.rows[event.synthesis_id] = {"status": "completed"}

    assert await fail_synthesis(produced(event.synthesis_id), context_with(syntheses), "late failure") == []
    assert syntheses.rows[event.synthesis_id]["status"] == "completed"


async def test_a_redelivered_last_chunk_of_a_completed_synthesis_re_sends_its_chunk_ready_and_completion():
    syntheses, event = FakeSyntheses(), produced(request().synthesis_id)
    syntheses.rows[event.synthesis_id] = {
        "status": "completed", "object_key": "syntheses/t/v/output.wav", "watermark_payload": "ab" * 8, "latency_s": 2.0,
        "rtf": 0.4, "duration_s": 1.5, "speaker_similarity": None, "word_error_rate": 0.0, "dnsmos": 3.1,
    }
    syntheses.chunks[(event.synthesis_id, 0)] = {"object_key": "syntheses/t/v/chunk-0000.wav",
                                                 "released_at": REQUESTED_AT + timedelta(seconds=1.2)}

    outcomes = await release_output(event, context_with(syntheses))

    assert [type(o) for o in outcomes] == [SynthesisChunkReady, SynthesisCompleted]
    ready, completed = outcomes
    assert (ready.object_key, ready.latency_s) == ("syntheses/t/v/chunk-0000.wav", 1.2)
    assert completed.object_key == "syntheses/t/v/output.wav" and completed.speaker_similarity is None
    assert [o.event_id for o in outcomes] == [o.event_id for o in await release_output(event, context_with(syntheses))]
