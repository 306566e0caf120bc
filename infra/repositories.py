"""Repositories over asyncpg: one per aggregate, keyword-only methods, SQL kept as SQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import asyncpg

from infra.data_keys import voice_scope
from infra.errors import InfraError
from infra.records import (ConsentRecord, DubRecord, ErasedOutput, ProfileVersion, SampleRecord, SynthesisChunk,
                           SynthesisRecord, VoiceRecord, from_row)
from processors.trust.audit_chain import GENESIS_HASH, audit_record_hash
from processors.trust.audit_checkpoints import SignedCheckpoint
from processors.trust.custody import OutputFacts
from schemas.events import DUBBING_PURPOSE

# Serialises appends to the single audit chain across every worker process.
AUDIT_CHAIN_LOCK_ID = 0x617564697463


class VoiceOwnedByAnotherTenant(InfraError):
    """The voice id is already registered to a different tenant."""


@asynccontextmanager
async def _transaction(executor: asyncpg.Pool | asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on a connection of the pool, or inside a unit of work's own connection (a savepoint)."""
    if isinstance(executor, asyncpg.Pool):
        async with executor.acquire() as connection, connection.transaction():
            yield connection
    else:
        async with executor.transaction():
            yield executor


def _vector_literal(values) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in values) + "]"


class VoiceRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def ensure_voice(self, *, voice_id: str, tenant_id: str) -> None:
        (refusal,) = await self.ensure_voices(claims=[(voice_id, tenant_id)])
        if refusal is not None:
            raise refusal

    async def ensure_voices(
        self, *, claims: list[tuple[str, str]],
    ) -> list[VoiceOwnedByAnotherTenant | VoiceErased | None]:
        """``ensure_voice`` for each (voice id, tenant id) claim, in one statement, as if made one after the
        other: a new voice goes to its first claim's tenant. Each claim's refusal, in order; None where granted."""
        first_claims: dict[str, str] = {}
        for voice_id, tenant_id in claims:
            first_claims.setdefault(voice_id, tenant_id)
        # ordered: concurrent batches lock the voices they share in the same order, so they queue instead of deadlocking
        rows = await self.pool.fetch(
            "INSERT INTO voices (voice_id, tenant_id) SELECT * FROM unnest($1::text[], $2::text[]) ORDER BY 1"
            " ON CONFLICT (voice_id) DO UPDATE SET voice_id = EXCLUDED.voice_id RETURNING voice_id, tenant_id, erased_at",
            list(first_claims), list(first_claims.values()),
        )
        owners = {row["voice_id"]: row for row in rows}
        return [_claim_refusal(voice_id, tenant_id, owners[voice_id]) for voice_id, tenant_id in claims]

    async def get_voice(self, *, voice_id: str) -> VoiceRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM voices WHERE voice_id = $1", voice_id)
        return None if row is None else from_row(VoiceRecord, row)

    async def clear_review(self, *, voice_id: str) -> bool:
        """An operator's decision that the voice may be built although it sounds like another tenant's."""
        status = await self.pool.execute("UPDATE voices SET review_cleared_at = now() WHERE voice_id = $1", voice_id)
        return status.endswith(" 1")

    async def set_protected(self, *, voice_id: str, protected: bool) -> bool:
        status = await self.pool.execute("UPDATE voices SET protected = $2 WHERE voice_id = $1", voice_id, protected)
        return status.endswith(" 1")


def _claim_refusal(voice_id: str, tenant_id: str,
                   owner: asyncpg.Record) -> VoiceOwnedByAnotherTenant | VoiceErased | None:
    if owner["tenant_id"] != tenant_id:
        return VoiceOwnedByAnotherTenant(f"voice {voice_id!r} belongs to another tenant")
    if owner["erased_at"] is not None:
        return VoiceErased(f"voice {voice_id!r} was erased at {owner['erased_at'].isoformat()}: "
                           "its id cannot be used again")
    return None


class SampleRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def record_decision(
        self, *, sample_id: uuid.UUID, voice_id: str, tenant_id: str, object_key: str, status: str,
        normalised_key: str | None = None, reasons: list[str] = (), suggestions: list[str] = (),
        speech_s: float | None = None, quality: dict[str, Any] | None = None,
    ) -> None:
        await self.pool.execute(
            "INSERT INTO samples (sample_id, voice_id, tenant_id, object_key, status, normalised_key,"
            " reasons, suggestions, speech_s, quality) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
            " ON CONFLICT (sample_id) DO UPDATE SET status = EXCLUDED.status,"
            " normalised_key = EXCLUDED.normalised_key, reasons = EXCLUDED.reasons,"
            " suggestions = EXCLUDED.suggestions, speech_s = EXCLUDED.speech_s, quality = EXCLUDED.quality,"
            " decided_at = now()",
            sample_id, voice_id, tenant_id, object_key, status, normalised_key,
            list(reasons), list(suggestions), speech_s, quality or {},
        )

    async def decisions(self, *, voice_id: str, sample_ids: list[uuid.UUID]) -> dict[uuid.UUID, SampleRecord]:
        """The decided samples among ``sample_ids`` of the voice, by id (an undecided one is missing)."""
        rows = await self.pool.fetch(
            "SELECT * FROM samples WHERE voice_id = $1 AND sample_id = ANY($2::uuid[])", voice_id, sample_ids
        )
        return {row["sample_id"]: from_row(SampleRecord, row) for row in rows}

    async def accepted_for_voice(self, *, voice_id: str) -> list[SampleRecord]:
        rows = await self.pool.fetch(
            "SELECT * FROM samples WHERE voice_id = $1 AND status = 'accepted' ORDER BY decided_at", voice_id
        )
        return [from_row(SampleRecord, row) for row in rows]


@dataclass(frozen=True)
class ConsentDecision:
    consent_id: uuid.UUID
    voice_id: str
    tenant_id: str
    owner_id: str
    owner_public_key: bytes
    status: str
    reasons: list[str]
    purposes: list[str]
    languages: list[str]
    issued_at: datetime
    expires_at: datetime
    max_uses: int | None
    document: dict[str, Any]
    signature: bytes
    statement_embedding: Any = None


class ConsentRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def record_decision(self, decision: ConsentDecision) -> None:
        await self.pool.execute(_RECORD_CONSENT_DECISION, *_consent_decision_row(decision))

    async def record_decisions(self, decisions: list[ConsentDecision]) -> None:
        """``record_decision`` for each of ``decisions``, in order (a consent keeps its first), in one round trip."""
        await self.pool.executemany(_RECORD_CONSENT_DECISION, [_consent_decision_row(d) for d in decisions])

    async def get(self, *, consent_id: uuid.UUID) -> ConsentRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM consents WHERE consent_id = $1", consent_id)
        return None if row is None else _consent(row)

    async def get_many(self, *, consent_ids: list[uuid.UUID]) -> dict[uuid.UUID, ConsentRecord]:
        """The stored ones of ``consent_ids``, by id, in one query."""
        rows = await self.pool.fetch("SELECT * FROM consents WHERE consent_id = ANY($1::uuid[])", consent_ids)
        return {row["consent_id"]: _consent(row) for row in rows}

    async def statement_embedding(self, *, consent_id: uuid.UUID) -> list[float] | None:
        text = await self.pool.fetchval(
            "SELECT statement_embedding::text FROM consents WHERE consent_id = $1", consent_id
        )
        return None if text is None else [float(v) for v in text.strip("[]").split(",")]

    async def current_for_voice(self, *, voice_id: str, now: datetime) -> ConsentRecord | None:
        """The newest verified, unexpired consent of the voice (revoked ones are not 'verified')."""
        row = await self.pool.fetchrow(
            "SELECT * FROM consents WHERE voice_id = $1 AND status = 'verified' AND expires_at > $2"
            " ORDER BY issued_at DESC LIMIT 1",
            voice_id, now,
        )
        return None if row is None else _consent(row)

    async def revoke(self, *, consent_id: uuid.UUID, revoked_at: datetime) -> None:
        await self.pool.execute(
            "UPDATE consents SET status = 'revoked', revoked_at = $2 WHERE consent_id = $1", consent_id, revoked_at
        )

    async def claim_use(self, *, consent_id: uuid.UUID) -> bool:
        """Count one use against the consent's limit; False when the limit is already reached."""
        uses = await self.pool.fetchval(
            "UPDATE consents SET uses = uses + 1 WHERE consent_id = $1 AND status = 'verified'"
            " AND (max_uses IS NULL OR uses < max_uses) RETURNING uses",
            consent_id,
        )
        return uses is not None

    async def rejections_since(self, *, voice_id: str, since: datetime) -> int:
        return await self.pool.fetchval(
            "SELECT count(*) FROM consents WHERE voice_id = $1 AND status = 'rejected' AND decided_at >= $2",
            voice_id, since,
        )

    async def rejections_since_by_voice(self, *, voice_ids: list[str], since: datetime) -> dict[str, int]:
        """``rejections_since`` for each of ``voice_ids`` in one query; a voice without any is left out."""
        rows = await self.pool.fetch(
            "SELECT voice_id, count(*) AS rejections FROM consents WHERE voice_id = ANY($1::text[])"
            " AND status = 'rejected' AND decided_at >= $2 GROUP BY voice_id",
            voice_ids, since,
        )
        return {row["voice_id"]: row["rejections"] for row in rows}


def _consent(row: asyncpg.Record) -> ConsentRecord:
    return from_row(ConsentRecord, row, owner_public_key=bytes(row["owner_public_key"]),
                    signature=bytes(row["signature"]))


_RECORD_CONSENT_DECISION = (
    "INSERT INTO consents (consent_id, voice_id, tenant_id, owner_id, owner_public_key, status, reasons,"
    " purposes, languages, issued_at, expires_at, max_uses, document, signature, statement_embedding)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15::vector)"
    " ON CONFLICT (consent_id) DO NOTHING"
)


def _consent_decision_row(decision: ConsentDecision) -> tuple:
    return (decision.consent_id, decision.voice_id, decision.tenant_id, decision.owner_id,
            decision.owner_public_key, decision.status, decision.reasons, decision.purposes,
            decision.languages, decision.issued_at, decision.expires_at, decision.max_uses,
            decision.document, decision.signature,
            None if decision.statement_embedding is None else _vector_literal(decision.statement_embedding))


class ProfileSealer(Protocol):
    async def seal(self, document: dict[str, Any], *, scope: str, context: str) -> bytes: ...
    async def open(self, sealed: bytes, *, context: str) -> dict[str, Any]: ...


def _profile_context(voice_id: str, version: int) -> str:
    return f"voice_profiles/{voice_id}/{version}"


def _synthesis_profile_context(synthesis_id: uuid.UUID) -> str:
    return f"syntheses/{synthesis_id}/profile"


class ProfileRepository:
    """Profiles are stored sealed under their voice's data key; their speaker embeddings stay searchable."""

    def __init__(self, pool: asyncpg.Pool, sealer: ProfileSealer):
        self.pool = pool
        self.sealer = sealer

    async def save(
        self, *, voice_id: str, tenant_id: str, adaptation_id: uuid.UUID, sample_ids: list[uuid.UUID],
        embedding, profile: dict[str, Any],
    ) -> int:
        """Store a new profile version (previous versions stay); replaying an adaptation returns its version."""
        async with _transaction(self.pool) as connection:
            existing = await connection.fetchval(
                "SELECT version FROM voice_profiles WHERE adaptation_id = $1", adaptation_id
            )
            if existing is not None:
                return existing
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", voice_id)
            version = await connection.fetchval(
                "SELECT coalesce(max(version), 0) + 1 FROM voice_profiles WHERE voice_id = $1", voice_id
            )
            sealed = await self.sealer.seal(profile, scope=voice_scope(tenant_id, voice_id),
                                            context=_profile_context(voice_id, version))
            await connection.execute(
                "INSERT INTO voice_profiles (voice_id, version, adaptation_id, sample_ids, embedding, sealed_profile)"
                " VALUES ($1, $2, $3, $4, $5::vector, $6)",
                voice_id, version, adaptation_id, sample_ids, _vector_literal(embedding), sealed,
            )
            return version

    async def latest(self, *, voice_id: str) -> ProfileVersion | None:
        """The newest version, opened."""
        return await self._opened(await self.pool.fetchrow(
            "SELECT voice_id, version, sealed_profile, sample_ids FROM voice_profiles WHERE voice_id = $1"
            " ORDER BY version DESC LIMIT 1",
            voice_id,
        ))

    async def version(self, *, voice_id: str, version: int) -> ProfileVersion | None:
        return await self._opened(await self.pool.fetchrow(
            "SELECT voice_id, version, sealed_profile, sample_ids FROM voice_profiles WHERE voice_id = $1 AND version = $2",
            voice_id, version,
        ))

    async def _opened(self, row: asyncpg.Record | None) -> ProfileVersion | None:
        if row is None:
            return None
        profile = await self.sealer.open(bytes(row["sealed_profile"]),
                                         context=_profile_context(row["voice_id"], row["version"]))
        return ProfileVersion(row["voice_id"], row["version"], profile, list(row["sample_ids"]))

    async def latest_embedding(self, *, voice_id: str, tenant_id: str) -> list[float] | None:
        """The speaker embedding of the voice's newest profile; None unless the voice is ``tenant_id``'s, not
        erased, and has a profile."""
        text = await self.pool.fetchval(
            "SELECT p.embedding::text FROM voice_profiles p JOIN voices v USING (voice_id)"
            " WHERE p.voice_id = $1 AND v.tenant_id = $2 AND v.erased_at IS NULL ORDER BY p.version DESC LIMIT 1",
            voice_id, tenant_id,
        )
        return None if text is None else [float(v) for v in text.strip("[]").split(",")]

    async def closest_voice_of_another_tenant(self, *, embedding, tenant_id: str) -> tuple[str, float] | None:
        """The voice of a tenant other than ``tenant_id`` whose speaker embedding is nearest, with its cosine."""
        row = await self.pool.fetchrow(
            "SELECT p.voice_id, 1 - (p.embedding <=> $1::vector) AS similarity"
            " FROM voice_profiles p JOIN voices v USING (voice_id)"
            " WHERE v.tenant_id <> $2 ORDER BY p.embedding <=> $1::vector LIMIT 1",
            _vector_literal(embedding), tenant_id,
        )
        return None if row is None else (row["voice_id"], float(row["similarity"]))

    async def closest_protected_voice(self, *, embedding, other_than: str) -> tuple[str, float] | None:
        """The protected voice (any profile version) whose speaker embedding is nearest, with its cosine.

        Approximate: the HNSW index (migration 0007) answers the ``ORDER BY ... LIMIT 1``.
        """
        async with _transaction(self.pool) as connection:
            # A missed look-alike is an undetected impersonation, a slower answer only a few ms at adaptation:
            # over 100,000 random embeddings the default 40 candidates found the nearest for 66 % of queries,
            # 200 for 98 % (bench/load.py). An HNSW scan also stops after those candidates; when most voices are
            # not protected the filter can drop them all, so an iterative scan reads on until a protected voice
            # turns up (at most hnsw.max_scan_tuples, 20,000, entries).
            await connection.execute("SET LOCAL hnsw.ef_search = 200; SET LOCAL hnsw.iterative_scan = strict_order")
            row = await connection.fetchrow(
                "SELECT p.voice_id, 1 - (p.embedding <=> $1::vector) AS similarity"
                " FROM voice_profiles p JOIN voices v USING (voice_id)"
                " WHERE v.protected AND p.voice_id <> $2 ORDER BY p.embedding <=> $1::vector LIMIT 1",
                _vector_literal(embedding), other_than,
            )
        return None if row is None else (row["voice_id"], float(row["similarity"]))


class AdaptationJobRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def record(
        self, *, adaptation_id: uuid.UUID, voice_id: str, tenant_id: str, status: str,
        request: dict[str, Any], reason: str | None = None,
    ) -> None:
        await self.pool.execute(
            "INSERT INTO adaptation_jobs (adaptation_id, voice_id, tenant_id, status, reason, request)"
            " VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (adaptation_id) DO UPDATE SET status = EXCLUDED.status,"
            " reason = EXCLUDED.reason, updated_at = now()",
            adaptation_id, voice_id, tenant_id, status, reason, request,
        )

    async def status(self, *, adaptation_id: uuid.UUID) -> str | None:
        """waiting, completed or failed; None for a request never recorded."""
        return await self.pool.fetchval("SELECT status FROM adaptation_jobs WHERE adaptation_id = $1", adaptation_id)

    async def waiting_requests_by_voice(self, *, voice_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The parked requests (as sent) of each of ``voice_ids``, oldest first, in one query; a voice without any is
        left out."""
        rows = await self.pool.fetch(
            "SELECT voice_id, request FROM adaptation_jobs WHERE voice_id = ANY($1::text[]) AND status = 'waiting'"
            " ORDER BY updated_at",
            voice_ids,
        )
        waiting: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            waiting.setdefault(row["voice_id"], []).append(row["request"])
        return waiting


@dataclass(frozen=True)
class StalledSynthesis:
    """A request that was still unfinished at its deadline (ids are None for requests recorded before 0005)."""

    synthesis_id: uuid.UUID
    tenant_id: str
    voice_id: str
    correlation_id: uuid.UUID | None
    request_event_id: uuid.UUID | None
    requested_at: datetime


@dataclass(frozen=True)
class StalledDub:
    """A dub that was still unfinished at its deadline."""

    dub_id: uuid.UUID
    tenant_id: str
    voice_id: str
    correlation_id: uuid.UUID | None
    request_event_id: uuid.UUID | None
    requested_at: datetime


class SynthesisRepository:
    """A request's profile snapshot is stored sealed under its voice's data key; ``get`` opens it."""

    def __init__(self, pool: asyncpg.Pool, sealer: ProfileSealer):
        self.pool = pool
        self.sealer = sealer

    async def record_request(
        self, *, synthesis_id: uuid.UUID, voice_id: str, tenant_id: str, text: str, language: str,
        purpose: str, controls: dict[str, Any], requested_at: datetime, status: str,
        reason: str | None = None, consent_id: uuid.UUID | None = None, profile_version: int | None = None,
        profile: dict[str, Any] | None = None, chunk_count: int | None = None, engine: str = "kokoro",
        correlation_id: uuid.UUID | None = None, request_event_id: uuid.UUID | None = None,
    ) -> bool:
        """True when this is the first time the request is recorded."""
        sealed_profile = None if profile is None else await self.sealer.seal(
            profile, scope=voice_scope(tenant_id, voice_id), context=_synthesis_profile_context(synthesis_id))
        inserted = await self.pool.fetchval(
            "INSERT INTO syntheses (synthesis_id, voice_id, tenant_id, text, language, purpose, controls,"
            " requested_at, status, reason, consent_id, profile_version, sealed_profile, chunk_count, engine,"
            " correlation_id, request_event_id)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"
            " ON CONFLICT (synthesis_id) DO NOTHING RETURNING 1",
            synthesis_id, voice_id, tenant_id, text, language, purpose, controls, requested_at, status,
            reason, consent_id, profile_version, sealed_profile, chunk_count, engine, correlation_id, request_event_id,
        )
        return inserted is not None

    async def fail_stalled(self, *, requested_before: datetime, reason: str) -> list[StalledSynthesis]:
        """Fail every request still accepted that was made before ``requested_before``; the ones this call failed.

        The update claims each row, so of several workers sweeping at once only one reports it.
        """
        rows = await self.pool.fetch(
            "UPDATE syntheses SET status = 'failed', reason = $2"
            " WHERE status = 'accepted' AND requested_at < $1"
            " RETURNING synthesis_id, tenant_id, voice_id, correlation_id, request_event_id, requested_at",
            requested_before, reason,
        )
        return [StalledSynthesis(**dict(row)) for row in rows]

    async def record_chunk(self, *, synthesis_id: uuid.UUID, chunk_index: int, raw_key: str, duration_s: float,
                           compute_s: float) -> None:
        await self.pool.execute(
            "INSERT INTO synthesis_chunks (synthesis_id, chunk_index, raw_key, duration_s, compute_s)"
            " VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
            synthesis_id, chunk_index, raw_key, duration_s, compute_s,
        )

    async def chunk(self, *, synthesis_id: uuid.UUID, chunk_index: int) -> SynthesisChunk | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM synthesis_chunks WHERE synthesis_id = $1 AND chunk_index = $2", synthesis_id, chunk_index
        )
        return None if row is None else from_row(SynthesisChunk, row)

    async def release_chunk(self, *, synthesis_id: uuid.UUID, chunk_index: int, object_key: str) -> SynthesisChunk:
        """The released chunk (its ``object_key`` and ``released_at`` set)."""
        return from_row(SynthesisChunk, await self.pool.fetchrow(
            "UPDATE synthesis_chunks SET object_key = $3, released_at = coalesce(released_at, now())"
            " WHERE synthesis_id = $1 AND chunk_index = $2 RETURNING *",
            synthesis_id, chunk_index, object_key,
        ))

    async def released_chunks(self, *, synthesis_id: uuid.UUID) -> list[SynthesisChunk]:
        rows = await self.pool.fetch(
            "SELECT * FROM synthesis_chunks WHERE synthesis_id = $1 AND released_at IS NOT NULL ORDER BY chunk_index",
            synthesis_id,
        )
        return [from_row(SynthesisChunk, row) for row in rows]

    async def mark_completed(
        self, *, synthesis_id: uuid.UUID, object_key: str, watermark_payload: str, latency_s: float, rtf: float,
        duration_s: float,
    ) -> None:
        await self.pool.execute(
            "UPDATE syntheses SET status = 'completed', object_key = $2, watermark_payload = $3, latency_s = $4,"
            " rtf = $5, duration_s = $6, completed_at = now() WHERE synthesis_id = $1",
            synthesis_id, object_key, watermark_payload, latency_s, rtf, duration_s,
        )

    async def record_scores(self, *, synthesis_id: uuid.UUID, speaker_similarity: float | None,
                            word_error_rate: float | None, dnsmos: float | None) -> None:
        await self.pool.execute(
            "UPDATE syntheses SET speaker_similarity = $2, word_error_rate = $3, dnsmos = $4 WHERE synthesis_id = $1",
            synthesis_id, speaker_similarity, word_error_rate, dnsmos,
        )

    async def mark_failed(self, *, synthesis_id: uuid.UUID, reason: str) -> None:
        await self.pool.execute(
            "UPDATE syntheses SET status = 'failed', reason = $2 WHERE synthesis_id = $1", synthesis_id, reason
        )

    async def get(self, *, synthesis_id: uuid.UUID) -> SynthesisRecord | None:
        """The request, its ``profile`` opened (None for a request refused before it had one)."""
        row = await self.pool.fetchrow("SELECT * FROM syntheses WHERE synthesis_id = $1", synthesis_id)
        if row is None:
            return None
        sealed = row["sealed_profile"]
        profile = None if sealed is None else await self.sealer.open(
            bytes(sealed), context=_synthesis_profile_context(synthesis_id))
        return from_row(SynthesisRecord, row, profile=profile)

    async def find_by_watermark(self, *, payload: str) -> SynthesisRecord | None:
        """The synthesis whose output carries ``payload`` (its profile left sealed: a detection names, never speaks)."""
        row = await self.pool.fetchrow("SELECT * FROM syntheses WHERE watermark_payload = $1", payload)
        return None if row is None else from_row(SynthesisRecord, row)

    async def request_times_since(self, *, tenant_id: str, since: datetime) -> list[datetime]:
        """When the tenant asked for speech since ``since``: its syntheses and its dubs."""
        return await self._request_times("tenant_id", tenant_id, since)

    async def voice_request_times_since(self, *, voice_id: str, since: datetime) -> list[datetime]:
        """When speech in the voice was asked for since ``since``: its syntheses and its dubs."""
        return await self._request_times("voice_id", voice_id, since)

    async def _request_times(self, column: str, subject_id: str, since: datetime) -> list[datetime]:
        rows = await self.pool.fetch(
            f"SELECT requested_at FROM syntheses WHERE {column} = $1 AND requested_at >= $2"
            f" UNION ALL SELECT requested_at FROM dubs WHERE {column} = $1 AND requested_at >= $2", subject_id, since
        )
        return [row["requested_at"] for row in rows]


class DubRepository:
    """One row per dubbing request: accepted (its consent use claimed), then completed or failed."""

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection):
        self.pool = pool

    async def record_request(self, *, dub_id: uuid.UUID, voice_id: str, tenant_id: str, requested_at: datetime,
                             status: str, correlation_id: uuid.UUID | None, request_event_id: uuid.UUID,
                             consent_id: uuid.UUID | None = None, reason: str | None = None,
                             languages: list[str] = ()) -> None:
        await self.pool.execute(
            "INSERT INTO dubs (dub_id, voice_id, tenant_id, consent_id, status, reason, requested_at, correlation_id,"
            " request_event_id, languages) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (dub_id) DO NOTHING",
            dub_id, voice_id, tenant_id, consent_id, status, reason, requested_at, correlation_id, request_event_id,
            list(languages),
        )

    async def get(self, *, dub_id: uuid.UUID) -> DubRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM dubs WHERE dub_id = $1", dub_id)
        return None if row is None else from_row(DubRecord, row)

    async def mark_completed(self, *, dub_id: uuid.UUID, output_key: str, media_type: str, watermark_payload: str,
                             duration_s: float, placements: list[dict[str, Any]], overflows: list[dict[str, Any]],
                             latency_s: float) -> bool:
        """Whether the dub was still accepted (not failed meanwhile, by the deadline sweep say) and is now completed."""
        completed = await self.pool.fetchval(
            "UPDATE dubs SET status = 'completed', output_key = $2, media_type = $3, watermark_payload = $4,"
            " duration_s = $5, placements = $6, overflows = $7, latency_s = $8, completed_at = now()"
            " WHERE dub_id = $1 AND status = 'accepted' RETURNING dub_id",
            dub_id, output_key, media_type, watermark_payload, duration_s, placements, overflows, latency_s,
        )
        return completed is not None

    async def mark_failed(self, *, dub_id: uuid.UUID, reason: str) -> None:
        await self.pool.execute("UPDATE dubs SET status = 'failed', reason = $2 WHERE dub_id = $1", dub_id, reason)

    async def find_by_watermark(self, *, payload: str) -> DubRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM dubs WHERE watermark_payload = $1", payload)
        return None if row is None else from_row(DubRecord, row)

    async def fail_stalled(self, *, requested_before: datetime, reason: str) -> list[StalledDub]:
        """Fail every dub still accepted that was requested before ``requested_before``; the ones this call failed."""
        rows = await self.pool.fetch(
            "UPDATE dubs SET status = 'failed', reason = $2 WHERE status = 'accepted' AND requested_at < $1"
            " RETURNING dub_id, tenant_id, voice_id, correlation_id, request_event_id, requested_at",
            requested_before, reason,
        )
        return [StalledDub(**dict(row)) for row in rows]


class AnomalyRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def record(
        self, *, event_id: uuid.UUID, tenant_id: str, voice_id: str, kind: str, severity: str, action: str,
        detail: str, detected_at: datetime,
    ) -> None:
        await self.pool.execute(
            "INSERT INTO anomalies (event_id, tenant_id, voice_id, kind, severity, action, detail, detected_at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (event_id) DO NOTHING",
            event_id, tenant_id, voice_id, kind, severity, action, detail, detected_at,
        )

    async def record_many(self, anomalies: list[dict[str, Any]]) -> None:
        """``record`` for each of ``anomalies`` (its keyword arguments), in one statement."""
        await self.pool.executemany(
            "INSERT INTO anomalies (event_id, tenant_id, voice_id, kind, severity, action, detail, detected_at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (event_id) DO NOTHING",
            [(a["event_id"], a["tenant_id"], a["voice_id"], a["kind"], a["severity"], a["action"], a["detail"],
              a["detected_at"]) for a in anomalies],
        )


@dataclass(frozen=True)
class AuditEntry:
    sequence: int
    previous_hash: str
    record_hash: str
    record: dict[str, Any]


class AuditRepository:
    def __init__(self, pool: asyncpg.Pool, key: bytes):
        self.pool = pool
        self.key = key

    async def append(self, *, event_id: uuid.UUID, record: dict[str, Any]) -> AuditEntry:
        """Append one record to the hash chain; appending the same event twice returns the first entry."""
        async with _transaction(self.pool) as connection:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_CHAIN_LOCK_ID)
            existing = await connection.fetchrow("SELECT * FROM audit_log WHERE event_id = $1", event_id)
            if existing is not None:
                return _entry(existing)
            last = await connection.fetchrow("SELECT sequence, record_hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
            sequence = 1 if last is None else last["sequence"] + 1
            previous_hash = GENESIS_HASH if last is None else last["record_hash"]
            record_hash = audit_record_hash(previous_hash, sequence, record, key=self.key)
            await connection.execute(
                "INSERT INTO audit_log (sequence, event_id, previous_hash, record_hash, record)"
                " VALUES ($1,$2,$3,$4,$5)",
                sequence, event_id, previous_hash, record_hash, record,
            )
            return AuditEntry(sequence, previous_hash, record_hash, record)

    async def append_many(self, records: list[tuple[uuid.UUID, dict[str, Any]]]) -> list[AuditEntry]:
        """Append (event id, record) pairs to the hash chain in the order given, under one lock and in one
        insert; returns the entries appended. An event already in the chain, or earlier in ``records``, is
        not appended again."""
        async with _transaction(self.pool) as connection:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_CHAIN_LOCK_ID)
            chained = {row["event_id"] for row in await connection.fetch(
                "SELECT event_id FROM audit_log WHERE event_id = ANY($1::uuid[])", [e for e, _ in records])}
            last = await connection.fetchrow("SELECT sequence, record_hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
            sequence, previous_hash = (0, GENESIS_HASH) if last is None else (last["sequence"], last["record_hash"])
            appended = []
            for event_id, record in records:
                if event_id in chained:
                    continue
                chained.add(event_id)
                sequence += 1
                record_hash = audit_record_hash(previous_hash, sequence, record, key=self.key)
                appended.append((event_id, AuditEntry(sequence, previous_hash, record_hash, record)))
                previous_hash = record_hash
            await connection.executemany(
                "INSERT INTO audit_log (sequence, event_id, previous_hash, record_hash, record) VALUES ($1,$2,$3,$4,$5)",
                [(e.sequence, event_id, e.previous_hash, e.record_hash, e.record) for event_id, e in appended],
            )
            return [entry for _, entry in appended]

    async def entries(self, *, after_sequence: int = 0, limit: int | None = None) -> list[AuditEntry]:
        rows = await self.pool.fetch(
            "SELECT * FROM audit_log WHERE sequence > $1 ORDER BY sequence LIMIT $2", after_sequence, limit
        )
        return [_entry(row) for row in rows]


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(row["sequence"], row["previous_hash"], row["record_hash"], row["record"])


class CustodyRepository:
    """What `voxflow verify` looks up about one output: its synthesis or dub and the audit entries of its completion."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def output(self, *, watermark_payload: str | None, output_id: uuid.UUID | None) -> OutputFacts | None:
        """The synthesis or dub with this payload, else the one with this id (the manifest's, when no mark was read)."""
        row = await self.pool.fetchrow(
            "SELECT * FROM ("
            " SELECT 'synthesis' AS kind, synthesis_id AS output_id, tenant_id, voice_id, consent_id, purpose,"
            " ARRAY[language] AS languages, status, requested_at, watermark_payload FROM syntheses"
            " WHERE watermark_payload = $1 OR synthesis_id = $2"
            " UNION ALL SELECT 'dub', dub_id, tenant_id, voice_id, consent_id, $3::text, languages, status, requested_at,"
            " watermark_payload FROM dubs WHERE watermark_payload = $1 OR dub_id = $2"
            ") AS outputs ORDER BY (watermark_payload = $1) DESC NULLS LAST LIMIT 1",
            watermark_payload, output_id, DUBBING_PURPOSE,
        )
        return None if row is None else OutputFacts(**{**dict(row), "languages": tuple(row["languages"])})

    async def completion_entry(self, *, kind: str, output_id: uuid.UUID) -> AuditEntry | None:
        """The audit entry of the ``kind`` ("synthesis" or "dub") ``output_id``'s completion."""
        row = await self.pool.fetchrow(
            "SELECT * FROM audit_log WHERE record->>'action' = $1 AND record->'detail'->>$2 = $3"
            " ORDER BY sequence LIMIT 1", f"{kind}.completed", f"{kind}_id", str(output_id),
        )
        return None if row is None else _entry(row)

    async def entries_between(self, *, first: int, last: int) -> list[AuditEntry]:
        rows = await self.pool.fetch(
            "SELECT * FROM audit_log WHERE sequence BETWEEN $1 AND $2 ORDER BY sequence", first, last)
        return [_entry(row) for row in rows]


class AuditCheckpointRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def head(self) -> tuple[int, str] | None:
        """The chain's last (sequence, record_hash); None for an empty log."""
        row = await self.pool.fetchrow("SELECT sequence, record_hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
        return None if row is None else (row["sequence"], row["record_hash"])

    async def latest(self) -> SignedCheckpoint | None:
        row = await self.pool.fetchrow("SELECT * FROM audit_checkpoints ORDER BY sequence DESC LIMIT 1")
        return None if row is None else _checkpoint(row)

    async def save(self, checkpoint: SignedCheckpoint) -> None:
        await self.pool.execute(
            "INSERT INTO audit_checkpoints (sequence, head_hash, signed_at, key_id, signature)"
            " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (sequence) DO NOTHING",
            checkpoint.sequence, checkpoint.head_hash, checkpoint.signed_at, checkpoint.key_id, checkpoint.signature,
        )

    async def all(self) -> list[SignedCheckpoint]:
        return [_checkpoint(row) for row in await self.pool.fetch("SELECT * FROM audit_checkpoints ORDER BY sequence")]


def _checkpoint(row: asyncpg.Record) -> SignedCheckpoint:
    return SignedCheckpoint(row["sequence"], row["head_hash"], row["signed_at"], row["key_id"], bytes(row["signature"]))


@dataclass(frozen=True)
class TenantKey:
    key_id: str
    tenant_id: str
    public_key: bytes
    added_at: datetime
    revoked_at: datetime | None


class TenantKeyRepository:
    """The producer keys an operator registered per tenant."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def add(self, *, key_id: str, tenant_id: str, public_key: bytes) -> TenantKey:
        """Register the key; registering it again returns the first registration (of whichever tenant)."""
        await self.pool.execute(
            "INSERT INTO tenant_keys (key_id, tenant_id, public_key) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
            key_id, tenant_id, public_key,
        )
        return await self.get(key_id=key_id)

    async def get(self, *, key_id: str) -> TenantKey | None:
        row = await self.pool.fetchrow("SELECT * FROM tenant_keys WHERE key_id = $1", key_id)
        return None if row is None else _tenant_key(row)

    async def revoke(self, *, key_id: str) -> bool:
        revoked = await self.pool.fetchval(
            "UPDATE tenant_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_id", key_id)
        return revoked is not None

    async def for_tenant(self, *, tenant_id: str | None = None) -> list[TenantKey]:
        rows = await self.pool.fetch(
            "SELECT * FROM tenant_keys WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY tenant_id, added_at", tenant_id)
        return [_tenant_key(row) for row in rows]


def _tenant_key(row: asyncpg.Record) -> TenantKey:
    return TenantKey(row["key_id"], row["tenant_id"], bytes(row["public_key"]), row["added_at"], row["revoked_at"])


BlockSubject = Literal["tenant", "voice"]


@dataclass(frozen=True)
class Block:
    """An operator's block on a tenant or a voice; in force while ``lifted_at`` is None."""

    block_id: int
    subject_kind: BlockSubject
    subject_id: str
    reason: str
    blocked_by: str
    blocked_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None


class BlockRepository:
    """Blocks on tenants and voices; lifted ones stay as history."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def block(self, *, subject_kind: BlockSubject, subject_id: str, reason: str,
                    blocked_by: str) -> tuple[Block, bool]:
        """The block in force on the subject, and whether this call placed it (False: one already stood, unchanged)."""
        placed = await self.pool.fetchrow(
            "INSERT INTO blocks (subject_kind, subject_id, reason, blocked_by) VALUES ($1,$2,$3,$4)"
            " ON CONFLICT (subject_kind, subject_id) WHERE lifted_at IS NULL DO NOTHING RETURNING *",
            subject_kind, subject_id, reason, blocked_by,
        )
        if placed is not None:
            return _block(placed), True
        standing = await self.pool.fetchrow(
            "SELECT * FROM blocks WHERE subject_kind = $1 AND subject_id = $2 AND lifted_at IS NULL",
            subject_kind, subject_id,
        )
        return _block(standing), False

    async def lift(self, *, subject_kind: BlockSubject, subject_id: str, lifted_by: str) -> Block | None:
        """Lift the block in force on the subject; None when there was none."""
        row = await self.pool.fetchrow(
            "UPDATE blocks SET lifted_at = now(), lifted_by = $3"
            " WHERE subject_kind = $1 AND subject_id = $2 AND lifted_at IS NULL RETURNING *",
            subject_kind, subject_id, lifted_by,
        )
        return None if row is None else _block(row)

    async def in_force(self) -> list[Block]:
        rows = await self.pool.fetch("SELECT * FROM blocks WHERE lifted_at IS NULL ORDER BY blocked_at")
        return [_block(row) for row in rows]

    async def history(self) -> list[Block]:
        """Every block, lifted ones included, oldest first."""
        return [_block(row) for row in await self.pool.fetch("SELECT * FROM blocks ORDER BY blocked_at, block_id")]


def _block(row: asyncpg.Record) -> Block:
    return Block(**dict(row))


class VoiceErased(InfraError):
    """The voice was erased: its id can never be used again."""


class ErasureRepository:
    """What erasing a voice removes from Postgres, in one transaction, and the report it leaves."""

    # children first: syntheses take their chunks with them
    _TABLES = ("dubs", "syntheses", "adaptation_jobs", "voice_profiles", "consents", "samples")

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection):
        self.pool = pool

    async def owner_public_keys(self, *, voice_id: str) -> list[bytes]:
        rows = await self.pool.fetch("SELECT DISTINCT owner_public_key FROM consents WHERE voice_id = $1", voice_id)
        return [bytes(row["owner_public_key"]) for row in rows]

    async def report(self, *, erasure_id: uuid.UUID) -> dict[str, Any] | None:
        """The report of an erasure already done, so a replayed request gets the same answer."""
        return await self.pool.fetchval("SELECT report FROM erasures WHERE erasure_id = $1", erasure_id)

    async def mark_erased(self, *, voice_id: str) -> None:
        """From now on the voice id takes no uploads, consents, adaptations or syntheses."""
        await self.pool.execute("UPDATE voices SET erased_at = coalesce(erased_at, now()) WHERE voice_id = $1",
                                voice_id)

    async def erase_rows(self, *, voice_id: str) -> dict[str, int]:
        """Delete every row about the voice except the voice's own (it keeps the id from coming back), leaving the
        ids of its outputs as erased."""
        deleted = {}
        async with _transaction(self.pool) as connection:
            await connection.execute(
                "INSERT INTO erased_outputs (output_id, kind, tenant_id)"
                " SELECT synthesis_id, 'synthesis', tenant_id FROM syntheses WHERE voice_id = $1"
                " UNION ALL SELECT dub_id, 'dub', tenant_id FROM dubs WHERE voice_id = $1"
                " ON CONFLICT (output_id) DO NOTHING", voice_id)
            for table in self._TABLES:
                status = await connection.execute(f"DELETE FROM {table} WHERE voice_id = $1", voice_id)
                deleted[table] = int(status.split()[-1])
        return deleted

    async def erased_output(self, *, output_id: uuid.UUID) -> ErasedOutput | None:
        row = await self.pool.fetchrow("SELECT * FROM erased_outputs WHERE output_id = $1", output_id)
        return None if row is None else from_row(ErasedOutput, row)

    async def audit_records_naming(self, *, voice_id: str) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM audit_log WHERE record->>'voice_id' = $1", voice_id)

    async def record(self, *, erasure_id: uuid.UUID, voice_id: str, tenant_id: str, requested_by: str,
                     reason: str | None, report: dict[str, Any]) -> None:
        await self.pool.execute(
            "INSERT INTO erasures (erasure_id, voice_id, tenant_id, requested_by, reason, report)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (erasure_id) DO NOTHING",
            erasure_id, voice_id, tenant_id, requested_by, reason, report)


class InboxRepository:
    """Remembers handled events per consumer, so redelivered events are skipped."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def seen(self, *, consumer: str, event_id: uuid.UUID) -> bool:
        return await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2)", consumer, event_id
        )

    async def mark_processed(self, *, consumer: str, event_id: uuid.UUID) -> None:
        await self.pool.execute(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            consumer, event_id,
        )

    async def seen_among(self, *, consumer: str, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of ``event_ids`` the consumer already handled, in one query."""
        rows = await self.pool.fetch(
            "SELECT event_id FROM processed_events WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
            consumer, event_ids,
        )
        return {row["event_id"] for row in rows}

    async def mark_all_processed(self, *, consumer: str, event_ids: list[uuid.UUID]) -> None:
        await self.pool.execute(
            "INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
            consumer, event_ids,
        )


@dataclass(frozen=True)
class Repositories:
    voices: VoiceRepository
    samples: SampleRepository
    consents: ConsentRepository
    profiles: ProfileRepository
    adaptations: AdaptationJobRepository
    syntheses: SynthesisRepository
    anomalies: AnomalyRepository
    audit: AuditRepository
    inbox: InboxRepository
    tenant_keys: TenantKeyRepository
    checkpoints: AuditCheckpointRepository
    blocks: BlockRepository
    erasures: ErasureRepository
    dubs: DubRepository
    executor: asyncpg.Pool | asyncpg.Connection  # what the repositories above run their SQL on

    @classmethod
    def over(cls, executor: asyncpg.Pool | asyncpg.Connection, *, audit_key: bytes,
             sealer: ProfileSealer) -> "Repositories":
        """Repositories on a pool, or on one connection (a connection has the same query methods)."""
        return cls(
            VoiceRepository(executor), SampleRepository(executor), ConsentRepository(executor),
            ProfileRepository(executor, sealer), AdaptationJobRepository(executor), SynthesisRepository(executor, sealer),
            AnomalyRepository(executor), AuditRepository(executor, audit_key), InboxRepository(executor), TenantKeyRepository(executor),
            AuditCheckpointRepository(executor), BlockRepository(executor), ErasureRepository(executor),
            DubRepository(executor), executor,
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["Repositories"]:
        """A unit of work: repositories on one connection whose writes commit together, or not at all
        when the block raises (inside another unit of work: a savepoint)."""
        async with _transaction(self.executor) as connection:
            yield self if connection is self.executor else Repositories.over(
                connection, audit_key=self.audit.key, sealer=self.profiles.sealer)
