"""An outcome whose send failed is sent on the retry, even when its handler, asked again, finds its work done.

The store outage of tests/faults/test_store_outage.py takes the broker's storage away: a chunk recorded just
before it had its ``synthesis.produced`` send refused, the retry found the chunk recorded and sent nothing,
and the synthesis never ended.
"""

from types import SimpleNamespace

from schemas.events import SynthesisChunkRequested, SynthesisFailed, SynthesisProduced, SynthesisRequested
from streams.processing import MessageLocation, RetryPolicy, StageProcessor
from streams.stages import Stage
from tests.unit.fakes import TrustingAuthenticator
from tests.unit.test_processing import FakeInbox, FlakyPublisher

LOCATION = MessageLocation("voxflow.synthesis", 0, 4)
RETRIES = RetryPolicy(transient_retry_s=5, base_delay_s=0.001, max_delay_s=0.005)


def chunk_request() -> SynthesisChunkRequested:
    request = SynthesisRequested(tenant_id="t", voice_id="v", text="Hello there.", purpose="narration")
    return request.follow_up(SynthesisChunkRequested, discriminator="0", synthesis_id=request.synthesis_id,
                             chunk_index=0, chunk_count=1, text=request.text, requested_at=request.occurred_at)


class ChunkRecorder:
    """Records the chunk once, as the synthesis stage does, and produces nothing for a chunk already recorded."""

    def __init__(self):
        self.recorded = set()

    async def __call__(self, event, context):
        if event.chunk_index in self.recorded:
            return []
        self.recorded.add(event.chunk_index)
        return [event.follow_up(SynthesisProduced, synthesis_id=event.synthesis_id, chunk_index=0, chunk_count=1,
                                raw_key="syntheses/t/v/chunk-0000.unmarked.wav", sample_rate_hz=24_000,
                                duration_s=1.0, rtf=0.1, requested_at=event.requested_at)]


def processor_over(publisher) -> tuple[StageProcessor, FakeInbox]:
    inbox = FakeInbox()
    return StageProcessor(SimpleNamespace(repos=SimpleNamespace(inbox=inbox)), publisher, TrustingAuthenticator(),
                          policy=RETRIES), inbox


async def test_a_produced_chunk_whose_send_failed_is_sent_when_the_broker_is_back():
    publisher = FlakyPublisher(outage=3)
    processor, inbox = processor_over(publisher)
    event = chunk_request()

    await processor.process(Stage("synthesis", "voxflow.synthesis", {SynthesisChunkRequested: ChunkRecorder()}),
                            event.to_bytes(), LOCATION)

    assert [sent for sent in publisher.types() if sent != "audit.record"] == ["synthesis.produced"]
    assert ("synthesis", event.event_id) in inbox.done


async def test_a_request_failure_whose_send_failed_is_sent_when_the_broker_is_back():
    async def broken(event, context):
        raise ZeroDivisionError("division by zero")

    ended = set()

    async def fail_once(event, context, reason):
        """Records the request failed, and finds nothing to do for a request already ended."""
        if event.synthesis_id in ended:
            return []
        ended.add(event.synthesis_id)
        return [event.follow_up(SynthesisFailed, synthesis_id=event.synthesis_id, reason=reason)]

    class RefusingTheFailure(FlakyPublisher):
        async def publish(self, event):
            if event.type == "synthesis.failed" and self.outage:
                self.outage -= 1
                raise BrokenPipeError("broker storage gone")
            self.events.append(event)

    publisher = RefusingTheFailure(outage=3)
    processor, _ = processor_over(publisher)
    stage = Stage("synthesis", "voxflow.synthesis", {SynthesisChunkRequested: broken},
                  {SynthesisChunkRequested: fail_once})

    await processor.process(stage, chunk_request().to_bytes(), LOCATION)

    assert [e.type for e in publisher.events if e.type == "synthesis.failed"] == ["synthesis.failed"]
