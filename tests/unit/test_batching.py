"""Control stages take their events in batches: each event still meets the fate it would meet alone."""

import copy
import uuid
from contextlib import asynccontextmanager

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.events import AnomalyDetected, AuditRecorded, ConsentGranted
from streams.context import Limits, StageContext
from streams.processing import MessageLocation, RetryPolicy, StageMessage, StageProcessor
from streams.stages import stages_named
from tests.unit.fakes import (FakeAdaptations, FakeConsents, FakeVoices, InMemoryStore, RecordingPublisher,
                              TrustingAuthenticator)
from voxflow.envelopes import signed_consent

NO_WAITING = RetryPolicy(transient_retry_s=0.05, base_delay_s=0.001, max_delay_s=0.005)
# Postgres refuses a NUL character in text and jsonb: an event that parses, yet no database takes it
UNSTORABLE = "\x00"


class BatchInbox:
    def __init__(self):
        self.done: set = set()
        self.queries = 0

    async def seen_among(self, *, consumer, event_ids):
        self.queries += 1
        return {event_id for event_id in event_ids if (consumer, event_id) in self.done}

    async def mark_all_processed(self, *, consumer, event_ids):
        self.queries += 1
        self.done |= {(consumer, event_id) for event_id in event_ids}


class ChainedAudit:
    """The audit chain as a list of event ids; refuses what Postgres would, and can be down for a while."""

    def __init__(self, outage: int = 0):
        self.chain: list = []
        self.outage = outage

    async def append(self, *, event_id, record):
        await self.append_many([(event_id, record)])

    async def append_many(self, records):
        if self.outage:
            self.outage -= 1
            raise ConnectionRefusedError("Postgres is restarting")
        if any(UNSTORABLE in str(value) for _, record in records for value in record.values()):
            raise ValueError("invalid byte sequence for encoding UTF8: 0x00")
        self.chain += [event_id for event_id, _ in records if event_id not in self.chain]


class RecordedAnomalies:
    def __init__(self):
        self.rows: dict = {}

    async def record(self, **row):
        await self.record_many([row])

    async def record_many(self, rows):
        if any(UNSTORABLE in row["detail"] for row in rows):
            raise ValueError("invalid byte sequence for encoding UTF8: 0x00")
        for row in rows:
            self.rows.setdefault(row["event_id"], row)


class ControlRepositories:
    """A unit of work over the fakes: what a block wrote is undone when it raises, as a savepoint would."""

    def __init__(self, audit: ChainedAudit | None = None):
        self.inbox = BatchInbox()
        self.audit = audit or ChainedAudit()
        self.anomalies = RecordedAnomalies()

    @asynccontextmanager
    async def transaction(self):
        saved = copy.deepcopy((self.audit.chain, self.anomalies.rows))
        try:
            yield self
        except BaseException:
            self.audit.chain, self.anomalies.rows = saved
            raise



def control_processor(repos: ControlRepositories) -> tuple[StageProcessor, RecordingPublisher]:
    publisher = RecordingPublisher()
    context = StageContext(repos=repos, store=InMemoryStore(), watermark_key=b"k" * 32)
    return StageProcessor(context, publisher, TrustingAuthenticator(), policy=NO_WAITING), publisher


def audit_record(n: int, action: str = "bench.load") -> AuditRecorded:
    return AuditRecorded(tenant_id="t", voice_id=f"v{n}", stage="ingest", action=action, decision="accepted",
                         subject_event_id=uuid.uuid4())


def anomaly(n: int, detail: str = "rate exceeded") -> AnomalyDetected:
    return AnomalyDetected(tenant_id="t", voice_id=f"v{n}", kind="rate_exceeded", severity="info", detail=detail,
                           action="alert")


def messages(topic: str, events) -> list[StageMessage]:
    return [StageMessage(e.to_bytes(), MessageLocation(topic, 0, offset)) for offset, e in enumerate(events)]


async def test_a_batch_of_audit_records_is_chained_in_the_order_it_came_and_marked_done_in_one_query():
    repos = ControlRepositories()
    processor, _ = control_processor(repos)
    records = [audit_record(n) for n in range(20)]
    await processor.process_batch(stages_named(["audit"])[0], messages("voxflow.audit", records))

    assert repos.audit.chain == [r.event_id for r in records]
    assert repos.inbox.queries == 2  # one look at the inbox, one marking the batch done
    assert {event_id for _, event_id in repos.inbox.done} == {r.event_id for r in records}


async def test_one_unstorable_record_is_dead_lettered_alone_and_the_rest_of_its_batch_is_chained():
    repos = ControlRepositories()
    processor, publisher = control_processor(repos)
    records = [audit_record(0), audit_record(1, action=f"bad{UNSTORABLE}"), audit_record(2)]
    await processor.process_batch(stages_named(["audit"])[0], messages("voxflow.audit", records))

    assert repos.audit.chain == [records[0].event_id, records[2].event_id]
    [dead] = publisher.dead_letters()
    assert (dead.reason, dead.offset) == ("HandlerError", 1) and "0x00" in dead.error
    assert ("audit", records[1].event_id) not in repos.inbox.done


async def test_one_unstorable_anomaly_is_dead_lettered_alone_and_the_others_are_recorded():
    repos = ControlRepositories()
    processor, publisher = control_processor(repos)
    anomalies = [anomaly(0), anomaly(1, detail=UNSTORABLE), anomaly(2), anomaly(3)]
    await processor.process_batch(stages_named(["anomaly"])[0], messages("voxflow.anomalies", anomalies))

    assert set(repos.anomalies.rows) == {anomalies[n].event_id for n in (0, 2, 3)}
    assert [d.offset for d in publisher.dead_letters()] == [1]


async def test_an_event_twice_in_one_batch_is_chained_once():
    repos = ControlRepositories()
    processor, publisher = control_processor(repos)
    record = audit_record(0)
    await processor.process_batch(stages_named(["audit"])[0], messages("voxflow.audit", [record, audit_record(1), record]))

    assert repos.audit.chain.count(record.event_id) == 1 and len(repos.audit.chain) == 2
    assert not publisher.dead_letters()


async def test_a_redelivered_batch_adds_nothing():
    repos = ControlRepositories()
    processor, _ = control_processor(repos)
    batch = messages("voxflow.audit", [audit_record(n) for n in range(5)])
    await processor.process_batch(stages_named(["audit"])[0], batch)
    chained = list(repos.audit.chain)
    await processor.process_batch(stages_named(["audit"])[0], batch)

    assert repos.audit.chain == chained


async def test_a_database_outage_during_a_batch_is_waited_out_and_each_record_chained_once():
    repos = ControlRepositories(ChainedAudit(outage=2))
    processor, publisher = control_processor(repos)
    records = [audit_record(n) for n in range(5)]
    await processor.process_batch(stages_named(["audit"])[0], messages("voxflow.audit", records))

    assert repos.audit.chain == [r.event_id for r in records]
    assert not publisher.dead_letters()


async def test_malformed_bytes_in_a_batch_are_dead_lettered_and_the_other_events_handled():
    repos = ControlRepositories()
    processor, publisher = control_processor(repos)
    records = [audit_record(0), audit_record(1)]
    batch = messages("voxflow.audit", records)
    batch.insert(1, StageMessage(b"\xff not json", MessageLocation("voxflow.audit", 0, 7)))
    await processor.process_batch(stages_named(["audit"])[0], batch)

    assert repos.audit.chain == [r.event_id for r in records]
    assert [(d.reason, d.offset) for d in publisher.dead_letters()] == [("MalformedEvent", 7)]


class ConsentRepositories(ControlRepositories):
    def __init__(self):
        super().__init__()
        self.voices, self.consents, self.adaptations = FakeVoices(), FakeConsents(), FakeAdaptations()


def consent_processor() -> tuple[StageProcessor, RecordingPublisher, ConsentRepositories]:
    repos, publisher = ConsentRepositories(), RecordingPublisher()
    context = StageContext(repos=repos, store=InMemoryStore(), watermark_key=b"k" * 32,
                           limits=Limits(require_spoken_consent=False))
    return StageProcessor(context, publisher, TrustingAuthenticator(), policy=NO_WAITING), publisher, repos


def grant(voice_id: str) -> ConsentGranted:
    return signed_consent(Ed25519PrivateKey.generate(), tenant_id="t", voice_id=voice_id, owner_id="owner",
                          purposes=["narration"], languages=["en"], statement_text="I consent.")


async def test_a_copied_grant_later_in_the_same_batch_is_refused_as_a_duplicate_of_the_first():
    processor, publisher, repos = consent_processor()
    first = grant("v1")
    copied = first.model_copy(update={"event_id": uuid.uuid4()})
    await processor.process_batch(stages_named(["consent"])[0],
                                  messages("voxflow.consent", [first, grant("v2"), copied]))

    decisions = {(e.causation_id, e.type) for e in publisher.events if e.type.startswith("consent.")}
    assert (first.event_id, "consent.verified") in decisions and (copied.event_id, "consent.rejected") in decisions
    assert len(repos.consents.decisions) == 2
