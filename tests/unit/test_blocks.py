"""Blocks honoured by every stage: a blocked tenant's or voice's requests end in their stage's refusal
naming the block, work under way stops, an unblock lets the next request through. With fakes."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.events import (
    AdaptationRequested,
    AuditRecorded,
    ConsentRevoked,
    SynthesisChunkRequested,
    SynthesisProduced,
    SynthesisRequested,
    VoiceWeight,
    WatermarkDetectionRequested,
)
from streams.blocks import BlockGate
from voxflow.envelopes import signed_consent
from streams.context import StageContext
from streams.processing import MessageLocation, RetryPolicy, StageProcessor
from streams.stages import STAGES
from tests.unit.fakes import FakeAdaptations, FakeBlocks, FakeSyntheses, FakeVoices, InMemoryStore, a_synthesis
from tests.unit.test_processing import FakeInbox, RecordingPublisher, TrustingAuthenticator, uploaded

NO_WAITING = RetryPolicy(transient_retry_s=0.05, base_delay_s=0.001, max_delay_s=0.005)
REQUESTED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
STAGE = {stage.name: stage for stage in STAGES}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Pipeline:
    """The real stages behind a stage processor whose gate reads ``blocks``."""

    def __init__(self):
        self.blocks, self.clock, self.publisher = FakeBlocks(), Clock(), RecordingPublisher()
        self.voices, self.syntheses = FakeVoices(), FakeSyntheses()
        repos = SimpleNamespace(inbox=FakeInbox(), voices=self.voices, syntheses=self.syntheses,
                                adaptations=FakeAdaptations())
        context = StageContext(repos=repos, store=InMemoryStore(), watermark_key=b"k" * 32)
        self.processor = StageProcessor(context, self.publisher, TrustingAuthenticator(), policy=NO_WAITING,
                                        blocks=BlockGate(self.blocks, cache_s=2.0, clock=self.clock))

    async def send(self, stage_name: str, event) -> list:
        before, stage = len(self.publisher.events), STAGE[stage_name]
        await self.processor.process(stage, event.to_bytes(), MessageLocation(stage.topic, 0, 1))
        return self.publisher.events[before:]


def outcomes(published):
    return [event for event in published if not isinstance(event, AuditRecorded)]


def audited(published):
    return {(record.action, record.decision) for record in published if isinstance(record, AuditRecorded)}


async def test_a_blocked_tenants_upload_is_rejected_naming_the_block_and_audited_as_blocked():
    pipeline = Pipeline()
    pipeline.blocks.place("tenant", "t", reason="phishing campaign")

    published = await pipeline.send("ingest", uploaded())

    (rejected,) = outcomes(published)
    assert rejected.type == "sample.rejected"
    assert rejected.reasons[0].startswith("blocked: tenant 't' is blocked since 2026-12-01T12:00:00+00:00 by ops")
    assert rejected.reasons[0].endswith("phishing campaign")
    assert audited(published) == {("sample.uploaded", "blocked"), ("sample.rejected", "rejected")}


async def test_every_upstream_request_of_a_blocked_voice_ends_in_its_stages_refusal():
    pipeline = Pipeline()
    pipeline.voices.owners["v"] = "t"
    pipeline.blocks.place("voice", "v", reason="owner reported misuse")
    grant = signed_consent(Ed25519PrivateKey.generate(), tenant_id="t", voice_id="v", owner_id="o",
                           purposes=["narration"], languages=["en"], statement_text="I consent.")
    synthesis = SynthesisRequested(tenant_id="t", voice_id="v", text="Hello there.", purpose="narration")
    requests = [("consent", grant), ("adaptation", AdaptationRequested(tenant_id="t", voice_id="v")),
                ("synthesis", synthesis),
                ("watermark", WatermarkDetectionRequested(tenant_id="t", voice_id="v", object_key="checks/t/a.wav"))]

    ended = [outcomes(await pipeline.send(stage, event)) for stage, event in requests]

    assert [[e.type for e in ending] for ending in ended] == [
        ["consent.rejected"], ["adaptation.failed"], ["synthesis.failed"], ["watermark.detection_result"]]
    reasons = [ended[0][0].reasons[0], ended[1][0].reason, ended[2][0].reason, ended[3][0].reason]
    assert all("voice 'v' is blocked" in r and r.endswith("owner reported misuse") for r in reasons), reasons
    assert not ended[3][0].detected and not ended[3][0].examined  # refused: no evidence either way
    assert pipeline.syntheses.rows[synthesis.synthesis_id].status == "failed"


async def test_a_blend_that_uses_a_blocked_voice_is_refused():
    pipeline = Pipeline()
    pipeline.blocks.place("voice", "famous")
    blend = SynthesisRequested(tenant_id="t", voice_id="mine", text="Hello there.", purpose="narration",
                               voice_mix=[VoiceWeight(voice_id="mine", weight=0.5),
                                          VoiceWeight(voice_id="famous", weight=0.5)])

    (failed,) = outcomes(await pipeline.send("synthesis", blend))

    assert failed.type == "synthesis.failed" and "voice 'famous' is blocked" in failed.reason


async def test_a_synthesis_under_way_stops_releasing_chunks_once_its_tenant_is_blocked():
    pipeline = Pipeline()
    synthesis_id = uuid.uuid4()
    pipeline.syntheses.put(a_synthesis(synthesis_id))
    pipeline.blocks.place("tenant", "t", reason="chargeback fraud")
    chunk = SynthesisChunkRequested(tenant_id="t", voice_id="v", synthesis_id=synthesis_id, chunk_index=1,
                                    chunk_count=3, text="Second sentence.", requested_at=REQUESTED_AT)
    produced = SynthesisProduced(tenant_id="t", voice_id="v", synthesis_id=synthesis_id, chunk_index=0,
                                 chunk_count=3, raw_key="syntheses/t/v/x.unmarked.wav", sample_rate_hz=24000,
                                 duration_s=1.5, rtf=0.4, requested_at=REQUESTED_AT)

    from_synthesis = outcomes(await pipeline.send("synthesis", chunk))
    from_watermark = outcomes(await pipeline.send("watermark", produced))

    assert [e.type for e in from_synthesis + from_watermark] == ["synthesis.failed", "synthesis.failed"]
    assert from_synthesis[0].event_id == from_watermark[0].event_id  # one failure per request
    assert "chargeback fraud" in from_synthesis[0].reason and "chunks not released" in from_synthesis[0].reason
    assert pipeline.syntheses.rows[synthesis_id].status == "failed"


async def test_an_unblock_lets_the_next_request_through_within_the_cache_time():
    pipeline = Pipeline()
    pipeline.blocks.place("tenant", "t")
    assert outcomes(await pipeline.send("synthesis", SynthesisRequested(
        tenant_id="t", voice_id="nobody", text="Hello.", purpose="narration")))[0].reason.startswith("blocked: tenant")

    pipeline.blocks.lift("tenant", "t")
    pipeline.clock.now += 2.0
    (answer,) = outcomes(await pipeline.send("synthesis", SynthesisRequested(
        tenant_id="t", voice_id="nobody", text="Hello.", purpose="narration")))

    assert answer.reason == "unknown voice 'nobody'"  # the handler's own answer: the block no longer applies


async def test_the_gate_reads_the_blocks_at_most_once_per_cache_time():
    pipeline = Pipeline()
    for _ in range(5):
        await pipeline.send("ingest", uploaded())

    assert pipeline.blocks.reads == 1


async def test_revocations_and_other_tenants_requests_are_not_refused():
    pipeline = Pipeline()
    pipeline.blocks.place("tenant", "other")
    gate = pipeline.processor.blocks
    revocation = ConsentRevoked(tenant_id="t", voice_id="v", consent_id=uuid.uuid4(), revoked_at=REQUESTED_AT,
                                signature="c2ln")

    assert await gate.block_on(uploaded()) is None
    pipeline.blocks.place("tenant", "t")
    pipeline.clock.now += 2.0
    assert await gate.block_on(revocation) is None
    assert (await gate.block_on(uploaded())).subject_id == "t"
