"""The whole pipeline on the real broker, real Postgres and an S3 endpoint, with real speech."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.kafka import KafkaProducer
from processors.audio.codec_quality import decode_audio, to_mono
from processors.trust.watermark import detect_watermark
from schemas.envelope import utc_now
from schemas.events import AdaptationRequested, SynthesisRequested, WatermarkDetectionRequested
from streams import topics
from streams.auditing import read_audit_log, verify_audit_log
from streams.client import upload_sample
from tests.journeys import RESULT_TIMEOUT_S, TENANT, consented_voice, eventually, synthesise, wav_of_real_speech
from voxflow.envelopes import signed_consent, signed_revocation

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline_settings(stack_settings):
    return stack_settings.model_copy(update={"voice_synthesis_rate_limit": 8})


async def test_consenting_voice_is_cloned_watermarked_and_audited(session, results, stack_settings):
    correlation, _, ready = await consented_voice(session, results, voice_id="alice")
    assert ready.sample_count == 2 and ready.profile_version == 1

    completed = await synthesise(session, results, voice_id="alice", correlation=correlation)

    assert completed.type == "synthesis.completed", completed
    assert completed.object_key.startswith(f"syntheses/{TENANT}/alice/")
    audio = decode_audio(await session.store.get(completed.object_key))
    assert audio.sample_rate_hz >= 24000 and completed.duration_s > 0.5
    detection = detect_watermark(to_mono(audio.samples), audio.sample_rate_hz, stack_settings.watermark_key())
    assert detection.detected and detection.payload == completed.synthesis_id.bytes[:8]
    stored = await session.store.list_keys(f"syntheses/{TENANT}/alice/{completed.synthesis_id}/")
    assert stored and not [key for key in stored if "unmarked" in key]
    (scored,) = await results.wait_until(
        lambda e: e.type == "synthesis.scored" and e.synthesis_id == completed.synthesis_id, timeout_s=RESULT_TIMEOUT_S)
    assert scored.speaker_similarity is not None and scored.word_error_rate is not None

    async def journey_decisions():
        return {(e.record["action"], e.record["decision"]) for e in await read_audit_log(stack_settings)
                if e.record["correlation_id"] == str(correlation)}

    decisions = await eventually(journey_decisions, lambda found: ("synthesis.completed", "completed") in found)
    assert (await verify_audit_log(stack_settings)).valid
    assert {("sample.accepted", "accepted"), ("consent.verified", "accepted"), ("voice.ready", "completed"),
            ("synthesis.completed", "completed")} <= decisions


async def test_long_text_streams_chunk_by_chunk_before_the_whole_is_complete(session, results, stack_settings):
    correlation, _, _ = await consented_voice(session, results, voice_id="frank")
    sentences = ["The quick brown fox jumps over the lazy dog near the quiet river bank."] * 16
    text = " ".join(sentences)

    completed = await synthesise(session, results, voice_id="frank", correlation=correlation, text=text)

    chunks = await results.wait_until(
        lambda e: e.type == "synthesis.chunk_ready" and e.synthesis_id == completed.synthesis_id, 0, timeout_s=0,
    )
    assert completed.type == "synthesis.completed" and completed.chunk_count >= 3
    assert [c.chunk_index for c in chunks] == list(range(completed.chunk_count))
    assert chunks[0].latency_s < completed.latency_s
    first = decode_audio(await session.store.get(chunks[0].object_key))
    detection = detect_watermark(to_mono(first.samples), first.sample_rate_hz, stack_settings.watermark_key())
    assert detection.detected and detection.payload == completed.synthesis_id.bytes[:8]


async def spoken_consent(session, owner, voice_id: str, recording: bytes):
    key = f"consents/{TENANT}/{voice_id}/statement.wav"
    await session.store.put(key, recording)
    return signed_consent(owner, tenant_id=TENANT, voice_id=voice_id, owner_id=voice_id, purposes=["narration"],
                          languages=["en"], statement_text="I agree that my voice may be cloned.",
                          statement_audio_key=key, statement_audio=recording)


async def adapt_with(session, results, voice_id: str, consent) -> list:
    uploads = [await upload_sample(session.store, session.publisher, data=wav_of_real_speech(8, offset=i),
                                   filename=f"s{i}.wav", tenant_id=TENANT, voice_id=voice_id) for i in range(2)]
    await session.publisher.publish(consent)
    request = AdaptationRequested(tenant_id=TENANT, voice_id=voice_id, sample_ids=[u.sample_id for u in uploads])
    await session.publisher.publish(request)
    return await results.wait_until(
        lambda e: e.type in {"voice.ready", "adaptation.failed"} and e.adaptation_id == request.adaptation_id,
        timeout_s=RESULT_TIMEOUT_S,
    )


async def test_a_statement_recording_swapped_after_signing_is_rejected(session, results):
    owner = Ed25519PrivateKey.generate()
    consent = await spoken_consent(session, owner, "ivan", wav_of_real_speech(5, offset=7))
    await session.store.put(consent.statement_audio_key, wav_of_real_speech(5, offset=8))
    await session.publisher.publish(consent)

    rejected = await results.wait_until(lambda e: e.type == "consent.rejected" and e.consent_id == consent.consent_id,
                                        timeout_s=RESULT_TIMEOUT_S)

    assert "sha256" in rejected[0].reasons[0]


async def test_bad_audio_gets_a_rejection_with_reasons(session, results):
    corrupt = await upload_sample(session.store, session.publisher, data=b"RIFF\x00\x00garbage" * 10,
                                  filename="broken.wav", tenant_id=TENANT, voice_id="bob")
    blip = await upload_sample(session.store, session.publisher, data=wav_of_real_speech(0.2, offset=0),
                               filename="blip.wav", tenant_id=TENANT, voice_id="bob")

    rejected = await results.wait_until(
        lambda e: e.type == "sample.rejected" and e.sample_id in {corrupt.sample_id, blip.sample_id}, 2,
        timeout_s=RESULT_TIMEOUT_S,
    )

    assert len(rejected) == 2
    assert all(r.reasons and all(isinstance(reason, str) and reason for reason in r.reasons) for r in rejected)


async def test_forged_and_expired_consent_are_rejected(session, results):
    owner = Ed25519PrivateKey.generate()
    genuine = signed_consent(owner, tenant_id=TENANT, voice_id="carol", owner_id="carol", purposes=["narration"],
                             languages=["en"], statement_text="I consent.")
    forged = genuine.model_copy(update={"purposes": ["narration", "advertising"]})
    expired = signed_consent(owner, tenant_id=TENANT, voice_id="carol", owner_id="carol", purposes=["narration"],
                             languages=["en"], statement_text="I consent.", valid_for=timedelta(days=1),
                             issued_at=utc_now() - timedelta(days=3))
    for event in (forged, expired):
        await session.publisher.publish(event)

    rejected = await results.wait_until(
        lambda e: e.type == "consent.rejected" and e.consent_id in {forged.consent_id, expired.consent_id}, 2,
        timeout_s=RESULT_TIMEOUT_S,
    )

    reasons = {r.consent_id: " ".join(r.reasons) for r in rejected}
    assert "signature" in reasons[forged.consent_id]
    assert "expired" in reasons[expired.consent_id]


async def test_synthesis_is_refused_without_valid_consent(session, results):
    unknown = await synthesise(session, results, voice_id="nobody-knows-me", correlation=uuid.uuid4())
    assert unknown.type == "synthesis.failed" and "unknown voice" in unknown.reason

    await upload_sample(session.store, session.publisher, data=wav_of_real_speech(4, offset=3),
                        filename="d.wav", tenant_id=TENANT, voice_id="dave")
    await results.wait_until(lambda e: e.type == "sample.accepted" and e.voice_id == "dave", timeout_s=RESULT_TIMEOUT_S)
    unconsented = await synthesise(session, results, voice_id="dave", correlation=uuid.uuid4())
    assert unconsented.type == "synthesis.failed" and "consent" in unconsented.reason


async def test_revoked_consent_stops_further_cloning(session, results):
    owner = Ed25519PrivateKey.generate()
    correlation, consent, _ = await consented_voice(session, results, voice_id="erin", owner_key=owner)
    wrong_purpose = await synthesise(session, results, voice_id="erin", correlation=correlation, purpose="advertising")
    assert wrong_purpose.type == "synthesis.failed" and "purpose" in wrong_purpose.reason

    await session.publisher.publish(signed_revocation(owner, tenant_id=TENANT, voice_id="erin",
                                                      consent_id=consent.consent_id))
    await results.wait_until(lambda e: e.type == "consent.revocation_applied" and e.voice_id == "erin",
                             timeout_s=RESULT_TIMEOUT_S)

    after = await synthesise(session, results, voice_id="erin", correlation=correlation)
    assert after.type == "synthesis.failed" and "consent" in after.reason


async def test_detection_tells_original_speech_from_voxflow_output(session, results, stack_settings):
    original_key = f"checks/{TENANT}/{uuid.uuid4()}.wav"
    await session.store.put(original_key, wav_of_real_speech(6, offset=5))
    request = WatermarkDetectionRequested(tenant_id=TENANT, voice_id="alice", object_key=original_key)
    await session.publisher.publish(request)

    answer = await results.wait_until(
        lambda e: e.type == "watermark.detection_result" and e.detection_id == request.detection_id,
        timeout_s=RESULT_TIMEOUT_S,
    )

    assert answer and answer[0].detected is False


async def test_malformed_and_future_events_are_dead_lettered_and_the_worker_keeps_going(
    stack_settings, session, results, dead_letters,
):
    future = json.loads(SynthesisRequested(tenant_id=TENANT, voice_id="alice", text="hi", purpose="narration")
                        .model_dump_json())
    future["schema_version"] = 99
    async with KafkaProducer(stack_settings.kafka_bootstrap) as producer:
        await producer.send(topics.INGEST, key=b"x", value=b"{not json")
        await producer.send(topics.SYNTHESIS, key=b"alice", value=json.dumps(future).encode())

    letters = await dead_letters.wait_until(
        lambda e: e.payload_text == "{not json" or '"schema_version": 99' in e.payload_text, 2,
        timeout_s=RESULT_TIMEOUT_S,
    )

    assert {letter.reason for letter in letters} == {"MalformedEvent", "UnsupportedSchemaVersion"}
    still_alive = await synthesise(session, results, voice_id="nobody-at-all", correlation=uuid.uuid4())
    assert still_alive.type == "synthesis.failed"


async def test_request_flood_is_blocked_as_an_anomaly(pipeline_settings, session, results):
    flood_tenant = "flooder"
    voice = "flood-voice"
    await upload_sample(session.store, session.publisher, data=wav_of_real_speech(3, offset=6),
                        filename="f.wav", tenant_id=flood_tenant, voice_id=voice)
    await results.wait_until(lambda e: e.type in {"sample.accepted", "sample.rejected"} and e.voice_id == voice,
                             timeout_s=RESULT_TIMEOUT_S)
    requests = [SynthesisRequested(tenant_id=flood_tenant, voice_id=voice, text="again", purpose="narration")
                for _ in range(pipeline_settings.voice_synthesis_rate_limit + 2)]
    for request in requests:
        await session.publisher.publish(request)

    failures = await results.wait_until(
        lambda e: e.type == "synthesis.failed" and e.voice_id == voice, len(requests), timeout_s=RESULT_TIMEOUT_S,
    )

    assert any("blocked" in f.reason for f in failures)


async def test_a_protected_voice_is_never_cloned_even_under_another_name(stack_settings, session, results):
    """Runs last: every voice above is the same real speaker, so protecting one would block the others."""
    from infra.repositories import VoiceRepository
    from streams.session import database

    async with database(stack_settings) as pool:
        assert await VoiceRepository(pool).set_protected(voice_id="alice", protected=True)
        try:
            direct = await synthesise(session, results, voice_id="alice", correlation=uuid.uuid4())
            owner = Ed25519PrivateKey.generate()
            impersonation = await adapt_with(session, results, "mallory", signed_consent(
                owner, tenant_id=TENANT, voice_id="mallory", owner_id="mallory", purposes=["narration"],
                languages=["en"], statement_text="These are totally my own recordings."))
        finally:
            await VoiceRepository(pool).set_protected(voice_id="alice", protected=False)
        anomalies = await eventually(
            lambda: pool.fetch("SELECT voice_id, action FROM anomalies WHERE kind = 'protected_voice'"),
            lambda rows: len(rows) >= 2,
        )

    assert direct.type == "synthesis.failed" and "protected" in direct.reason
    assert impersonation[0].type == "adaptation.failed" and "protected voice 'alice'" in impersonation[0].reason
    assert {(a["voice_id"], a["action"]) for a in anomalies} >= {("alice", "blocked"), ("mallory", "blocked")}
