"""The `voxflow` client package on the real services: a synchronous `Client` and an `AsyncClient` each take a
voice from two real recordings to a downloaded, watermarked, content-credentialed output."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.provenance_keys import provenance_trust_anchors
from infra.settings import Settings
from infra.signing_keys import worker_signer
from processors.trust.provenance import read_provenance
from tests.journeys import RESULT_TIMEOUT_S, SHORT_TEXT, TENANT, wav_of_real_speech
from voxflow import (AsyncClient, Client, ClientConfig, DeliveryForbidden, RequestDeadLettered, SynthesisCompleted,
                     SynthesisNotAvailable, VoiceErased, read_key_file)

pytestmark = pytest.mark.integration

OTHER_TENANT = "flooder"  # registered by the stack settings too


def client_config(settings: Settings, worker, tenant_id: str = TENANT) -> ClientConfig:
    return ClientConfig(
        tenant_id=tenant_id, tenant_key=read_key_file(settings.tenant_key_directory() / f"{tenant_id}.key"),
        kafka_bootstrap=settings.kafka_bootstrap, s3_endpoint=settings.s3_endpoint,
        s3_access_key=settings.s3_access_key, s3_secret_key=settings.s3_secret_key, s3_bucket=settings.s3_bucket,
        s3_secure=settings.s3_secure, s3_region=settings.s3_region,
        delivery_url=f"http://{settings.web_host}:{worker.web_port}", default_timeout_s=RESULT_TIMEOUT_S,
        worker_public_key=worker_signer(settings).public_key,
    )


def assert_is_the_output(audio: bytes, completed: SynthesisCompleted, settings: Settings, consent_id: uuid.UUID):
    report = read_provenance(audio, "audio/wav", provenance_trust_anchors(settings))
    assert audio[:4] == b"RIFF" and report.status == "valid", report
    assert (report.claims.voice_id, report.claims.consent_id) == (completed.voice_id, str(consent_id))
    assert report.claims.watermark_payload_hex == completed.watermark_payload


async def test_an_async_client_clones_a_voice_speaks_and_downloads_the_output(pipeline_settings, worker, tmp_path):
    voice, owner, journey = f"client-async-{uuid.uuid4().hex[:6]}", Ed25519PrivateKey.generate(), uuid.uuid4()
    progress = []
    recording = tmp_path / "take-2.wav"
    recording.write_bytes(wav_of_real_speech(10, offset=1))

    async with AsyncClient(client_config(pipeline_settings, worker)) as client:
        uploads = [await client.upload_sample(voice, wav_of_real_speech(10, offset=0), filename="take-1.wav",
                                              correlation_id=journey),
                   await client.upload_sample(voice, path=recording, correlation_id=journey)]
        consent = await client.grant_consent(owner, voice, "owner-1", ["narration"], ["en"], "I consent.",
                                             correlation_id=journey)
        adaptation = await client.request_adaptation(voice, [upload.sample_id for upload in uploads],
                                                     correlation_id=journey)
        samples = [await client.wait_for(upload) for upload in uploads]
        verified, ready = await client.wait_for(consent), await client.wait_for(adaptation)
        request = await client.synthesize(voice, SHORT_TEXT, correlation_id=journey)
        completed = await client.wait_for(request, on_progress=progress.append)
        audio = await client.download(completed.synthesis_id)

    assert [sample.type for sample in samples] == ["sample.accepted"] * 2
    assert (verified.type, ready.type, completed.type) == ("consent.verified", "voice.ready", "synthesis.completed")
    assert [(event.type, event.synthesis_id) for event in progress] == [
        ("synthesis.chunk_ready", request.synthesis_id)] * completed.chunk_count
    assert_is_the_output(audio, completed, pipeline_settings, consent.consent_id)


def clone_speak_and_download(config: ClientConfig, voice: str, owner: Ed25519PrivateKey):
    progress = []
    with Client(config) as client:
        spoken = client.clone_and_speak(
            voice, [wav_of_real_speech(10, offset=i) for i in (2, 3)], SHORT_TEXT, owner_key=owner,
            owner_id="owner-2", statement_text="I consent.", on_progress=progress.append)
        return spoken, client.download(spoken.synthesis.synthesis_id), progress


async def test_a_synchronous_client_clones_a_voice_speaks_and_only_its_tenant_downloads(pipeline_settings, worker):
    voice, owner = f"client-sync-{uuid.uuid4().hex[:6]}", Ed25519PrivateKey.generate()

    # the worker runs on this test's loop: the blocking client waits in a thread meanwhile
    spoken, audio, progress = await asyncio.to_thread(
        clone_speak_and_download, client_config(pipeline_settings, worker), voice, owner)
    completed = spoken.synthesis

    assert (spoken.voice.type, completed.type, completed.voice_id) == ("voice.ready", "synthesis.completed", voice)
    assert spoken.scores.synthesis_id == completed.synthesis_id and spoken.scores.speaker_similarity is not None
    # the instant voice's three steps, then the synthesis's chunks
    assert [event.type for event in progress] == (["adaptation.progress"] * 3
                                                  + ["synthesis.chunk_ready"] * completed.chunk_count)
    assert_is_the_output(audio, completed, pipeline_settings, spoken.consent.consent_id)
    async with AsyncClient(client_config(pipeline_settings, worker, OTHER_TENANT)) as other_tenant:
        with pytest.raises(DeliveryForbidden, match="another tenant"):
            await other_tenant.download(completed.synthesis_id)



async def test_an_owner_revokes_then_erases_through_the_client_and_the_output_is_gone(pipeline_settings, worker):
    voice, owner = f"client-erased-{uuid.uuid4().hex[:6]}", Ed25519PrivateKey.generate()

    async with AsyncClient(client_config(pipeline_settings, worker)) as client:
        spoken = await client.clone_and_speak(voice, [wav_of_real_speech(10, offset=i) for i in (4, 5)],
                                              "Soon withdrawn.", owner_key=owner, owner_id="owner-3",
                                              statement_text="I consent.")
        revoked = await client.wait_for(await client.revoke_consent(owner, voice, spoken.consent.consent_id))
        refused = await client.wait_for(await client.synthesize(voice, "Not any more."))
        erased = await client.wait_for(await client.erase_voice(owner, voice))
        # the erasure deletes the synthesis row, so the endpoint knows no such synthesis (404) rather than
        # answering 410, which it gives while a row outlives its destroyed data key
        with pytest.raises((SynthesisNotAvailable, VoiceErased)) as gone:
            await client.download(spoken.synthesis.synthesis_id)

    assert revoked.type == "consent.revocation_applied"
    assert refused.type == "synthesis.failed" and "no verified, unexpired consent" in refused.reason
    assert erased.type == "erasure.completed" and erased.report.data_key_destroyed
    assert gone.value.status in (404, 410)


async def test_a_request_signed_by_an_unregistered_key_is_refused_with_the_reason(pipeline_settings, worker):
    unregistered = replace(client_config(pipeline_settings, worker), tenant_key=bytes(range(32)))

    async with AsyncClient(unregistered) as client:
        upload = await client.upload_sample(f"client-unsigned-{uuid.uuid4().hex[:6]}", wav_of_real_speech(4, offset=0))
        with pytest.raises(RequestDeadLettered, match="which no operator registered") as refused:
            await client.wait_for(upload)

    assert refused.value.reason == "Unauthenticated"
