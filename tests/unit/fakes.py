"""In-memory stand-ins for the repositories and the object store, for handler tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

from infra.data_keys import WrappedDataKey
from infra.errors import ObjectNotFound
from infra.repositories import Block, VoiceOwnedByAnotherTenant
from streams.context import Limits, StageContext


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
    def __init__(self):
        self.owners: dict[str, str] = {}

    async def ensure_voice(self, *, voice_id, tenant_id):
        if self.owners.setdefault(voice_id, tenant_id) != tenant_id:
            raise VoiceOwnedByAnotherTenant(f"voice {voice_id!r} belongs to another tenant")

    async def get_voice(self, *, voice_id):
        return {"voice_id": voice_id, "tenant_id": self.owners[voice_id]} if voice_id in self.owners else None


class FakeSamples:
    def __init__(self):
        self.decisions: dict = {}

    async def record_decision(self, *, sample_id, **fields):
        self.decisions[sample_id] = fields


class FakeConsents:
    def __init__(self):
        self.decisions = []

    async def record_decision(self, decision):
        if await self.get(consent_id=decision.consent_id) is None:  # the table keeps a consent's first decision
            self.decisions.append(decision)

    async def get(self, *, consent_id):
        for decision in self.decisions:
            if decision.consent_id == consent_id:
                return {"consent_id": consent_id, "voice_id": decision.voice_id, "status": decision.status,
                        "document": decision.document, "owner_public_key": decision.owner_public_key,
                        "revoked_at": None}
        return None

    async def rejections_since(self, *, voice_id, since: datetime):
        return sum(1 for d in self.decisions if d.voice_id == voice_id and d.status == "rejected")


class FakeAdaptations:
    def __init__(self, waiting: list[dict] | None = None):
        self.waiting = waiting or []
        self.statuses: dict = {}

    async def waiting_requests(self, *, voice_id):
        return [r for r in self.waiting if r["voice_id"] == voice_id]

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
    """Profile versions by voice; ``save`` is idempotent per adaptation id, like the real repository."""

    def __init__(self):
        self.rows: dict[tuple[str, int], dict] = {}
        self.by_adaptation: dict = {}

    async def save(self, *, voice_id, tenant_id, adaptation_id, sample_ids, embedding, profile):
        if adaptation_id in self.by_adaptation:
            return self.by_adaptation[adaptation_id]
        version = 1 + max((v for (voice, v) in self.rows if voice == voice_id), default=0)
        self.rows[(voice_id, version)] = {"voice_id": voice_id, "version": version, "profile": profile,
                                          "sample_ids": list(sample_ids)}
        self.by_adaptation[adaptation_id] = version
        return version

    async def version(self, *, voice_id, version):
        return self.rows.get((voice_id, version))


class FakeCurrentConsents(FakeConsents):
    def __init__(self, current: dict | None):
        super().__init__()
        self.current = current

    async def current_for_voice(self, *, voice_id, now):
        return self.current


class CollectedProgress:
    def __init__(self):
        self.events = []

    async def publish(self, event):
        self.events.append(event)


class FakeSyntheses:
    """Synthesis requests and their chunks by id, as the syntheses and synthesis_chunks tables hold them."""

    def __init__(self):
        self.rows: dict = {}
        self.chunks: dict = {}

    async def get(self, *, synthesis_id):
        return self.rows.get(synthesis_id)

    async def record_request(self, *, synthesis_id, status, reason=None, **fields):
        first = synthesis_id not in self.rows
        self.rows.setdefault(synthesis_id, {"synthesis_id": synthesis_id, "status": status, "reason": reason, **fields})
        return first

    async def mark_failed(self, *, synthesis_id, reason):
        self.rows[synthesis_id].update(status="failed", reason=reason)

    async def chunk(self, *, synthesis_id, chunk_index):
        return self.chunks.get((synthesis_id, chunk_index))

    async def request_times_since(self, *, tenant_id, since):
        return [r["requested_at"] for r in self.rows.values() if r["tenant_id"] == tenant_id and r["requested_at"] >= since]

    async def voice_request_times_since(self, *, voice_id, since):
        return [r["requested_at"] for r in self.rows.values() if r["voice_id"] == voice_id and r["requested_at"] >= since]


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

