"""The object store (MinIO client against the embedded rclone S3 endpoint) and Postgres repositories."""

from __future__ import annotations

import uuid

import pytest

from infra.data_keys import SealedDocuments, data_keys_for
from infra.db import apply_migrations, create_pool
from infra.errors import InvalidObjectKey, ObjectNotFound, ObjectStoreError, ObjectStoreUnavailable
from infra.objectstore import MinioStore, open_object_store
from infra.repositories import AuditRepository, Repositories
from infra.settings import Settings
from streams.auditing import verify_audit_log

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(stack_settings):
    return await open_object_store(stack_settings.model_copy(update={"s3_bucket": f"t-{uuid.uuid4().hex[:8]}"}))


async def test_objects_round_trip_and_list_by_prefix(store):
    await store.put("samples/a/1.wav", b"one")
    await store.put("samples/a/2.wav", b"two")
    await store.put("other/3.wav", b"three")

    assert await store.get("samples/a/2.wav") == b"two"
    assert await store.list_keys("samples/a/") == ["samples/a/1.wav", "samples/a/2.wav"]
    await store.delete("samples/a/1.wav")
    assert not await store.exists("samples/a/1.wav") and await store.exists("other/3.wav")


async def test_missing_objects_and_bad_keys_raise_named_errors(store):
    with pytest.raises(ObjectNotFound):
        await store.get("nothing/here.wav")
    with pytest.raises(InvalidObjectKey):
        await store.put("../escape.wav", b"x")


async def test_an_unreachable_s3_endpoint_is_reported_as_unavailable():
    settings = Settings(_env_file=None, s3_endpoint="127.0.0.1:9")
    store = MinioStore.from_settings(settings)
    with pytest.raises(ObjectStoreUnavailable):
        await store.get("x")


async def test_a_wrong_key_is_refused_for_good(stack_settings):
    """The embedded endpoint checks signatures; a wrong secret is not worth retrying."""
    intruder = MinioStore.from_settings(stack_settings.model_copy(update={"s3_secret_key": "not-the-secret"}))
    with pytest.raises(ObjectStoreError, match="SignatureDoesNotMatch") as refused:
        await intruder.get("samples/any.wav")
    assert not isinstance(refused.value, ObjectStoreUnavailable)


@pytest.fixture
async def pool(stack_settings):
    pool = await create_pool(stack_settings.postgres_dsn)
    await apply_migrations(pool)
    yield pool
    await pool.close()


async def test_migrations_apply_once(pool):
    assert await apply_migrations(pool) == []
    names = [r["name"] for r in await pool.fetch("SELECT name FROM schema_migrations ORDER BY name")]
    assert names[0] == "0001_initial"


def repositories_over(pool, settings) -> Repositories:
    return Repositories.over(pool, audit_key=b"k" * 32, sealer=SealedDocuments(data_keys_for(settings, pool)))


async def test_profiles_are_versioned_and_replays_do_not_add_versions(pool, stack_settings):
    repos = repositories_over(pool, stack_settings)
    voice = f"v-{uuid.uuid4().hex[:6]}"
    await repos.voices.ensure_voice(voice_id=voice, tenant_id="t")
    first, second = uuid.uuid4(), uuid.uuid4()
    embedding = [0.0625] * 256

    assert await repos.profiles.save(voice_id=voice, tenant_id="t", adaptation_id=first, sample_ids=[], embedding=embedding,
                                     profile={"n": 1}) == 1
    assert await repos.profiles.save(voice_id=voice, tenant_id="t", adaptation_id=second, sample_ids=[], embedding=embedding,
                                     profile={"n": 2}) == 2
    assert await repos.profiles.save(voice_id=voice, tenant_id="t", adaptation_id=first, sample_ids=[], embedding=embedding,
                                     profile={"n": 1}) == 1
    assert (await repos.profiles.latest(voice_id=voice)).profile == {"n": 2}


async def test_tampering_with_the_audit_log_is_detected_at_the_altered_entry(pool, stack_settings):
    audit = AuditRepository(pool, stack_settings.audit_key())
    appended = [await audit.append(event_id=uuid.uuid4(), record={"decision": "accepted", "n": n}) for n in range(3)]
    assert (await verify_audit_log(stack_settings)).valid

    victim = appended[1].sequence
    await pool.execute("UPDATE audit_log SET record = jsonb_set(record, '{decision}', '\"rejected\"') "
                       "WHERE sequence = $1", victim)
    verification = await verify_audit_log(stack_settings)
    await pool.execute("UPDATE audit_log SET record = jsonb_set(record, '{decision}', '\"accepted\"') "
                       "WHERE sequence = $1", victim)

    assert not verification.valid and verification.first_invalid_sequence == victim


async def test_a_rehashed_forgery_is_caught_because_the_chain_is_keyed(pool, stack_settings):
    from processors.trust.audit_chain import audit_record_hash

    audit = AuditRepository(pool, stack_settings.audit_key())
    entry = await audit.append(event_id=uuid.uuid4(), record={"decision": "rejected"})
    forged = {"decision": "accepted"}
    forged_hash = audit_record_hash(entry.previous_hash, entry.sequence, forged)  # the attacker lacks the key
    original = await pool.fetchrow("SELECT record, record_hash FROM audit_log WHERE sequence = $1", entry.sequence)
    await pool.execute("UPDATE audit_log SET record = $2, record_hash = $3 WHERE sequence = $1",
                       entry.sequence, forged, forged_hash)
    verification = await verify_audit_log(stack_settings)
    await pool.execute("UPDATE audit_log SET record = $2, record_hash = $3 WHERE sequence = $1",
                       entry.sequence, original["record"], original["record_hash"])

    assert not verification.valid and verification.first_invalid_sequence == entry.sequence


async def test_a_unit_of_work_commits_its_writes_together_or_not_at_all(pool, stack_settings):
    from datetime import datetime, timezone

    repos = repositories_over(pool, stack_settings)
    voice, kept, dropped = f"v-{uuid.uuid4().hex[:6]}", uuid.uuid4(), uuid.uuid4()
    request = dict(voice_id=voice, tenant_id="t", text="Hi.", language="en", purpose="narration", controls={},
                   requested_at=datetime.now(timezone.utc), status="accepted")

    async with repos.transaction() as unit:
        await unit.voices.ensure_voice(voice_id=voice, tenant_id="t")
        await unit.syntheses.record_request(synthesis_id=kept, **request)
    with pytest.raises(ConnectionResetError):
        async with repos.transaction() as unit:
            await unit.syntheses.record_request(synthesis_id=dropped, **request)
            raise ConnectionResetError("the worker died before the unit of work ended")

    assert await repos.syntheses.get(synthesis_id=kept) is not None
    assert await repos.syntheses.get(synthesis_id=dropped) is None
