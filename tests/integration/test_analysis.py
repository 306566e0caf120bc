"""Voice analysis on the real broker, Postgres and S3: a tenant's uploaded sample is analysed against its own
voice, the report comes back through the delivery endpoint for that tenant only, and requests that reach for
another tenant's objects or voices are refused with the reason."""

from __future__ import annotations

import json
import uuid

import pytest

from infra.kafka import KafkaProducer
from infra.signing_keys import TenantKeyFiles
from infra.speech_assets import czech_actor_utterance, heldout_utterance
from processors.audio.codec_quality import encode_wav
from schemas.events import AnalysisRequested
from streams import topics
from streams.client import upload_sample
from tests.integration.test_client import OTHER_TENANT, client_config
from tests.journeys import RESULT_TIMEOUT_S, TENANT, consented_voice, wav_of_real_speech
from voxflow import AsyncClient, DeliveryFailed

pytestmark = pytest.mark.integration


async def test_an_uploaded_sample_is_analysed_against_the_tenants_voice_which_no_other_tenant_reaches(
        session, results, pipeline_settings, worker):
    _, _, ready = await consented_voice(session, results, voice_id=f"analysed-{uuid.uuid4().hex[:6]}")
    upload = await upload_sample(session.store, session.publisher, data=encode_wav(*heldout_utterance(10.0)),
                                 filename="other-sentences.wav", tenant_id=TENANT, voice_id=ready.voice_id,
                                 correlation_id=uuid.uuid4())
    request = AnalysisRequested(tenant_id=TENANT, voice_id=ready.voice_id, object_key=upload.object_key,
                                compare_voice_id=ready.voice_id)
    async with AsyncClient(client_config(pipeline_settings, worker)) as client:
        await session.publisher.publish(request)
        completed = await client.wait_for(request)
        report = (await client.download_report(completed.analysis_id)).decode()

    assert completed.type == "analysis.completed", completed
    assert completed.accepted and completed.vad == "silero-vad" and 1.0 <= completed.dnsmos <= 5.0
    assert completed.speech_s > 7.0 and completed.snr_db > 20 and completed.clipping_ratio < 0.001
    assert 100 < completed.f0_range_hz[0] < completed.f0_range_hz[1] < 400 and completed.speaking_rate > 2
    assert not completed.watermark.detected and completed.authenticity.content_credentials.status == "missing"
    assert (completed.comparison.verdict, completed.comparison.compared) == ("same", ready.voice_id)
    assert 'id="figure-projection"' in report and "Same speaker as" in report
    async with AsyncClient(client_config(pipeline_settings, worker, OTHER_TENANT)) as other_tenant:
        with pytest.raises(DeliveryFailed, match="no report") as refused:
            await other_tenant.download_report(completed.analysis_id)
        reaching = await other_tenant.analyze(wav_of_real_speech(6, offset=3), compare_voice_id=ready.voice_id)
        failed = await other_tenant.wait_for(reaching)
    assert refused.value.status == 404
    assert failed.type == "analysis.failed" and f"is not a voice of tenant {OTHER_TENANT!r}" in failed.reason


async def test_a_client_compares_two_recordings_of_different_real_speakers(pipeline_settings, worker):
    async with AsyncClient(client_config(pipeline_settings, worker)) as client:
        request = await client.analyze(wav_of_real_speech(10, offset=0),
                                       compare_with=encode_wav(*czech_actor_utterance("big_fish", 10.0)))
        completed = await client.wait_for(request)

    assert completed.type == "analysis.completed", completed
    assert completed.comparison.verdict == "different"
    assert completed.comparison.score < completed.comparison.threshold


async def test_a_request_for_another_tenants_object_is_dead_lettered_with_the_reason(pipeline_settings,
                                                                                   dead_letters):
    event_id = str(uuid.uuid4())
    document = {"event_id": event_id, "type": "analysis.requested", "tenant_id": TENANT, "voice_id": "snooper",
                "analysis_id": str(uuid.uuid4()), "object_key": f"uploads/{OTHER_TENANT}/their-voice/sample.wav"}
    value = json.dumps(document).encode()
    signer = TenantKeyFiles(pipeline_settings.tenant_key_directory()).signer(TENANT)
    async with KafkaProducer(pipeline_settings.kafka_bootstrap) as producer:
        await producer.send(topics.ANALYSIS, key=b"snooper", value=value, headers=signer.headers_for(value))

    letters = await dead_letters.wait_until(lambda letter: event_id in letter.payload_text, timeout_s=RESULT_TIMEOUT_S)

    assert letters, "the request was not dead-lettered"
    assert "outside the event's tenant" in letters[0].error
