"""A request runs through the synthesis and watermark handlers on in-memory stores (no services): what its
caller sees, and what a redelivery of every event changes (nothing)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.audio.codec_quality import decode_audio, resample, to_mono
from processors.constants import CHUNK_PAUSE_MS, OUTPUT_SAMPLE_RATE_HZ
from processors.synthesis.engine import SynthesisOutput
from processors.trust.watermark import detect_watermark
from schemas.events import SynthesisRequested
from streams.context import StageContext
from streams.handlers.synthesis import accept_synthesis, synthesize_chunk
from streams.handlers.watermark import release_output, watermark_payload
from tests.unit.fakes import FakeConsents, FakeProfiles, FakeSyntheses, FakeVoices, InMemoryRepositories, InMemoryStore
from voxflow.envelopes import signed_consent

TENANT, VOICE = "acme", "narrator-1"
WATERMARK_KEY = b"k" * 32
TWO_CHUNKS_OF_TEXT = " ".join(f"This is sentence number {n} of a longer passage that keeps going for a while."
                              for n in range(8))


def consents_with_one_grant(max_uses: int) -> FakeConsents:
    """The voice's consent (narration, English, ``max_uses``), verified, in the consents table."""
    granted = signed_consent(Ed25519PrivateKey.generate(), tenant_id=TENANT, voice_id=VOICE, owner_id="owner-1",
                             purposes=["narration"], languages=["en"], statement_text="I consent.", max_uses=max_uses)
    consents = FakeConsents()
    consents.verified(granted)
    return consents


class SpeechEngine:
    """Speaks every chunk as the next 4 s of a real recording, at its rate."""

    def __init__(self, speech: np.ndarray, sample_rate_hz: int):
        self.speech, self.sample_rate_hz, self.spoken = speech, sample_rate_hz, 0

    def check_language(self, language):
        return None

    def synthesize_chunk(self, text, language, profile, controls):
        length = 4 * self.sample_rate_hz
        samples = self.speech[self.spoken * length:(self.spoken + 1) * length]
        self.spoken += 1
        return SynthesisOutput(samples, self.sample_rate_hz, duration_s=4.0, rtf=0.1)


class SpeechModels:
    def __init__(self, engine: SpeechEngine):
        self.engine = engine

    def engine_name_for(self, requested, language):
        return "speech"

    def engine_for(self, name):
        return self.engine


@pytest.fixture
def pipeline(english_voice_profile, english_reference_speech):
    voices, syntheses = FakeVoices(), FakeSyntheses()
    voices.owners[VOICE] = TENANT
    profiles = FakeProfiles(voices)
    profiles.put(VOICE, english_voice_profile.to_dict())
    speech, rate = english_reference_speech
    repos = InMemoryRepositories(voices=voices, consents=consents_with_one_grant(max_uses=1), profiles=profiles,
                                 syntheses=syntheses)
    return StageContext(repos=repos, store=InMemoryStore(), watermark_key=WATERMARK_KEY,
                        models=SpeechModels(SpeechEngine(speech, rate)))


async def run_stages(request: SynthesisRequested, context: StageContext) -> list:
    """Every event of the request through its handler, in the order the topics carry them."""
    chunk_requests = await accept_synthesis(request, context)
    produced = [event for chunk in chunk_requests for event in await synthesize_chunk(chunk, context)]
    released = [event for chunk in produced for event in await release_output(chunk, context)]
    return [*chunk_requests, *produced, *released]


async def test_a_two_chunk_request_ends_in_one_marked_output_naming_it(pipeline):
    request = SynthesisRequested(tenant_id=TENANT, voice_id=VOICE, text=TWO_CHUNKS_OF_TEXT, purpose="narration")

    events = await run_stages(request, pipeline)

    assert [e.type for e in events] == [
        "synthesis.chunk_requested", "synthesis.chunk_requested", "synthesis.produced", "synthesis.produced",
        "synthesis.chunk_ready", "synthesis.chunk_ready", "synthesis.completed", "synthesis.scoring_requested"]
    completed = events[-2]
    assert (completed.chunk_count, completed.duration_s) == (2, 2 * 4.0 + CHUNK_PAUSE_MS / 1000)  # a pause between
    output = decode_audio(await pipeline.store.get(completed.object_key))
    found = detect_watermark(resample(to_mono(output.samples), output.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ),
                             OUTPUT_SAMPLE_RATE_HZ, WATERMARK_KEY)
    assert found.detected and found.payload == watermark_payload(request.synthesis_id)
    assert not [key for key in pipeline.store.objects if key.endswith(".unmarked.wav")]  # no unmarked audio is kept


async def test_every_event_delivered_again_sends_only_what_was_sent_and_uses_the_consent_once(pipeline):
    request = SynthesisRequested(tenant_id=TENANT, voice_id=VOICE, text=TWO_CHUNKS_OF_TEXT, purpose="narration")
    first = await run_stages(request, pipeline)
    handlers = {"synthesis.chunk_requested": synthesize_chunk, "synthesis.produced": release_output}

    again = [*await accept_synthesis(request, pipeline),
             *[sent for event in first if event.type in handlers for sent in await handlers[event.type](event, pipeline)]]

    assert {e.event_id for e in again} <= {e.event_id for e in first}  # consumers' inboxes skip every one
    assert [e.type for e in again].count("synthesis.completed") == 2  # each chunk's redelivery re-sends the one
    assert list(pipeline.repos.consents.uses.values()) == [1] and pipeline.models.engine.spoken == 2


async def test_a_revocation_after_the_first_chunk_stops_the_second_and_fails_the_request(pipeline):
    request = SynthesisRequested(tenant_id=TENANT, voice_id=VOICE, text=TWO_CHUNKS_OF_TEXT, purpose="narration")
    first_chunk, second_chunk = await accept_synthesis(request, pipeline)
    [first_produced] = await synthesize_chunk(first_chunk, pipeline)
    [ready] = await release_output(first_produced, pipeline)

    [consent_id] = [decision.consent_id for decision in pipeline.repos.consents.decisions]
    await pipeline.repos.consents.revoke(consent_id=consent_id, revoked_at=datetime.now(timezone.utc))
    ended = await synthesize_chunk(second_chunk, pipeline)

    assert ready.type == "synthesis.chunk_ready"
    assert [e.type for e in ended] == ["synthesis.failed"] and ended[0].reason.startswith("consent revoked at")
    assert pipeline.models.engine.spoken == 1
