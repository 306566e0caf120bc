"""Kafka plumbing over aiokafka: topic creation, a durable producer, ad-hoc consumers for the CLI, SCRAM users.

Every client logs in as its ``BrokerSecurity`` says (anonymously by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (KafkaConnectionError, KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError,
                             for_code)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (CompactArray, CompactBytes, CompactString, Int8, Int16, Int32, Schema,
                                     TaggedFields)

from infra.errors import (BrokerAuthenticationFailed, BrokerUnavailable, BrokerUserRefused, EventRefusedByBroker,
                          InfraError)
from voxflow.broker_login import ANONYMOUS, BrokerSecurity, ScramMechanism, login_refusal

log = logging.getLogger("voxflow.kafka")


ADMIN_TIMEOUT_MS = 15000


async def unavailable_or_refused(bootstrap: str, security: BrokerSecurity, message: str) -> InfraError:
    """What a client's failed start means: ``BrokerAuthenticationFailed`` when a fresh login is refused, else
    ``BrokerUnavailable``."""
    refusal = await login_refusal(bootstrap, security)
    if refusal is not None:
        return BrokerAuthenticationFailed(f"Kafka at {bootstrap} refused the login of {security.username!r} "
                                          f"({security.mechanism}): {type(refusal).__name__}: {refusal}")
    return BrokerUnavailable(message)


async def ensure_topics(bootstrap: str, names: Iterable[str], *, partitions: int, replication: int,
                        security: BrokerSecurity = ANONYMOUS) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS,
                                **security.client_options())
    try:
        await admin.start()
    except KafkaError as error:
        raise await unavailable_or_refused(bootstrap, security,
                                           f"cannot reach Kafka at {bootstrap}: {error}") from error
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            response = await admin.create_topics([NewTopic(n, partitions, replication) for n in missing])
            _raise_topic_errors(response.topic_errors)
        return missing
    finally:
        await admin.close()


def _raise_topic_errors(topic_errors) -> None:
    """create_topics reports per-topic failures in its response instead of raising them."""
    failures = [(name, code, message) for name, code, message, *_ in topic_errors
                if code not in (0, TopicAlreadyExistsError.errno)]
    if failures:
        raise BrokerUnavailable(f"could not create topics: {failures}")


async def list_topics(bootstrap: str, *, security: BrokerSecurity = ANONYMOUS) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS,
                                **security.client_options())
    try:
        await admin.start()
        return sorted(await admin.list_topics())
    except KafkaError as error:
        raise await unavailable_or_refused(bootstrap, security,
                                           f"cannot reach Kafka at {bootstrap}: {error}") from error
    finally:
        await admin.close()


# aiokafka logs through these (its client module through "aiokafka" itself); a logger's filter sees only
# the records logged to it, not those its children pass up, so each one is named.
AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.cluster", "aiokafka.consumer.consumer",
                    "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator", "aiokafka.producer.producer",
                    "aiokafka.producer.sender", "faust.transport.drivers.aiokafka")
# What aiokafka says, once per attempt of each of its connections, while no broker answers. UnknownError is
# Tansu's answer while its storage is gone.
CONNECTION_FAILURE_SIGNS = ("KafkaConnectionError", "Unable connect to", "Unable to update metadata",
                            "Unable to request metadata", "coordinator dead", "Heartbeat session expired",
                            "NodeNotReadyError", "RequestTimedOutError", "UnknownError")


class BrokerReachability(logging.Filter):
    """One log line when the broker goes away and one when it is back, instead of aiokafka's line per attempt.

    Installed on aiokafka's loggers, it turns their connection failures into the first line and quiets every
    aiokafka warning while the broker is away (they are all that outage). ``regained()``, called on the next
    acknowledged send or answered metadata request, writes the second.
    """

    def __init__(self, bootstrap: str, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.bootstrap = bootstrap
        self._clock = clock
        self._lost_at: float | None = None
        self._quieted = 0
        self.failures_seen = 0

    @property
    def reachable(self) -> bool:
        return self._lost_at is None

    def lost(self, why: str) -> None:
        if self._lost_at is not None:
            return
        self._lost_at, self._quieted = self._clock(), 0
        log.warning("broker at %s unreachable since %s (%s); its clients retry quietly until it is back",
                    self.bootstrap, datetime.now(timezone.utc).strftime("%H:%M:%S"), why)

    def regained(self) -> None:
        if self._lost_at is None:
            return
        away_s, self._lost_at = self._clock() - self._lost_at, None
        log.warning("broker at %s back after %.0f s (%d client errors quieted meanwhile)", self.bootstrap, away_s,
                    self._quieted)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        if any(sign in message for sign in CONNECTION_FAILURE_SIGNS):
            self.failures_seen += 1
            self.lost(message)
        if self._lost_at is None:
            return True
        self._quieted += 1
        return False

    def install(self) -> None:
        for name in AIOKAFKA_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def uninstall(self) -> None:
        for name in AIOKAFKA_LOGGERS:
            logging.getLogger(name).removeFilter(self)


async def probe_while_unreachable(producer: "KafkaProducer", interval_s: float = 1.0) -> None:
    """A metadata request every ``interval_s`` while the producer's broker counts as lost, so that its return
    is noticed (and said) even when nothing is being sent.

    An answer counts only if no client failed meanwhile: Tansu without its storage still answers metadata,
    with an error per topic.
    """
    reachability = producer.reachability
    while True:
        await asyncio.sleep(interval_s)
        if reachability is None or reachability.reachable:
            continue
        failures_before = reachability.failures_seen
        with contextlib.suppress(BrokerUnavailable):
            await producer.check()
            if reachability.failures_seen == failures_before:
                reachability.regained()


class KafkaProducer:
    """Sends and waits for the broker's acknowledgement, so nothing counts as published before it is.

    With ``reachability``, each failed send marks the broker lost and each acknowledged one marks it back.
    """

    def __init__(self, bootstrap: str, reachability: BrokerReachability | None = None, *,
                 security: BrokerSecurity = ANONYMOUS):
        self.bootstrap = bootstrap
        self.reachability = reachability
        self.security = security
        # No linger: a stage awaits each outcome's acknowledgement before the next, so a 5 ms linger cost 10.4 ms
        # per send against 2.7-3.6 ms without (embedded broker); sends made at once still share batches.
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0,
                                          **security.client_options())

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaConnectionError as error:
            raise await unavailable_or_refused(self.bootstrap, self.security,
                                               f"cannot reach Kafka at {self.bootstrap}: {error}") from error

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Raises ``EventRefusedByBroker`` for a message too large to ever be accepted, else ``BrokerUnavailable``."""
        try:
            await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)
        except MessageSizeTooLargeError as error:
            raise EventRefusedByBroker(f"{len(value)} bytes refused by {topic}: {error}") from error
        except KafkaError as error:  # timeouts, lost leaders, dropped connections: they clear up
            self._lost(f"cannot publish to {topic}: {error}")
            raise BrokerUnavailable(f"cannot publish to {topic}: {error}") from error
        self._regained()

    async def check(self) -> None:
        """A metadata request over the producer's connections; ``BrokerUnavailable`` when no broker answers."""
        try:
            await self._producer.client.fetch_all_metadata()
        except KafkaError as error:
            self._lost(f"no metadata: {error}")
            raise BrokerUnavailable(f"no metadata from Kafka at {self.bootstrap}: {error}") from error

    def _lost(self, why: str) -> None:
        if self.reachability is not None:
            self.reachability.lost(why)

    def _regained(self) -> None:
        if self.reachability is not None:
            self.reachability.regained()

    async def __aenter__(self) -> "KafkaProducer":
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()


async def consume(bootstrap: str, topics: list[str], *, idle_timeout_s: float | None = None,
                  security: BrokerSecurity = ANONYMOUS
                  ) -> AsyncIterator[tuple[str, int, int, bytes | None, bytes, list[tuple[str, bytes]]]]:
    """Yield (topic, partition, offset, key, value, headers) from the start of each topic, without a consumer group.

    With `idle_timeout_s`, stops once nothing arrived for that long; otherwise follows forever.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", **security.client_options())
    try:
        await consumer.start()
        await consumer.topics()
    except KafkaError as error:
        raise await unavailable_or_refused(bootstrap, security,
                                           f"cannot reach Kafka at {bootstrap}: {error}") from error
    try:
        consumer.assign([TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()])
        while True:
            batches = await consumer.getmany(timeout_ms=int((idle_timeout_s or 1.0) * 1000))
            if not batches and idle_timeout_s is not None:
                return
            for records in batches.values():
                for record in records:
                    yield (record.topic, record.partition, record.offset, record.key, record.value,
                           list(record.headers or ()))
    finally:
        await consumer.stop()


async def read_topics(bootstrap: str, topics: list[str], *, from_beginning: bool, follow: bool,
                      security: BrokerSecurity = ANONYMOUS
                      ) -> AsyncIterator[tuple[str, int, int, bytes | None, bytes, list[tuple[str, bytes]]]]:
    """Yield (topic, partition, offset, key, value, headers) from each partition's start, or its end, without a group.

    Without ``follow`` it stops once past the end offsets the partitions had when reading began, so the read
    is bounded by what was there, not by how long the broker takes to answer. Whole fetched batches are
    yielded: Tansu reports an end offset inside the last batch, and cutting there would lose its tail.
    """
    consumer = await _started_consumer(bootstrap, security)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        await (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*partitions)
        ends = None if follow else await consumer.end_offsets(partitions)
        while follow or await _behind(consumer, ends):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    yield (record.topic, record.partition, record.offset, record.key, record.value,
                           list(record.headers or ()))
    except KafkaError as error:
        raise BrokerUnavailable(f"lost Kafka at {bootstrap} while reading {', '.join(topics)}: {error}") from error
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    return any([await consumer.position(partition) < end for partition, end in ends.items()])


@dataclass(frozen=True)
class PartitionOffsets:
    """One partition's log span and how far a consumer group has committed in it (``committed`` None: never)."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int
    committed: int | None

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(self.end_offset - self.committed, 0)


async def partition_offsets(bootstrap: str, topics: list[str], *, group_id: str,
                            security: BrokerSecurity = ANONYMOUS) -> list[PartitionOffsets]:
    """Every partition of ``topics`` (those that exist), with its start and end offsets and ``group_id``'s commit."""
    consumer = await _started_consumer(bootstrap, security)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS,
                                **security.client_options())
    try:
        await admin.start()
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
    except KafkaError as error:
        raise BrokerUnavailable(f"cannot read offsets from Kafka at {bootstrap}: {error}") from error
    finally:
        await admin.close()
        await consumer.stop()
    return [PartitionOffsets(tp.topic, tp.partition, starts[tp], ends[tp], _committed_offset(committed.get(tp)))
            for tp in partitions]


def _committed_offset(committed) -> int | None:
    """The group's committed offset; Kafka answers -1 for a partition the group never committed in."""
    return committed.offset if committed is not None and committed.offset >= 0 else None


async def _started_consumer(bootstrap: str, security: BrokerSecurity) -> AIOKafkaConsumer:
    """A started consumer without a group, its metadata loaded (so ``partitions_for_topic`` knows every topic)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                **security.client_options())
    try:
        await consumer.start()
        await consumer.topics()
    except KafkaError as error:
        await consumer.stop()
        raise await unavailable_or_refused(bootstrap, security,
                                           f"cannot reach Kafka at {bootstrap}: {error}") from error
    return consumer


# --- SCRAM users ---------------------------------------------------------------------------------
# aiokafka has no AlterUserScramCredentials (API key 51, KIP-554); v0 is its only version, flexible.

SCRAM_ITERATIONS = 8192  # RFC 7677 recommends at least 4096; Kafka accepts 4096 to 16384; `tansu user create`'s default
SCRAM_SALT_BYTES = 32
SCRAM_MECHANISM_CODES: dict[str, int] = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
SCRAM_HASHES: dict[str, str] = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


class AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(("user", CompactString("utf-8")), ("error_code", Int16),
                                 ("error_message", CompactString("utf-8")), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        ("upsertions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("iterations", Int32),
                                    ("salt", CompactBytes), ("salted_password", CompactBytes),
                                    ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest(Request[AlterUserScramCredentialsRequest_v0]):
    API_KEY = 51

    def __init__(self, upsertions: list[tuple[str, int, int, bytes, bytes, dict]]):
        self._upsertions = upsertions

    def build(self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]
              ) -> AlterUserScramCredentialsRequest_v0:
        return request_struct_class([], self._upsertions, {})


def salted_password(password: str, salt: bytes, iterations: int, mechanism: ScramMechanism) -> bytes:
    """RFC 5802's SaltedPassword: Hi(Normalize(password), salt, i), PBKDF2 with the mechanism's HMAC.

    No SASLprep: aiokafka's SCRAM login does none either, and both sides must hash the same bytes.
    """
    return hashlib.pbkdf2_hmac(SCRAM_HASHES[mechanism], password.encode(), salt, iterations)


async def upsert_scram_user(bootstrap: str, username: str, password: str, *, mechanism: ScramMechanism,
                            security: BrokerSecurity = ANONYMOUS) -> None:
    """Create ``username`` with ``password`` for ``mechanism``, or set its password anew."""
    salt = secrets.token_bytes(SCRAM_SALT_BYTES)
    upsertion = (username, SCRAM_MECHANISM_CODES[mechanism], SCRAM_ITERATIONS, salt,
                 salted_password(password, salt, SCRAM_ITERATIONS, mechanism), {})
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS,
                            **security.client_options())
    try:
        await client.bootstrap()
        response = await client.send(client.get_random_node(), AlterUserScramCredentialsRequest([upsertion]))
    except KafkaError as error:
        raise await unavailable_or_refused(bootstrap, security, f"cannot reach Kafka at {bootstrap} to set SCRAM "
                                                                f"user {username!r}: {error}") from error
    finally:
        await client.close()
    for user, error_code, error_message, _tags in response.results:
        if error_code:
            raise BrokerUserRefused(f"Kafka at {bootstrap} did not set SCRAM user {user!r}: "
                                    f"{for_code(error_code).__name__}: {error_message}")
