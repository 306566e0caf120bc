"""Refusals for the right reason on the real services: unsigned and forged producers, forged audit records,
replayed grants, revocation mid-stream, an audit log cut behind a signed checkpoint, and content credentials
that show an altered output."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.kafka import KafkaProducer
from infra.repositories import AUDIT_CHAIN_LOCK_ID
from infra.provenance_keys import provenance_trust_anchors
from infra.signing_keys import TenantKeyFiles
from processors.audio.codec_quality import encode_wav
from processors.trust.provenance import read_provenance
from processors.trust.signing import EventSigner
from schemas.events import (AdaptationRequested, AuditRecorded, SampleUploaded, SynthesisRequested,
                            WatermarkDetectionRequested)
from streams import topics
from streams.auditing import latest_checkpoint, verify_audit_log
from streams.client import upload_sample
from streams.results import ResultWatcher
from streams.session import database
from streams.tenants import register_tenant
from tests.journeys import RESULT_TIMEOUT_S, TENANT, consented_voice, eventually, synthesise, wav_of_real_speech
from voxflow.envelopes import signed_consent, signed_revocation

pytestmark = pytest.mark.integration

# twelve sentences, so a revocation lands while chunks are still being made
LONG_TEXT = " ".join(f"This is sentence number {n} of a long reading for the revocation test." for n in range(1, 13))


@pytest.fixture(scope="module")
def pipeline_settings(stack_settings):
    return stack_settings.model_copy(update={"audit_checkpoint_interval_s": 1.0, "synthesis_rate_limit": 1000})


async def send(settings, topic: str, event, headers) -> None:
    async with KafkaProducer(settings.kafka_bootstrap) as producer:
        await producer.send(topic, key=event.key(), value=event.to_bytes(), headers=headers)


def upload_for(tenant_id: str) -> SampleUploaded:
    voice = f"isolated-{uuid.uuid4().hex[:6]}"
    return SampleUploaded(tenant_id=tenant_id, voice_id=voice, object_key=f"uploads/{tenant_id}/{voice}/a.wav",
                          size_bytes=10)


async def refusal_of(dead_letters, event) -> str:
    letters = await dead_letters.wait_until(lambda e: e.causation_id == event.event_id, timeout_s=RESULT_TIMEOUT_S)
    assert letters, f"no dead letter for {event.type} {event.event_id}"
    assert letters[0].reason == "Unauthenticated"
    return letters[0].error


async def test_an_unsigned_upload_is_dead_lettered_and_never_ingested(pipeline_settings, dead_letters):
    event = upload_for(TENANT)
    await send(pipeline_settings, topics.INGEST, event, headers=[])

    assert "unsigned" in await refusal_of(dead_letters, event)
    async with database(pipeline_settings) as pool:
        assert await pool.fetchval("SELECT count(*) FROM samples WHERE sample_id = $1", event.sample_id) == 0


async def test_a_tenant_cannot_produce_events_for_another_tenant(pipeline_settings, dead_letters):
    await register_tenant(pipeline_settings, "evil")
    evil = TenantKeyFiles(pipeline_settings.tenant_key_directory()).signer("evil")
    event = upload_for(TENANT)
    await send(pipeline_settings, topics.INGEST, event, headers=evil.headers_for(event.to_bytes()))

    assert "signed by tenant 'evil' for tenant 'acme'" in await refusal_of(dead_letters, event)


async def test_a_key_nobody_registered_is_refused(pipeline_settings, dead_letters):
    event = upload_for(TENANT)
    stranger = EventSigner(Ed25519PrivateKey.generate())
    await send(pipeline_settings, topics.INGEST, event, headers=stranger.headers_for(event.to_bytes()))

    assert "no operator registered" in await refusal_of(dead_letters, event)


async def test_a_forged_audit_record_is_refused_and_never_appended(pipeline_settings, dead_letters):
    tenant = TenantKeyFiles(pipeline_settings.tenant_key_directory()).signer(TENANT)
    forged = AuditRecorded(tenant_id=TENANT, voice_id="anyone", stage="consent", action="consent.granted",
                           decision="accepted", subject_event_id=uuid.uuid4(), detail={"forged": True})
    await send(pipeline_settings, topics.AUDIT, forged, headers=tenant.headers_for(forged.to_bytes()))

    assert "may only be sent by a voxflow worker" in await refusal_of(dead_letters, forged)
    async with database(pipeline_settings) as pool:
        assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE event_id = $1", forged.event_id) == 0


async def test_a_replayed_grant_of_a_revoked_consent_is_reported_as_a_replay(session, results):
    owner = Ed25519PrivateKey.generate()
    _, consent, ready = await consented_voice(session, results, voice_id=f"replay-{uuid.uuid4().hex[:6]}",
                                              owner_key=owner)
    await session.publisher.publish(signed_revocation(owner, tenant_id=TENANT, voice_id=ready.voice_id,
                                                      consent_id=consent.consent_id))
    await results.wait_until(lambda e: e.type == "consent.revocation_applied" and e.consent_id == consent.consent_id,
                             timeout_s=RESULT_TIMEOUT_S)

    replay = consent.model_copy(update={"event_id": uuid.uuid4()})  # the owner's signature still holds
    await session.publisher.publish(replay)
    answer = await results.wait_until(lambda e: e.causation_id == replay.event_id, timeout_s=RESULT_TIMEOUT_S)

    assert answer[0].type == "consent.rejected"
    assert "replayed grant" in answer[0].reasons[0] and "stays revoked" in answer[0].reasons[0]


async def test_a_revocation_mid_stream_stops_every_chunk_not_yet_released(session, results):
    owner = Ed25519PrivateKey.generate()
    correlation, consent, ready = await consented_voice(session, results, voice_id=f"revoke-{uuid.uuid4().hex[:6]}",
                                                        owner_key=owner)
    request = SynthesisRequested(tenant_id=TENANT, voice_id=ready.voice_id, correlation_id=correlation,
                                 text=LONG_TEXT, purpose="narration")
    await session.publisher.publish(request)
    first = await results.wait_until(lambda e: e.type == "synthesis.chunk_ready"
                                     and e.synthesis_id == request.synthesis_id, timeout_s=RESULT_TIMEOUT_S)
    await session.publisher.publish(signed_revocation(owner, tenant_id=TENANT, voice_id=ready.voice_id,
                                                      consent_id=consent.consent_id))

    ended = await results.wait_until(lambda e: e.type in {"synthesis.failed", "synthesis.completed"}
                                     and e.synthesis_id == request.synthesis_id, timeout_s=RESULT_TIMEOUT_S)
    # chunks in flight at the revocation would show up within these seconds
    released = await results.wait_until(lambda e: e.type == "synthesis.chunk_ready"
                                        and e.synthesis_id == request.synthesis_id, first[0].chunk_count, timeout_s=3)
    failures = await results.wait_until(lambda e: e.type == "synthesis.failed"
                                        and e.synthesis_id == request.synthesis_id, timeout_s=0)

    assert ended[0].type == "synthesis.failed" and "consent revoked" in ended[0].reason
    assert len(released) < first[0].chunk_count
    assert len({failure.event_id for failure in failures}) == 1


async def test_a_signed_checkpoint_catches_a_log_cut_behind_it(pipeline_settings, worker):
    checkpoint = await eventually(lambda: latest_checkpoint(pipeline_settings), lambda c: c is not None)
    assert checkpoint is not None, "no audit checkpoint signed within 30 s"
    assert (await verify_audit_log(pipeline_settings)).valid

    async with database(pipeline_settings) as pool, pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", AUDIT_CHAIN_LOCK_ID)  # the worker's appends wait
        try:
            tail = await connection.fetch("SELECT * FROM audit_log WHERE sequence >= $1", checkpoint.sequence)
            await connection.execute("DELETE FROM audit_log WHERE sequence >= $1", checkpoint.sequence)
            cut = await verify_audit_log(pipeline_settings)
            await connection.executemany(
                "INSERT INTO audit_log (sequence, event_id, previous_hash, record_hash, record, recorded_at)"
                " VALUES ($1,$2,$3,$4,$5,$6)",
                [(r["sequence"], r["event_id"], r["previous_hash"], r["record_hash"], r["record"], r["recorded_at"])
                 for r in tail])
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", AUDIT_CHAIN_LOCK_ID)

    assert not cut.valid and "cut off" in cut.reason and cut.first_invalid_sequence == checkpoint.sequence
    assert (await verify_audit_log(pipeline_settings)).valid


async def test_every_output_carries_content_credentials_naming_its_voice_and_consent(session, results, pipeline_settings):
    correlation, consent, ready = await consented_voice(session, results, voice_id=f"c2pa-{uuid.uuid4().hex[:6]}")
    completed = await synthesise(session, results, voice_id=ready.voice_id, correlation=correlation)
    output = await session.store.get(completed.object_key)

    report = read_provenance(output, "audio/wav", provenance_trust_anchors(pipeline_settings))
    assert report.status == "valid", report
    assert (report.claims.voice_id, report.claims.consent_id) == (ready.voice_id, str(consent.consent_id))
    assert report.claims.watermark_payload_hex == completed.watermark_payload

    altered = bytearray(output)
    altered[len(output) // 2] ^= 0x01
    check_key = f"checks/{TENANT}/{uuid.uuid4()}.wav"
    await session.store.put(check_key, bytes(altered))
    request = WatermarkDetectionRequested(tenant_id=TENANT, voice_id=ready.voice_id, object_key=check_key)
    await session.publisher.publish(request)
    answer = await results.wait_until(lambda e: e.type == "watermark.detection_result"
                                      and e.detection_id == request.detection_id, timeout_s=RESULT_TIMEOUT_S)

    assert answer[0].detected and answer[0].synthesis_id == completed.synthesis_id
    assert answer[0].content_credentials.status == "altered"


async def test_a_new_voice_that_sounds_like_another_tenants_is_held_for_review(pipeline_settings, session, results):
    await register_tenant(pipeline_settings, "evil")
    await consented_voice(session, results, voice_id=f"victim-{uuid.uuid4().hex[:6]}")  # acme's, of the real speaker
    async with ResultWatcher(pipeline_settings.kafka_bootstrap, topics.ANOMALIES) as anomalies:
        _, _, held = await consented_voice(session, results, voice_id=f"borrowed-{uuid.uuid4().hex[:6]}",
                                           tenant_id="evil", expected="adaptation.failed")
        alert = await anomalies.wait_until(lambda e: e.voice_id == held.voice_id, timeout_s=RESULT_TIMEOUT_S)

    assert held.reason.startswith("held for review: the samples sound like voice")
    assert alert[0].kind == "cross_tenant_voice" and alert[0].severity == "critical"


# --- spoken consent: the statement recording must say the consent phrase, in the sampled speaker's voice ---------
# No one ever recorded our phrase, so a Kokoro stock voice reads it; real human speech says the wrong words.

SAMPLE_READINGS = ("The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.",
                   "It is easy to tell the depth of a well. The juice of lemons makes fine punch.")


@pytest.fixture(scope="module")
def kokoro_reads(kokoro_synthesizer, stock_voices):
    def read(text: str, pack: str = "am_adam") -> bytes:
        speech = kokoro_synthesizer.render(kokoro_synthesizer.tokens(text, "en"), stock_voices.table(pack))
        return encode_wav(speech, 24000)

    return read


async def spoken_grant(session, settings, voice_id: str, recording: bytes):
    key = f"consents/{TENANT}/{voice_id}/statement.wav"
    await session.store.put(key, recording)
    return signed_consent(Ed25519PrivateKey.generate(), tenant_id=TENANT, voice_id=voice_id, owner_id=voice_id,
                          purposes=["narration"], languages=["en"], statement_text=settings.spoken_consent_phrase(),
                          statement_audio_key=key, statement_audio=recording)


async def consent_outcome(session, results, consent):
    await session.publisher.publish(consent)
    outcome = await results.wait_until(lambda e: e.type in {"consent.verified", "consent.rejected"}
                                       and e.consent_id == consent.consent_id, timeout_s=RESULT_TIMEOUT_S)
    assert outcome, f"no decision on consent {consent.consent_id}"
    return outcome[0]


async def adaptation_with_spoken_consent(settings, session, results, samples: list[bytes], statement: bytes):
    """The outcome of adapting a new voice from ``samples`` once its spoken consent is verified."""
    voice_id = f"phrase-{uuid.uuid4().hex[:6]}"
    uploads = [await upload_sample(session.store, session.publisher, data=data, filename=f"s{i}.wav",
                                   tenant_id=TENANT, voice_id=voice_id) for i, data in enumerate(samples)]
    consent = await consent_outcome(session, results, await spoken_grant(session, settings, voice_id, statement))
    assert consent.type == "consent.verified", consent
    request = AdaptationRequested(tenant_id=TENANT, voice_id=voice_id, sample_ids=[u.sample_id for u in uploads])
    await session.publisher.publish(request)
    (outcome,) = await results.wait_until(
        lambda e: e.type in {"voice.ready", "adaptation.failed"} and e.adaptation_id == request.adaptation_id,
        timeout_s=RESULT_TIMEOUT_S)
    return outcome


async def test_the_consent_phrase_spoken_is_verified_with_both_scores(pipeline_settings, session, results,
                                                                    kokoro_reads):
    phrase = kokoro_reads(pipeline_settings.spoken_consent_phrase())
    consent = await spoken_grant(session, pipeline_settings, f"phrase-{uuid.uuid4().hex[:6]}", phrase)

    verified = await consent_outcome(session, results, consent)

    assert verified.type == "consent.verified", verified
    scores = verified.spoken_statement
    assert scores.phrase_method == "whisper_words" and scores.phrase_match >= scores.phrase_min_match == 0.75
    assert scores.operator == "Voxflow" and scores.operator_match >= scores.operator_min_match
    assert scores.speaker_similarity is None and "compared with the samples at adaptation" in scores.speaker_check


async def test_a_statement_of_other_words_is_rejected_as_the_wrong_phrase(pipeline_settings, session, results):
    consent = await spoken_grant(session, pipeline_settings, f"phrase-{uuid.uuid4().hex[:6]}",
                                 wav_of_real_speech(5, offset=7))

    rejected = await consent_outcome(session, results, consent)

    assert rejected.type == "consent.rejected", rejected
    assert rejected.reasons[0].startswith("wrong phrase: the recording does not say the consent phrase (match ")
    assert rejected.spoken_statement.phrase_match < 0.75 and rejected.spoken_statement.heard


async def test_the_phrase_spoken_by_the_sampled_speaker_lets_the_voice_be_built(pipeline_settings, session, results,
                                                                               kokoro_reads):
    samples = [kokoro_reads(text) for text in SAMPLE_READINGS]
    statement = kokoro_reads(pipeline_settings.spoken_consent_phrase())

    outcome = await adaptation_with_spoken_consent(pipeline_settings, session, results, samples, statement)

    assert outcome.type == "voice.ready", outcome


async def test_the_phrase_spoken_by_someone_other_than_the_sampled_speaker_stops_the_adaptation(
        pipeline_settings, session, results, kokoro_reads):
    samples = [wav_of_real_speech(8, offset=i) for i in range(2)]
    statement = kokoro_reads(pipeline_settings.spoken_consent_phrase())

    outcome = await adaptation_with_spoken_consent(pipeline_settings, session, results, samples, statement)

    assert outcome.type == "adaptation.failed" and "not by the sampled speaker" in outcome.reason
