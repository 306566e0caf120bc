"""Encryption at rest and erasure on the real services: the store and Postgres hold no plaintext audio or
profile, an erased voice's objects and rows go, a copy kept from before the erasure no longer opens, and
rotating the master key leaves every voice working."""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.errors import DataKeyDestroyed
from infra.kafka import KafkaProducer
from infra.objectstore import MinioStore
from infra.provenance_keys import provenance_trust_anchors
from infra.signing_keys import TenantKeyFiles
from processors.trust.provenance import read_provenance
from schemas.envelope import utc_now
from schemas.events import ErasureRequested
from streams import topics
from streams.client import upload_sample
from voxflow.envelopes import signed_erasure
from streams.keys import key_status, rotate_master_key
from streams.session import database, operator_publisher, sealed_store
from tests.journeys import RESULT_TIMEOUT_S, TENANT, consented_voice, synthesise, wav_of_real_speech

pytestmark = pytest.mark.integration


async def ending_of(results, erasure: ErasureRequested):
    endings = await results.wait_until(
        lambda e: getattr(e, "erasure_id", None) == erasure.erasure_id, timeout_s=RESULT_TIMEOUT_S)
    assert endings, f"no ending for erasure {erasure.erasure_id}"
    return endings[0]


async def erased_by_owner(session, results, voice: str, owner: Ed25519PrivateKey):
    erasure = signed_erasure(owner, tenant_id=TENANT, voice_id=voice)
    await session.publisher.publish(erasure)
    return await ending_of(results, erasure)


async def test_objects_and_profiles_are_stored_sealed(pipeline_settings, session, results):
    voice = f"sealed-{uuid.uuid4().hex[:6]}"
    correlation, _, _ = await consented_voice(session, results, voice_id=voice)
    completed = await synthesise(session, results, voice_id=voice, correlation=correlation, text="Sealed at rest.")
    assert completed.type == "synthesis.completed"

    raw = MinioStore.from_settings(pipeline_settings)
    keys = [key for area in ("uploads", "samples", "syntheses")
            for key in await raw.list_keys(f"{area}/{TENANT}/{voice}/")]
    stored = [await raw.get(key) for key in keys]
    async with database(pipeline_settings) as pool:
        profile = await pool.fetchrow("SELECT * FROM voice_profiles WHERE voice_id = $1", voice)
        synthesis = await pool.fetchrow("SELECT * FROM syntheses WHERE voice_id = $1", voice)

    assert len(keys) >= 5 and [key for key, data in zip(keys, stored) if b"RIFF" in data[:64]] == []
    assert "profile" not in profile.keys() and b"style" not in bytes(profile["sealed_profile"])
    assert "profile" not in synthesis.keys() and synthesis["sealed_profile"] is not None
    assert (await session.store.get(completed.object_key))[:4] == b"RIFF"  # the operator's tools open it


async def download(settings, worker, synthesis_id, tenant_id: str) -> tuple[int, bytes]:
    """``GET /v1/syntheses/{id}/audio`` from the worker, signed by ``tenant_id``'s key."""
    path = f"/v1/syntheses/{synthesis_id}/audio"
    headers = TenantKeyFiles(settings.tenant_key_directory()).signer(tenant_id).request_headers(
        "GET", path, int(time.time()))
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{worker.web_port}{path}", headers=headers) as response:
        return response.status, await response.read()


async def test_the_owning_tenant_downloads_its_output_from_the_worker(pipeline_settings, worker, session, results):
    voice = f"delivered-{uuid.uuid4().hex[:6]}"
    correlation, _, _ = await consented_voice(session, results, voice_id=voice)
    completed = await synthesise(session, results, voice_id=voice, correlation=correlation, text="Yours to keep.")

    def fetch(tenant_id: str):
        return download(pipeline_settings, worker, completed.synthesis_id, tenant_id)

    status, audio = await fetch(TENANT)
    provenance = read_provenance(audio, "audio/wav", provenance_trust_anchors(pipeline_settings))
    assert status == 200 and provenance.status == "valid" and provenance.claims.voice_id == voice
    assert (await fetch("flooder"))[0] == 403


async def test_an_owner_erases_a_voice_and_a_copy_restored_from_backup_does_not_open(
        pipeline_settings, worker, session, results):
    voice, owner = f"erased-{uuid.uuid4().hex[:6]}", Ed25519PrivateKey.generate()
    correlation, _, _ = await consented_voice(session, results, voice_id=voice, owner_key=owner)
    completed = await synthesise(session, results, voice_id=voice, correlation=correlation, text="Soon gone.")
    raw = MinioStore.from_settings(pipeline_settings)
    backup = await raw.get(completed.object_key)

    ended = await erased_by_owner(session, results, voice, owner)

    assert ended.type == "erasure.completed", ended
    report = ended.report
    assert report.data_key_destroyed and report.objects_deleted["syntheses"] >= 2
    assert report.objects_deleted["samples"] == 2 and report.objects_deleted["uploads"] == 2
    assert report.rows_deleted["voice_profiles"] >= 1 and report.rows_deleted["consents"] == 1
    assert report.audit_records_kept > 0  # the chain keeps ids and hashes, and still verifies
    for area in ("uploads", "samples", "syntheses"):
        assert await raw.list_keys(f"{area}/{TENANT}/{voice}/") == []
    await raw.put(completed.object_key, backup)
    async with sealed_store(pipeline_settings) as any_reader:
        with pytest.raises(DataKeyDestroyed, match="erased"):
            await any_reader.get(completed.object_key)
    status, answer = await download(pipeline_settings, worker, completed.synthesis_id, TENANT)
    assert status == 410 and b"erased with its voice" in answer
    assert (await download(pipeline_settings, worker, completed.synthesis_id, "flooder"))[0] == 404


async def test_an_erased_voice_takes_no_new_samples(pipeline_settings, session, results):
    voice, owner = f"retired-{uuid.uuid4().hex[:6]}", Ed25519PrivateKey.generate()
    await consented_voice(session, results, voice_id=voice, owner_key=owner)
    assert (await erased_by_owner(session, results, voice, owner)).type == "erasure.completed"

    app_without_keys = MinioStore.from_settings(pipeline_settings)
    upload = await upload_sample(app_without_keys, session.publisher, data=wav_of_real_speech(4, offset=0),
                                 filename="after.wav", tenant_id=TENANT, voice_id=voice)
    rejected = await results.wait_until(lambda e: getattr(e, "sample_id", None) == upload.sample_id,
                                        timeout_s=RESULT_TIMEOUT_S)
    assert rejected and rejected[0].type == "sample.rejected" and "was erased" in rejected[0].reasons[0]


async def test_an_erasure_not_signed_by_the_owner_is_refused(session, results):
    voice = f"kept-{uuid.uuid4().hex[:6]}"
    await consented_voice(session, results, voice_id=voice)

    ended = await erased_by_owner(session, results, voice, Ed25519PrivateKey.generate())

    assert ended.type == "erasure.failed" and "not the voice owner's" in ended.reason


async def test_only_an_operator_erases_with_a_reason(pipeline_settings, session, results, dead_letters):
    voice = f"operator-{uuid.uuid4().hex[:6]}"
    await consented_voice(session, results, voice_id=voice)
    request = ErasureRequested(tenant_id=TENANT, voice_id=voice, requested_by="operator", requested_at=utc_now(),
                               reason="court order 12/2026")
    tenant = TenantKeyFiles(pipeline_settings.tenant_key_directory()).signer(TENANT)
    async with KafkaProducer(pipeline_settings.kafka_bootstrap) as producer:
        await producer.send(topics.ERASURE, key=request.key(), value=request.to_bytes(),
                            headers=tenant.headers_for(request.to_bytes()))
    letters = await dead_letters.wait_until(lambda e: e.causation_id == request.event_id, timeout_s=RESULT_TIMEOUT_S)
    assert letters and "must be signed by a voxflow worker key" in letters[0].error

    async with operator_publisher(pipeline_settings) as operator:
        await operator.publish(request.model_copy(update={"event_id": uuid.uuid4()}))
    assert (await ending_of(results, request)).type == "erasure.completed"


async def test_rotating_the_master_key_rewraps_and_every_voice_still_speaks(pipeline_settings, session, results):
    voice = f"rotated-{uuid.uuid4().hex[:6]}"
    correlation, _, _ = await consented_voice(session, results, voice_id=voice)

    rotation = await rotate_master_key(pipeline_settings)
    completed = await synthesise(session, results, voice_id=voice, correlation=correlation, text="Still mine.")

    assert rotation.rewrapped >= 1 and completed.type == "synthesis.completed"
    status = await key_status(pipeline_settings)
    assert set(status["data_keys_by_master_key"]) <= {rotation.master_key_id, "destroyed"}
