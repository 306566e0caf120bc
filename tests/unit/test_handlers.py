"""Stage handlers with in-memory repositories: what an upstream app sees for each kind of input."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.audio.codec_quality import decode_audio, encode_wav
from schemas.envelope import utc_now
from schemas.events import AdaptationRequested, SampleUploaded
from voxflow.envelopes import signed_consent
from streams.handlers.consent import grant_consent
from streams.handlers.ingest import ingest_sample
from tests.unit.fakes import InMemoryStore, fake_context


def upload_of(data: bytes, voice: str = "v1", tenant: str = "t") -> tuple[SampleUploaded, InMemoryStore]:
    key = f"uploads/{tenant}/{voice}/a.wav"
    event = SampleUploaded(tenant_id=tenant, voice_id=voice, object_key=key, size_bytes=len(data))
    return event, InMemoryStore({key: data})


async def test_real_speech_is_accepted_normalised_and_wakes_a_waiting_adaptation(english_reference_speech):
    samples, rate = english_reference_speech
    event, store = upload_of(encode_wav(samples[: rate * 8], rate))
    waiting = json.loads(AdaptationRequested(tenant_id="t", voice_id="v1").model_dump_json())
    context = fake_context(store, waiting=[waiting])

    accepted, resent = await ingest_sample(event, context)

    assert accepted.type == "sample.accepted" and accepted.speech_s > 4
    assert accepted.speech_detector == "silero-vad" and accepted.dnsmos > 2.5
    normalised = decode_audio(store.objects[accepted.normalised_key])
    assert normalised.sample_rate_hz == 16000 and normalised.channels == 1
    assert resent.type == "adaptation.requested" and str(resent.adaptation_id) == waiting["adaptation_id"]


async def test_corrupt_audio_is_rejected_with_a_reason_and_recorded():
    event, store = upload_of(b"RIFF....WAVEfmt garbage" * 20)
    context = fake_context(store)

    (rejected,) = await ingest_sample(event, context)

    assert rejected.type == "sample.rejected" and rejected.reasons
    assert context.repos.samples.rows[event.sample_id].status == "rejected"


async def test_an_event_pointing_at_a_missing_object_is_rejected():
    event = SampleUploaded(tenant_id="t", voice_id="v1", object_key="uploads/t/v1/never-put.wav", size_bytes=1)

    (rejected,) = await ingest_sample(event, fake_context())

    assert "no object" in rejected.reasons[0]


async def test_a_voice_of_another_tenant_cannot_be_fed():
    context = fake_context()
    await context.repos.voices.ensure_voice(voice_id="v1", tenant_id="owner-tenant")
    event, context.store = upload_of(b"x", tenant="intruder")

    (rejected,) = await ingest_sample(event, context)

    assert "another tenant" in rejected.reasons[0]


def consent(owner: Ed25519PrivateKey, **overrides):
    return signed_consent(owner, tenant_id="t", voice_id="v1", owner_id="o", purposes=["narration"],
                          languages=["en"], statement_text="I consent.", **overrides)


async def test_a_genuine_consent_is_verified():
    (verified,) = await grant_consent(consent(Ed25519PrivateKey.generate()), fake_context())
    assert verified.type == "consent.verified" and verified.purposes == ["narration"]


async def test_a_copied_grant_under_a_fresh_event_id_is_reported_as_a_duplicate_not_verified_again():
    context, granted = fake_context(), consent(Ed25519PrivateKey.generate())
    await grant_consent(granted, context)

    (answer,) = await grant_consent(granted.model_copy(update={"event_id": uuid.uuid4()}), context)
    (retried,) = await grant_consent(granted, context)  # the same event again: a retry, not a replay

    assert answer.type == "consent.rejected" and answer.reasons[0].startswith("duplicate grant")
    assert retried.type == "consent.verified"


async def test_a_consent_altered_after_signing_is_rejected():
    tampered = consent(Ed25519PrivateKey.generate()).model_copy(update={"languages": ["en", "ml"]})

    (rejected,) = await grant_consent(tampered, fake_context())

    assert rejected.type == "consent.rejected" and "signature" in rejected.reasons[0]


async def test_an_expired_consent_is_rejected_even_with_a_good_signature():
    old = consent(Ed25519PrivateKey.generate(), issued_at=utc_now() - timedelta(days=10), valid_for=timedelta(days=1))

    (rejected,) = await grant_consent(old, fake_context())

    assert any("expired" in reason for reason in rejected.reasons)


async def test_repeated_consent_failures_raise_an_anomaly_alert():
    context = fake_context()
    forged = [consent(Ed25519PrivateKey.generate()).model_copy(update={"owner_id": f"mallory-{i}"}) for i in range(3)]

    outcomes = [await grant_consent(event, context) for event in forged]

    assert [len(o) for o in outcomes] == [1, 1, 2]
    assert outcomes[-1][1].type == "anomaly.detected" and outcomes[-1][1].action == "alert"
