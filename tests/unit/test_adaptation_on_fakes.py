"""An adaptation runs on in-memory stores (no services): real speech samples become a voice once its owner's
consent is verified, a redelivery changes nothing, and samples that sound like another tenant's voice are held."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.records import SampleRecord
from processors.audio.codec_quality import encode_wav
from schemas.events import AdaptationRequested
from streams.context import Limits, StageContext
from streams.errors import WaitingForPrerequisites
from streams.handlers.adaptation import adapt_voice
from tests.unit.fakes import (STORED_AT, CollectedProgress, FakeAdaptations, FakeConsents, FakeProfiles, FakeSamples,
                              FakeVoices, InMemoryRepositories, InMemoryStore)
from voxflow.envelopes import signed_consent

TENANT, VOICE = "acme", "narrator-1"


def verified_consent(consents: FakeConsents) -> None:
    consents.verified(signed_consent(Ed25519PrivateKey.generate(), tenant_id=TENANT, voice_id=VOICE,
                                     owner_id="owner-1", purposes=["narration"], languages=["en"],
                                     statement_text="I consent."))


@pytest.fixture
def adaptation(english_profile_chunks, english_reference_speech, speaker_encoder):
    """A context with two accepted 6 s samples of one real speaker for the voice, and the request naming them."""
    rate = english_reference_speech[1]
    store, samples = InMemoryStore(), FakeSamples()
    for index, chunk in enumerate(english_profile_chunks[:2]):
        sample_id, key = uuid.uuid4(), f"samples/{TENANT}/{VOICE}/{index}/normalised.wav"
        store.objects[key] = encode_wav(chunk, rate)
        samples.rows[sample_id] = SampleRecord(sample_id, VOICE, TENANT, key, "accepted",
                                               STORED_AT + timedelta(seconds=index), normalised_key=key, speech_s=5.5)
    voices = FakeVoices()
    repos = InMemoryRepositories(voices=voices, samples=samples, consents=FakeConsents(),
                                 profiles=FakeProfiles(voices), adaptations=FakeAdaptations())
    context = StageContext(repos=repos, store=store, watermark_key=b"k" * 32, progress=CollectedProgress(),
                           models=SimpleNamespace(engine_name="espeak", encoder=speaker_encoder),
                           limits=Limits(require_spoken_consent=False))
    request = AdaptationRequested(tenant_id=TENANT, voice_id=VOICE, sample_ids=list(samples.rows))
    return context, request


async def test_consented_samples_become_a_voice_once_whatever_the_redeliveries(adaptation):
    context, request = adaptation
    verified_consent(context.repos.consents)

    first = await adapt_voice(request, context)
    again = await adapt_voice(request, context)

    assert [e.type for e in first] == ["voice.ready"] and [e.event_id for e in again] == [first[0].event_id]
    ready = first[0]
    assert (ready.sample_count, ready.speech_s, ready.profile_version) == (2, 11.0, 1)
    assert list(context.repos.profiles.rows) == [(VOICE, 1)]
    assert context.repos.adaptations.statuses[request.adaptation_id] == "completed"
    assert [event.step for event in context.progress.events[:3]] == [1, 2, 3]


async def test_without_a_verified_consent_the_request_waits_and_nothing_is_built(adaptation):
    context, request = adaptation

    with pytest.raises(WaitingForPrerequisites, match="consent"):
        await adapt_voice(request, context)

    assert context.repos.adaptations.statuses[request.adaptation_id] == "waiting"
    assert context.repos.profiles.rows == {}


async def test_samples_that_sound_like_another_tenants_voice_are_held_for_review(adaptation, english_voice_profile):
    context, request = adaptation
    verified_consent(context.repos.consents)
    context.repos.voices.owners["their-narrator"] = "other-tenant"
    context.repos.profiles.put("their-narrator", english_voice_profile.to_dict(),
                               embedding=english_voice_profile.embedding)

    outcomes = await adapt_voice(request, context)

    assert [e.type for e in outcomes] == ["anomaly.detected", "adaptation.failed"]
    anomaly, failed = outcomes
    assert (anomaly.kind, anomaly.severity, anomaly.action) == ("cross_tenant_voice", "critical", "blocked")
    assert "'their-narrator' of another tenant" in anomaly.detail and "held for review" in failed.reason
    assert (VOICE, 1) not in context.repos.profiles.rows
