"""In-memory stand-ins for the repositories and the object store, for handler tests."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

from infra.errors import ObjectNotFound
from infra.repositories import VoiceOwnedByAnotherTenant
from streams.context import StageContext


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


class FakeVoices:
    def __init__(self):
        self.owners: dict[str, str] = {}

    async def ensure_voice(self, *, voice_id, tenant_id):
        if self.owners.setdefault(voice_id, tenant_id) != tenant_id:
            raise VoiceOwnedByAnotherTenant(f"voice {voice_id!r} belongs to another tenant")

    async def get_voice(self, *, voice_id):
        return {"voice_id": voice_id} if voice_id in self.owners else None


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

    async def waiting_requests(self, *, voice_id):
        return [r for r in self.waiting if r["voice_id"] == voice_id]


def fake_context(store: InMemoryStore | None = None, waiting: list[dict] | None = None) -> StageContext:
    repos = SimpleNamespace(voices=FakeVoices(), samples=FakeSamples(), consents=FakeConsents(),
                            adaptations=FakeAdaptations(waiting))
    return StageContext(repos=repos, store=store or InMemoryStore(), watermark_key=b"k" * 32)


class FakeProfiles:
    """Profile versions by voice; ``save`` is idempotent per adaptation id, like the real repository."""

    def __init__(self):
        self.rows: dict[tuple[str, int], dict] = {}
        self.by_adaptation: dict = {}

    async def save(self, *, voice_id, adaptation_id, sample_ids, embedding, profile):
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
