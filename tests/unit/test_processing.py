"""The stage processor's declared fate for every kind of message, with in-memory fakes."""

import asyncio
import hashlib
import json
from types import SimpleNamespace

import pytest

from infra.errors import BrokerUnavailable, ObjectStoreUnavailable
from schemas.events import SampleAccepted, SampleRejected, SampleUploaded, SynthesisFailed, SynthesisRequested
from streams.errors import WaitingForPrerequisites
from streams.processing import MessageLocation, RetryPolicy, StageProcessor
from streams.stages import Stage
from tests.unit.fakes import RecordingPublisher, TrustingAuthenticator

NO_WAITING = RetryPolicy(transient_retry_s=0.05, base_delay_s=0.001, max_delay_s=0.005)

LOCATION = MessageLocation("voxflow.ingest", 0, 42)


class FakeInbox:
    def __init__(self):
        self.done = set()

    async def seen(self, *, consumer, event_id):
        return (consumer, event_id) in self.done

    async def mark_processed(self, *, consumer, event_id):
        self.done.add((consumer, event_id))



def uploaded() -> SampleUploaded:
    return SampleUploaded(tenant_id="t", voice_id="v", object_key="uploads/t/v/x.wav", size_bytes=3)


def rejection_for(event):
    return event.follow_up(SampleRejected, sample_id=event.sample_id, reasons=["too short"])


def processor_with(handler):
    inbox, publisher = FakeInbox(), RecordingPublisher()
    context = SimpleNamespace(repos=SimpleNamespace(inbox=inbox))
    processor = StageProcessor(context, publisher, TrustingAuthenticator(), policy=NO_WAITING)
    return processor, Stage("ingest", "voxflow.ingest", {SampleUploaded: handler}), publisher, inbox


async def test_outcomes_are_published_with_their_audit_record_and_the_event_is_marked_done():
    async def handler(event, context):
        return [rejection_for(event)]

    processor, stage, publisher, inbox = processor_with(handler)
    event = uploaded()
    await processor.process(stage, event.to_bytes(), LOCATION)

    assert publisher.types() == ["sample.rejected", "audit.record"]
    audit = publisher.events[1]
    assert (audit.stage, audit.decision, audit.detail["reasons"]) == ("ingest", "rejected", ["too short"])
    assert ("ingest", event.event_id) in inbox.done


async def test_a_redelivered_event_is_not_handled_twice():
    calls = []

    async def handler(event, context):
        calls.append(event.event_id)
        return []

    processor, stage, _, _ = processor_with(handler)
    raw = uploaded().to_bytes()
    await processor.process(stage, raw, LOCATION)
    await processor.process(stage, raw, LOCATION)

    assert len(calls) == 1


async def test_malformed_bytes_go_to_the_dead_letter_topic_with_the_reason():
    processor, stage, publisher, _ = processor_with(None)
    await processor.process(stage, b"\xff not json", LOCATION)

    dead = publisher.events[0]
    assert dead.type == "dead_letter" and dead.reason == "MalformedEvent"
    assert (dead.original_topic, dead.partition, dead.offset) == ("voxflow.ingest", 0, 42)
    assert publisher.events[1].decision == "rejected"


async def test_an_event_on_the_wrong_topic_is_dead_lettered():
    processor, stage, publisher, _ = processor_with(None)
    wrong = SampleAccepted(tenant_id="t", voice_id="v", sample_id=uploaded().sample_id, normalised_key="samples/t/v/k.wav",
                           duration_s=1, speech_s=1, snr_db=1, clipping_ratio=0, original_sample_rate_hz=1,
                           original_channels=1)
    await processor.process(stage, wrong.to_bytes(), LOCATION)
    assert publisher.events[0].reason == "WrongTopic"


async def test_transient_failures_are_retried_then_succeed():
    attempts = []

    async def flaky(event, context):
        attempts.append(1)
        if len(attempts) < 3:
            raise ObjectStoreUnavailable("S3 endpoint unreachable")
        return [rejection_for(event)]

    processor, stage, publisher, _ = processor_with(flaky)
    await processor.process(stage, uploaded().to_bytes(), LOCATION)

    assert len(attempts) == 3 and publisher.types()[0] == "sample.rejected"


async def test_an_object_store_outage_is_said_once_when_it_begins_and_once_when_it_ends(caplog):
    store_up = [False]

    async def needs_the_store(event, context):
        if not store_up[0]:
            raise ObjectStoreUnavailable("S3 endpoint unreachable")
        return [rejection_for(event)]

    processor, stage, publisher, _ = processor_with(needs_the_store)
    processor.policy = RetryPolicy(transient_retry_s=0.05, base_delay_s=0.001, max_delay_s=0.001)
    with caplog.at_level("WARNING", logger="voxflow.outages"):
        for _ in range(3):  # three messages given up on while the store is away
            await processor.process(stage, uploaded().to_bytes(), LOCATION)
        processor.policy = RetryPolicy(transient_retry_s=5, base_delay_s=0.001, max_delay_s=0.001)
        retried = asyncio.create_task(processor.process(stage, uploaded().to_bytes(), LOCATION))
        await asyncio.sleep(0.01)
        store_up[0] = True
        await retried

    lines = [record.getMessage() for record in caplog.records if record.name == "voxflow.outages"]
    assert len(lines) == 2 and "the object store unavailable" in lines[0] and "answering again" in lines[1]


async def test_persistent_transient_failures_end_in_the_dead_letter_topic():
    async def down(event, context):
        raise ObjectStoreUnavailable("S3 endpoint unreachable")

    processor, stage, publisher, inbox = processor_with(down)
    await processor.process(stage, uploaded().to_bytes(), LOCATION)

    assert publisher.events[0].reason == "GaveUpAfterRetries" and "attempts" in publisher.events[0].error
    assert not inbox.done


async def test_an_unexpected_error_is_dead_lettered_and_does_not_escape():
    async def broken(event, context):
        raise ZeroDivisionError("division by zero")

    processor, stage, publisher, _ = processor_with(broken)
    await processor.process(stage, uploaded().to_bytes(), LOCATION)

    assert publisher.events[0].reason == "HandlerError" and "ZeroDivisionError" in publisher.events[0].error


async def test_a_parked_event_is_audited_as_waiting_and_not_marked_done():
    async def not_yet(event, context):
        raise WaitingForPrerequisites("waiting for consent")

    processor, stage, publisher, inbox = processor_with(not_yet)
    await processor.process(stage, uploaded().to_bytes(), LOCATION)

    assert [(e.type, e.decision) for e in publisher.events] == [("audit.record", "waiting")]
    assert not inbox.done


class FlakyInbox(FakeInbox):
    """An inbox whose database is down for the first ``outage`` calls."""

    def __init__(self, outage: int):
        super().__init__()
        self.outage = outage

    async def seen(self, *, consumer, event_id):
        if self.outage:
            self.outage -= 1
            raise ConnectionRefusedError("Postgres is restarting")
        return await super().seen(consumer=consumer, event_id=event_id)


class FlakyPublisher(RecordingPublisher):
    def __init__(self, outage: int):
        super().__init__()
        self.outage = outage

    async def publish(self, event):
        if self.outage:
            self.outage -= 1
            raise BrokerUnavailable("broker restarting")
        await super().publish(event)


async def rejected_through(inbox, publisher) -> SampleUploaded:
    """An upload processed by a handler that rejects it, with 5 s of retries for the flaky parts."""
    async def handler(event, context):
        return [rejection_for(event)]

    processor = StageProcessor(SimpleNamespace(repos=SimpleNamespace(inbox=inbox)), publisher, TrustingAuthenticator(),
                               policy=RetryPolicy(transient_retry_s=5, base_delay_s=0.001))
    event = uploaded()
    await processor.process(Stage("ingest", "voxflow.ingest", {SampleUploaded: handler}), event.to_bytes(), LOCATION)
    return event


async def test_a_database_outage_during_the_inbox_check_is_waited_out_not_lost():
    inbox, publisher = FlakyInbox(outage=3), RecordingPublisher()
    event = await rejected_through(inbox, publisher)

    assert publisher.types() == ["sample.rejected", "audit.record"]
    assert ("ingest", event.event_id) in inbox.done


async def test_a_broker_outage_while_publishing_is_retried_and_the_event_marked_done_once_sent():
    inbox, publisher = FakeInbox(), FlakyPublisher(outage=2)
    event = await rejected_through(inbox, publisher)

    assert publisher.types() == ["sample.rejected", "audit.record"]
    assert ("ingest", event.event_id) in inbox.done


def synthesis_request() -> SynthesisRequested:
    return SynthesisRequested(tenant_id="t", voice_id="v", text="Hello there.", purpose="narration")


async def test_a_request_whose_event_is_dead_lettered_still_ends_in_a_failed_event():
    async def broken(event, context):
        raise ZeroDivisionError("division by zero")

    async def fail(event, context, reason):
        return [event.follow_up(SynthesisFailed, synthesis_id=event.synthesis_id, reason=reason)]

    processor, _, publisher, _ = processor_with(None)
    stage = Stage("synthesis", "voxflow.synthesis", {SynthesisRequested: broken}, {SynthesisRequested: fail})
    request = synthesis_request()
    await processor.process(stage, request.to_bytes(), LOCATION)

    failed = [e for e in publisher.events if e.type == "synthesis.failed"]
    assert publisher.events[0].type == "dead_letter"
    assert len(failed) == 1 and failed[0].synthesis_id == request.synthesis_id
    assert "ZeroDivisionError" in failed[0].reason


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"type": ["sample.uploaded"], "tenant_id": "t"}', "MalformedEvent"),
    (b'{"type": null}', "MalformedEvent"),
    (b"[" * 100_000 + b"]" * 100_000, "MalformedEvent"),
    (json.dumps({"type": "sample.uploaded", "x": {"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}).encode(), "MalformedEvent"),
    (json.dumps({**json.loads(uploaded().to_bytes()), "schema_version": "2"}).encode(), "MalformedEvent"),
    (json.dumps({**json.loads(uploaded().to_bytes()), "schema_version": 2.0}).encode(), "MalformedEvent"),
    (json.dumps({**json.loads(uploaded().to_bytes()), "schema_version": 9}).encode(), "UnsupportedSchemaVersion"),
    (json.dumps({"type": "x" * 5000}).encode(), "UnknownEventType"),
])
async def test_hostile_messages_are_dead_lettered_with_their_reason(raw, reason):
    processor, stage, publisher, _ = processor_with(None)
    await processor.process(stage, raw, LOCATION)

    assert publisher.events[0].type == "dead_letter" and publisher.events[0].reason == reason


async def test_an_oversized_message_is_refused_unparsed_and_its_dead_letter_carries_a_cut_payload_and_its_hash():
    raw = json.dumps({**json.loads(uploaded().to_bytes()), "object_key": "k" * 3_000_000}).encode()
    processor, stage, publisher, _ = processor_with(None)
    await processor.process(stage, raw, LOCATION)

    dead = publisher.events[0]
    assert dead.reason == "EventTooLarge" and dead.payload_truncated
    assert dead.payload_bytes == len(raw) and dead.payload_sha256 == hashlib.sha256(raw).hexdigest()
    assert len(dead.to_bytes()) < 200_000
