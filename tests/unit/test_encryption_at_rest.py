"""Encryption at rest: what lands in the store is ciphertext, opens only in its place, and dies with its key."""

from __future__ import annotations

import pytest

from infra.data_keys import DataKeys, MasterKeyring, voice_scope
from infra.encrypted_store import EncryptedObjectStore, SealedObjectUnreadable
from infra.errors import DataKeyDestroyed, InvalidObjectKey, MasterKeyMissing
from processors.trust.envelope import SealedBlobError, new_data_key, open_sealed, seal, unwrap_data_key, wrap_data_key
from tests.unit.fakes import InMemoryDataKeyRepository, InMemoryStore

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4
SAMPLE = "samples/acme/v1/s1/normalised.wav"


@pytest.fixture
def keyring(tmp_path):
    return MasterKeyring(tmp_path / "master-keys")


@pytest.fixture
def repository():
    return InMemoryDataKeyRepository()


@pytest.fixture
def backing():
    return InMemoryStore()


@pytest.fixture
def store(backing, keyring, repository):
    return EncryptedObjectStore(backing, DataKeys(keyring, repository))


def test_a_sealed_blob_opens_only_with_its_key_and_in_its_place():
    data_key = new_data_key()
    sealed = seal(WAV, data_key, SAMPLE)

    assert open_sealed(sealed, data_key, SAMPLE) == WAV
    with pytest.raises(SealedBlobError):
        open_sealed(sealed, data_key, "samples/acme/v2/s1/normalised.wav")  # copied into another voice
    altered = bytearray(sealed)
    altered[-40] ^= 1
    with pytest.raises(SealedBlobError):
        open_sealed(bytes(altered), data_key, SAMPLE)


def test_a_wrapped_data_key_needs_its_master_key_and_scope():
    data_key, master, other = new_data_key(), b"m" * 32, b"o" * 32
    wrapped = wrap_data_key(data_key, master, "voice:acme/v1")

    assert unwrap_data_key(wrapped, data_key.key_id, master, "voice:acme/v1") == data_key
    for key, scope in ((other, "voice:acme/v1"), (master, "voice:acme/v2")):
        with pytest.raises(SealedBlobError):
            unwrap_data_key(wrapped, data_key.key_id, key, scope)


async def test_the_store_holds_ciphertext_and_gives_back_the_audio(store, backing):
    await store.put(SAMPLE, WAV)

    assert WAV[:64] not in backing.objects[SAMPLE] and not backing.objects[SAMPLE].startswith(b"RIFF")
    assert await store.get(SAMPLE) == WAV


async def test_each_voice_has_its_own_data_key(store, repository):
    await store.put(SAMPLE, WAV)
    await store.put("syntheses/acme/v2/x/output.wav", WAV)

    first, second = repository.rows[voice_scope("acme", "v1")], repository.rows[voice_scope("acme", "v2")]
    assert first.key_id != second.key_id and first.wrapped_key != second.wrapped_key


async def test_plaintext_is_accepted_only_where_upstream_apps_put_files(store, backing):
    backing.objects["uploads/acme/v1/a.wav"] = WAV
    backing.objects[SAMPLE] = WAV

    assert await store.get("uploads/acme/v1/a.wav") == WAV
    with pytest.raises(SealedObjectUnreadable, match="plaintext"):
        await store.get(SAMPLE)


async def test_a_sealed_object_moved_to_another_key_does_not_open(store, backing):
    await store.put(SAMPLE, WAV)
    backing.objects["samples/acme/v1/s2/normalised.wav"] = backing.objects[SAMPLE]

    with pytest.raises(SealedObjectUnreadable):
        await store.get("samples/acme/v1/s2/normalised.wav")


async def test_keys_outside_every_owner_area_are_refused(store):
    with pytest.raises(InvalidObjectKey):
        await store.put("elsewhere/acme/v1/a.wav", WAV)


async def test_after_the_key_is_destroyed_no_copy_opens_and_nothing_new_is_written(store, backing, keyring,
                                                                                   repository):
    await store.put(SAMPLE, WAV)
    backup = dict(backing.objects)
    await store.data_keys.destroy(voice_scope("acme", "v1"))
    backing.objects.update(backup)  # the copy an erasure missed

    another_worker = EncryptedObjectStore(backing, DataKeys(keyring, repository))
    for reader in (store, another_worker):
        with pytest.raises(DataKeyDestroyed, match="erased"):
            await reader.get(SAMPLE)
    with pytest.raises(DataKeyDestroyed):
        await store.put("syntheses/acme/v1/late/chunk-0.wav", WAV)  # a straggling chunk


async def test_rotation_rewraps_every_key_and_old_objects_open_without_the_old_master_key(
        store, backing, keyring, repository):
    await store.put(SAMPLE, WAV)
    sealed_before = backing.objects[SAMPLE]
    old_master = keyring.active()[0]
    new_master = keyring.rotate()

    assert await store.data_keys.rewrap_all() == 1
    (keyring.directory / f"{old_master}.key").unlink()
    fresh = EncryptedObjectStore(backing, DataKeys(MasterKeyring(keyring.directory), repository))

    assert await fresh.get(SAMPLE) == WAV and backing.objects[SAMPLE] == sealed_before
    assert await repository.count_by_master_key() == {new_master: 1}


async def test_a_data_key_under_a_master_key_this_machine_lacks_is_named(store, repository, tmp_path):
    await store.put(SAMPLE, WAV)
    elsewhere = EncryptedObjectStore(store.inner, DataKeys(MasterKeyring(tmp_path / "other"), repository))

    with pytest.raises(MasterKeyMissing, match="copy it"):
        await elsewhere.get(SAMPLE)


async def test_a_machine_without_the_deployments_master_keys_refuses_to_start(store, repository, tmp_path):
    await store.put(SAMPLE, WAV)
    new_host = DataKeys(MasterKeyring(tmp_path / "empty"), repository)

    with pytest.raises(MasterKeyMissing, match="VOXFLOW_MASTER_KEYS_DIR"):
        await new_host.check_keyring()
    await store.data_keys.check_keyring()
