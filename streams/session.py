"""Opening and closing the clients a worker, the CLI or the demo needs."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import AsyncIterator

import asyncpg

from infra.data_keys import data_keys_for
from infra.db import apply_migrations, create_pool
from infra.encrypted_store import EncryptedObjectStore
from infra.kafka import KafkaProducer, ensure_topics
from infra.objectstore import ObjectStore, open_object_store
from infra.settings import Settings
from infra.signing_keys import TenantKeyFiles, worker_signer
from streams.publisher import EventPublisher, signed_by, signed_by_tenant
from streams.topics import ALL_TOPICS


@dataclass
class ClientSession:
    publisher: EventPublisher
    store: ObjectStore | None


@contextlib.asynccontextmanager
async def client_session(settings: Settings, *, with_store: bool = True) -> AsyncIterator[ClientSession]:
    """An upstream app's session: each event it publishes is signed by its tenant's key under
    ``settings.tenant_key_directory()`` (``TenantKeyMissing`` names the command that makes one); its store
    seals what it puts (an app without the keys may put plaintext uploads: ingest seals them)."""
    signer_for = signed_by_tenant(TenantKeyFiles(settings.tenant_key_directory()))
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(sealed_store(settings)) if with_store else None
        producer = await stack.enter_async_context(KafkaProducer(settings.kafka_bootstrap,
                                                                 security=settings.broker_security()))
        yield ClientSession(EventPublisher(producer, signer_for), store)


@contextlib.asynccontextmanager
async def operator_publisher(settings: Settings) -> AsyncIterator[EventPublisher]:
    """Publishes signed by the worker key: what only the deployment's operator may send (an erasure with a reason)."""
    async with KafkaProducer(settings.kafka_bootstrap, security=settings.broker_security()) as producer:
        yield EventPublisher(producer, signed_by(worker_signer(settings)))


@contextlib.asynccontextmanager
async def sealed_store(settings: Settings) -> AsyncIterator[ObjectStore]:
    """The object store as the operator's tools see it: objects sealed and opened with the deployment's keys
    (the master keys under ``settings.master_key_directory()``, the wrapped data keys in Postgres)."""
    async with database(settings) as pool:
        data_keys = data_keys_for(settings, pool)
        await data_keys.check_keyring()
        yield EncryptedObjectStore(await open_object_store(settings), data_keys)


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.postgres_dsn)
    try:
        yield pool
    finally:
        await pool.close()


async def prepare_stack(settings: Settings) -> dict[str, list[str]]:
    """Create missing topics, apply migrations, make the bucket: safe to run on every start."""
    created = await ensure_topics(settings.kafka_bootstrap, ALL_TOPICS, partitions=settings.topic_partitions,
                                  replication=settings.topic_replication, security=settings.broker_security())
    async with database(settings) as pool:
        migrated = await apply_migrations(pool)
    await open_object_store(settings)
    return {"topics_created": created, "migrations_applied": migrated}
