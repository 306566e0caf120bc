"""In-memory stand-ins for the repositories and the object store, for handler tests."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np

from infra.data_keys import WrappedDataKey
from infra.errors import ObjectNotFound
from infra.records import (ConsentRecord, DubRecord, ProfileVersion, SampleRecord, SynthesisChunk, SynthesisRecord,
                           VoiceRecord)
from infra.repositories import (Block, ConsentDecision, StalledDub, StalledSynthesis, VoiceErased,
                                VoiceOwnedByAnotherTenant)
from streams.context import Limits, StageContext

STORED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


class InMemoryStore:
    def __init__(self, objects: dict[str, bytes] | None = None):
        self.objects = dict(objects or {})

    async def put(self, key, data, *, content_type="application/octet-stream"):
        self.objects[key] = data

    async def get(self, key):
        if key not in self.objects:
            raise ObjectNotFound(key)
        return self.objects[key]

    async def delete(self, key):
        self.objects.pop(key, None)

    async def exists(self, key):
        return key in self.objects

    async def list_keys(self, prefix):
        return sorted(key for key in self.objects if key.startswith(prefix))


class FakeVoices:
    """The voices table: ``owners`` (voice id → tenant), with the ids in ``protected``, ``cleared`` (for review) and
    ``erased``."""

    def __init__(self):
        self.owners: dict[str, str] = {}
        self.protected: set[str] = set()
        self.cleared: set[str] = set()
        self.erased: set[str] = set()

    async def ensure_voice(self, *, voice_id, tenant_id):
        (refusal,) = await self.ensure_voices(claims=[(voice_id, tenant_id)])
        if refusal is not None:
            raise refusal

    async def ensure_voices(self, *, claims):
        refusals = []
        for voice_id, tenant_id in claims:
            if self.owners.setdefault(voice_id, tenant_id) != tenant_id:
                refusals.append(VoiceOwnedByAnotherTenant(f"voice {voice_id!r} belongs to another tenant"))
            elif voice_id in self.erased:
                refusals.append(VoiceErased(f"voice {voice_id!r} was erased: its id cannot be used again"))
            else:
                refusals.append(None)
        return refusals

    async def get_voice(self, *, voice_id) -> VoiceRecord | None:
        return self.record(voice_id) if voice_id in self.owners else None

    def record(self, voice_id: str) -> VoiceRecord:
        return VoiceRecord(voice_id, self.owners[voice_id], protected=voice_id in self.protected,
                           review_cleared_at=STORED_AT if voice_id in self.cleared else None,
                           erased_at=STORED_AT if voice_id in self.erased else None)

    async def clear_review(self, *, voice_id) -> bool:
        self.cleared.add(voice_id)
        return voice_id in self.owners

    async def set_protected(self, *, voice_id, protected) -> bool:
        (self.protected.add if protected else self.protected.discard)(voice_id)
        return voice_id in self.owners


class FakeSamples:
    """The samples table in a dict: a decision replaces the sample's earlier one, as the upsert does."""

    def __init__(self, *samples: SampleRecord):
        self.rows: dict[uuid.UUID, SampleRecord] = {sample.sample_id: sample for sample in samples}

    async def record_decision(self, *, sample_id, voice_id, tenant_id, object_key, status, normalised_key=None,
                              reasons=(), suggestions=(), speech_s=None, quality=None) -> None:
        self.rows[sample_id] = SampleRecord(
            sample_id=sample_id, voice_id=voice_id, tenant_id=tenant_id, object_key=object_key, status=status,
            decided_at=datetime.now(timezone.utc), normalised_key=normalised_key, reasons=list(reasons),
            suggestions=list(suggestions), speech_s=speech_s, quality=quality or {})

    async def decisions(self, *, voice_id, sample_ids) -> dict[uuid.UUID, SampleRecord]:
        return {sample_id: self.rows[sample_id] for sample_id in sample_ids
                if sample_id in self.rows and self.rows[sample_id].voice_id == voice_id}

    async def accepted_for_voice(self, *, voice_id) -> list[SampleRecord]:
        return sorted((sample for sample in self.rows.values() if sample.voice_id == voice_id
                       and sample.status == "accepted"), key=lambda sample: sample.decided_at)


class FakeConsents:
    """The consents table: each consent's first decision stands; revocations and uses are counted as the real
    repository counts them."""

    def __init__(self):
        self.decisions = []
        self.revocations: dict = {}  # consent id → revoked at
        self.uses: dict = {}  # consent id → uses claimed

    def verified(self, granted) -> None:
        """Store ``granted`` (a signed ``consent.granted``) as verified, as the consent stage would."""
        self.decisions.append(ConsentDecision(
            consent_id=granted.consent_id, voice_id=granted.voice_id, tenant_id=granted.tenant_id,
            owner_id=granted.owner_id, owner_public_key=b"", status="verified", reasons=[],
            purposes=list(granted.purposes), languages=list(granted.languages), issued_at=granted.issued_at,
            expires_at=granted.expires_at, max_uses=granted.max_uses, document=granted.model_dump(mode="json"),
            signature=b""))

    async def record_decision(self, decision):
        if await self.get(consent_id=decision.consent_id) is None:  # the table keeps a consent's first decision
            self.decisions.append(decision)

    async def record_decisions(self, decisions):
        for decision in decisions:
            await self.record_decision(decision)

    async def get_many(self, *, consent_ids):
        stored = {consent_id: await self.get(consent_id=consent_id) for consent_id in consent_ids}
        return {consent_id: row for consent_id, row in stored.items() if row is not None}

    async def get(self, *, consent_id) -> ConsentRecord | None:
        decision = next((d for d in self.decisions if d.consent_id == consent_id), None)
        return None if decision is None else self._record(decision)

    def _record(self, decision) -> ConsentRecord:
        revoked_at = self.revocations.get(decision.consent_id)
        return ConsentRecord(
            consent_id=decision.consent_id, voice_id=decision.voice_id, tenant_id=decision.tenant_id,
            owner_id=decision.owner_id, owner_public_key=decision.owner_public_key,
            status=decision.status if revoked_at is None else "revoked", document=decision.document,
            signature=decision.signature, reasons=list(decision.reasons), uses=self.uses.get(decision.consent_id, 0),
            revoked_at=revoked_at)

    async def statement_embedding(self, *, consent_id):
        decision = next((d for d in self.decisions if d.consent_id == consent_id), None)
        embedding = None if decision is None else decision.statement_embedding
        return None if embedding is None else [float(value) for value in embedding]

    async def current_for_voice(self, *, voice_id, now) -> ConsentRecord | None:
        unexpired = sorted((d for d in self.decisions if d.voice_id == voice_id and d.expires_at > now),
                           key=lambda decision: decision.issued_at, reverse=True)
        return next((record for record in map(self._record, unexpired) if record.status == "verified"), None)

    async def revoke(self, *, consent_id, revoked_at):
        self.revocations[consent_id] = revoked_at

    async def claim_use(self, *, consent_id) -> bool:
        consent = await self.get(consent_id=consent_id)
        if consent is None or consent.status != "verified":
            return False
        decision = next(d for d in self.decisions if d.consent_id == consent_id)
        if decision.max_uses is not None and consent.uses >= decision.max_uses:
            return False
        self.uses[consent_id] = consent.uses + 1
        return True

    async def rejections_since(self, *, voice_id, since: datetime):
        return sum(1 for d in self.decisions if d.voice_id == voice_id and d.status == "rejected")

    async def rejections_since_by_voice(self, *, voice_ids, since: datetime):
        counts = {voice_id: await self.rejections_since(voice_id=voice_id, since=since) for voice_id in voice_ids}
        return {voice_id: count for voice_id, count in counts.items() if count}


class FakeAdaptations:
    def __init__(self, waiting: list[dict] | None = None):
        self.waiting = waiting or []
        self.statuses: dict = {}

    async def waiting_requests_by_voice(self, *, voice_ids):
        waiting = {voice_id: [r for r in self.waiting if r["voice_id"] == voice_id] for voice_id in voice_ids}
        return {voice_id: requests for voice_id, requests in waiting.items() if requests}

    async def status(self, *, adaptation_id):
        return self.statuses.get(adaptation_id)

    async def record(self, *, adaptation_id, status, **fields):
        self.statuses[adaptation_id] = status


def fake_context(store: InMemoryStore | None = None, waiting: list[dict] | None = None) -> StageContext:
    repos = SimpleNamespace(voices=FakeVoices(), samples=FakeSamples(), consents=FakeConsents(),
                            adaptations=FakeAdaptations(waiting))
    # their consents carry no statement recording: the development setting, as tests/conftest.py's
    return StageContext(repos=repos, store=store or InMemoryStore(), watermark_key=b"k" * 32,
                        limits=Limits(require_spoken_consent=False))


class FakeProfiles:
    """Profile versions by voice, with the real repository's rules: ``save`` is idempotent per adaptation id, and
    look-alike searches compare embeddings by cosine (exactly: the real one's HNSW index is approximate)."""

    def __init__(self, voices: FakeVoices | None = None):
        self.voices = voices or FakeVoices()  # whose each voice is, and which are protected
        self.rows: dict[tuple[str, int], ProfileVersion] = {}
        self.embeddings: dict[tuple[str, int], np.ndarray] = {}
        self.by_adaptation: dict = {}

    def put(self, voice_id: str, profile: dict, *, version: int = 1, embedding=None, sample_ids=()) -> ProfileVersion:
        self.rows[(voice_id, version)] = ProfileVersion(voice_id, version, profile, list(sample_ids))
        if embedding is not None:
            self.embeddings[(voice_id, version)] = np.asarray(embedding, dtype=np.float32)
        return self.rows[(voice_id, version)]

    async def save(self, *, voice_id, tenant_id, adaptation_id, sample_ids, embedding, profile):
        if adaptation_id in self.by_adaptation:
            return self.by_adaptation[adaptation_id]
        version = 1 + max((v for (voice, v) in self.rows if voice == voice_id), default=0)
        self.put(voice_id, profile, version=version, embedding=embedding, sample_ids=sample_ids)
        self.by_adaptation[adaptation_id] = version
        return version

    async def version(self, *, voice_id, version) -> ProfileVersion | None:
        return self.rows.get((voice_id, version))

    async def latest(self, *, voice_id) -> ProfileVersion | None:
        versions = [v for (voice, v) in self.rows if voice == voice_id]
        return self.rows[(voice_id, max(versions))] if versions else None

    async def latest_embedding(self, *, voice_id, tenant_id) -> list[float] | None:
        voice = await self.voices.get_voice(voice_id=voice_id)
        latest = await self.latest(voice_id=voice_id)
        if voice is None or voice.tenant_id != tenant_id or voice.erased_at or latest is None:
            return None
        return [float(value) for value in self.embeddings[(voice_id, latest.version)]]

    async def closest_voice_of_another_tenant(self, *, embedding, tenant_id) -> tuple[str, float] | None:
        return self._closest(embedding, lambda voice: voice.tenant_id != tenant_id)

    async def closest_protected_voice(self, *, embedding, other_than) -> tuple[str, float] | None:
        return self._closest(embedding, lambda voice: voice.protected and voice.voice_id != other_than)

    def _closest(self, embedding, eligible) -> tuple[str, float] | None:
        query = np.asarray(embedding, dtype=np.float32)
        candidates = [(voice_id, float(np.dot(query, stored) / (np.linalg.norm(query) * np.linalg.norm(stored))))
                      for (voice_id, _), stored in self.embeddings.items()
                      if voice_id in self.voices.owners and eligible(self.voices.record(voice_id))]
        return max(candidates, key=lambda candidate: candidate[1], default=None)


class FakeCurrentConsents(FakeConsents):
    def __init__(self, current: ConsentRecord | None):
        super().__init__()
        self.current = current

    async def current_for_voice(self, *, voice_id, now):
        return self.current


class InMemoryRepositories(SimpleNamespace):
    """Fakes under the names a stage context gives them; a unit of work applies its writes as they come (no
    rollback: a test of what a failure undoes needs Postgres)."""

    @asynccontextmanager
    async def transaction(self):
        yield self


class CollectedProgress:
    def __init__(self):
        self.events = []

    async def publish(self, event):
        self.events.append(event)


def a_synthesis(synthesis_id: uuid.UUID | None = None, **fields) -> SynthesisRecord:
    """A stored synthesis request: accepted, for tenant "t" and voice "v", unless ``fields`` say otherwise."""
    defaults = dict(voice_id="v", tenant_id="t", status="accepted", text="Hello there.", language="en",
                    purpose="narration", controls={}, requested_at=STORED_AT)
    return SynthesisRecord(synthesis_id=synthesis_id or uuid.uuid4(), **{**defaults, **fields})


def a_consent(consent_id: uuid.UUID | None = None, **fields) -> ConsentRecord:
    """A stored verified consent of voice "v" for tenant "t", unless ``fields`` say otherwise."""
    defaults = dict(voice_id="v", tenant_id="t", owner_id="owner-1", owner_public_key=b"\x00" * 32, status="verified",
                    document={}, signature=b"\x00" * 64)
    return ConsentRecord(consent_id=consent_id or uuid.uuid4(), **{**defaults, **fields})


def stored_consent(granted, **fields) -> ConsentRecord:
    """The record a verified ``consent.granted`` event leaves (its document the event as JSON)."""
    return a_consent(granted.consent_id, voice_id=granted.voice_id, tenant_id=granted.tenant_id,
                     owner_id=granted.owner_id, document=granted.model_dump(mode="json"), **fields)


def a_dub(dub_id: uuid.UUID | None = None, **fields) -> DubRecord:
    defaults = dict(voice_id="v", tenant_id="t", status="accepted", requested_at=STORED_AT)
    return DubRecord(dub_id=dub_id or uuid.uuid4(), **{**defaults, **fields})


class FakeSyntheses:
    """The syntheses and synthesis_chunks tables in dicts, with the real repository's rules: a request's first
    record stands, a chunk keeps its first release time, request times count the dubs in ``dubs`` too."""

    def __init__(self, dubs: FakeDubs | None = None):
        self.rows: dict[uuid.UUID, SynthesisRecord] = {}
        self.chunks: dict[tuple[uuid.UUID, int], SynthesisChunk] = {}
        self.dubs = dubs

    def put(self, synthesis: SynthesisRecord) -> SynthesisRecord:
        self.rows[synthesis.synthesis_id] = synthesis
        return synthesis

    async def record_request(self, *, synthesis_id, voice_id, tenant_id, text, language, purpose, controls,
                             requested_at, status, reason=None, consent_id=None, profile_version=None, profile=None,
                             chunk_count=None, engine="kokoro", correlation_id=None, request_event_id=None) -> bool:
        if synthesis_id in self.rows:
            return False
        self.put(SynthesisRecord(
            synthesis_id=synthesis_id, voice_id=voice_id, tenant_id=tenant_id, status=status, text=text,
            language=language, purpose=purpose, controls=controls, requested_at=requested_at, engine=engine,
            reason=reason, consent_id=consent_id, profile_version=profile_version, profile=profile,
            chunk_count=chunk_count, correlation_id=correlation_id, request_event_id=request_event_id))
        return True

    async def fail_stalled(self, *, requested_before, reason) -> list[StalledSynthesis]:
        stalled = [row for row in self.rows.values() if row.status == "accepted" and row.requested_at < requested_before]
        for row in stalled:
            self.put(replace(row, status="failed", reason=reason))
        return [StalledSynthesis(row.synthesis_id, row.tenant_id, row.voice_id, row.correlation_id,
                                 row.request_event_id, row.requested_at) for row in stalled]

    async def record_chunk(self, *, synthesis_id, chunk_index, raw_key, duration_s, compute_s) -> None:
        self.chunks.setdefault((synthesis_id, chunk_index),
                               SynthesisChunk(synthesis_id, chunk_index, duration_s, compute_s, raw_key))

    async def chunk(self, *, synthesis_id, chunk_index) -> SynthesisChunk | None:
        return self.chunks.get((synthesis_id, chunk_index))

    async def release_chunk(self, *, synthesis_id, chunk_index, object_key) -> SynthesisChunk:
        chunk = self.chunks[(synthesis_id, chunk_index)]
        released = replace(chunk, object_key=object_key, released_at=chunk.released_at or datetime.now(timezone.utc))
        self.chunks[(synthesis_id, chunk_index)] = released
        return released

    async def released_chunks(self, *, synthesis_id) -> list[SynthesisChunk]:
        return sorted((chunk for (owner, _), chunk in self.chunks.items()
                       if owner == synthesis_id and chunk.released_at is not None), key=lambda c: c.chunk_index)

    async def mark_completed(self, *, synthesis_id, object_key, watermark_payload, latency_s, rtf, duration_s) -> None:
        self.put(replace(self.rows[synthesis_id], status="completed", object_key=object_key,
                         watermark_payload=watermark_payload, latency_s=latency_s, rtf=rtf, duration_s=duration_s,
                         completed_at=datetime.now(timezone.utc)))

    async def record_scores(self, *, synthesis_id, speaker_similarity, word_error_rate, dnsmos) -> None:
        self.put(replace(self.rows[synthesis_id], speaker_similarity=speaker_similarity,
                         word_error_rate=word_error_rate, dnsmos=dnsmos))

    async def mark_failed(self, *, synthesis_id, reason) -> None:
        self.put(replace(self.rows[synthesis_id], status="failed", reason=reason))

    async def get(self, *, synthesis_id) -> SynthesisRecord | None:
        return self.rows.get(synthesis_id)

    async def find_by_watermark(self, *, payload) -> SynthesisRecord | None:
        return next((row for row in self.rows.values() if row.watermark_payload == payload), None)

    async def request_times_since(self, *, tenant_id, since) -> list[datetime]:
        return self._request_times(lambda row: row.tenant_id == tenant_id, since)

    async def voice_request_times_since(self, *, voice_id, since) -> list[datetime]:
        return self._request_times(lambda row: row.voice_id == voice_id, since)

    def _request_times(self, matches, since) -> list[datetime]:
        requests = [*self.rows.values(), *(self.dubs.rows.values() if self.dubs else ())]
        return [row.requested_at for row in requests if matches(row) and row.requested_at >= since]


class FakeDubs:
    """The dubs table in a dict, with the real repository's rules: a request's first record stands, and only a
    dub still accepted can complete."""

    def __init__(self, *dubs: DubRecord):
        self.rows: dict[uuid.UUID, DubRecord] = {dub.dub_id: dub for dub in dubs}

    async def record_request(self, *, dub_id, voice_id, tenant_id, requested_at, status, correlation_id,
                             request_event_id, consent_id=None, reason=None, languages=()) -> None:
        self.rows.setdefault(dub_id, DubRecord(
            dub_id=dub_id, voice_id=voice_id, tenant_id=tenant_id, status=status, requested_at=requested_at,
            consent_id=consent_id, languages=list(languages), reason=reason, correlation_id=correlation_id,
            request_event_id=request_event_id))

    async def get(self, *, dub_id) -> DubRecord | None:
        return self.rows.get(dub_id)

    async def mark_completed(self, *, dub_id, output_key, media_type, watermark_payload, duration_s, placements,
                             overflows, latency_s) -> bool:
        if self.rows[dub_id].status != "accepted":
            return False
        self.rows[dub_id] = replace(self.rows[dub_id], status="completed", output_key=output_key,
                                    media_type=media_type, watermark_payload=watermark_payload, duration_s=duration_s,
                                    placements=placements, overflows=overflows, latency_s=latency_s,
                                    completed_at=datetime.now(timezone.utc))
        return True

    async def mark_failed(self, *, dub_id, reason) -> None:
        self.rows[dub_id] = replace(self.rows[dub_id], status="failed", reason=reason)

    async def find_by_watermark(self, *, payload) -> DubRecord | None:
        return next((row for row in self.rows.values() if row.watermark_payload == payload), None)

    async def fail_stalled(self, *, requested_before, reason) -> list[StalledDub]:
        stalled = [row for row in self.rows.values() if row.status == "accepted" and row.requested_at < requested_before]
        for row in stalled:
            self.rows[row.dub_id] = replace(row, status="failed", reason=reason)
        return [StalledDub(row.dub_id, row.tenant_id, row.voice_id, row.correlation_id, row.request_event_id,
                           row.requested_at) for row in stalled]


class FakeBlocks:
    """The blocks in force, as the blocks table holds them; ``reads`` counts how often a gate read them."""

    def __init__(self):
        self.standing: dict[tuple[str, str], Block] = {}
        self.reads = 0

    def place(self, subject_kind, subject_id, reason="abuse reported"):
        self.standing[(subject_kind, subject_id)] = Block(
            block_id=len(self.standing) + 1, subject_kind=subject_kind, subject_id=subject_id, reason=reason,
            blocked_by="ops", blocked_at=datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc), lifted_at=None,
            lifted_by=None)

    def lift(self, subject_kind, subject_id):
        del self.standing[(subject_kind, subject_id)]

    async def in_force(self):
        self.reads += 1
        return list(self.standing.values())


class InMemoryDataKeyRepository:
    """``data_keys`` rows in a dict, with the real repository's rules: one key per scope, tombstones stay."""

    def __init__(self):
        self.rows: dict[str, WrappedDataKey] = {}

    async def for_scope(self, *, scope):
        return self.rows.get(scope)

    async def by_id(self, *, key_id):
        return next((row for row in self.rows.values() if row.key_id == key_id), None)

    async def add(self, *, key_id, scope, master_key_id, wrapped_key):
        return self.rows.setdefault(scope, WrappedDataKey(key_id, scope, master_key_id, wrapped_key, None))

    async def destroy(self, *, scope):
        existing = self.rows.get(scope)
        self.rows[scope] = WrappedDataKey(existing.key_id if existing else uuid.uuid4(), scope, None, None,
                                          datetime.now(timezone.utc))

    async def wrapped_by_other_than(self, *, master_key_id):
        return [row for row in self.rows.values() if row.wrapped_key is not None and row.master_key_id != master_key_id]

    async def rewrap(self, *, key_id, old_master_key_id, master_key_id, wrapped_key):
        row = await self.by_id(key_id=key_id)
        self.rows[row.scope] = WrappedDataKey(key_id, row.scope, master_key_id, wrapped_key, None)
        return True

    async def count_by_master_key(self):
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row.master_key_id or "destroyed"] = counts.get(row.master_key_id or "destroyed", 0) + 1
        return counts


class TrustingAuthenticator:
    """Every producer allowed: for tests of the fates after authentication (test_authentication.py covers it)."""

    async def authenticate(self, event, value, headers):
        return None


class RecordingPublisher:
    """Keeps every event a stage processor publishes, in order."""

    def __init__(self):
        self.events = []

    async def publish(self, event):
        self.events.append(event)

    def types(self):
        return [e.type for e in self.events]

    def dead_letters(self):
        return [e for e in self.events if e.type == "dead_letter"]

