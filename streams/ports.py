"""What stage handlers need of their stores, as Protocols: those of the ingest, consent, adaptation, synthesis,
watermark and dubbing handlers first.

``infra.repositories`` implements them over Postgres; tests/unit/fakes.py implements them in memory, and
tests/unit/test_ports.py checks that both offer every method with the same keyword arguments.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from infra.records import (ConsentRecord, DubRecord, ProfileVersion, SampleRecord, SynthesisChunk, SynthesisRecord,
                           VoiceRecord)
from infra.repositories import (AdaptationJobRepository, AnomalyRepository, AuditCheckpointRepository,
                                AuditRepository, BlockRepository, ConsentDecision, ErasureRepository,
                                InboxRepository, StalledDub, StalledSynthesis, TenantKeyRepository, VoiceErased,
                                VoiceOwnedByAnotherTenant)


class Voices(Protocol):
    async def ensure_voice(self, *, voice_id: str, tenant_id: str) -> None: ...

    async def ensure_voices(
        self, *, claims: list[tuple[str, str]],
    ) -> list[VoiceOwnedByAnotherTenant | VoiceErased | None]: ...

    async def get_voice(self, *, voice_id: str) -> VoiceRecord | None: ...

    async def clear_review(self, *, voice_id: str) -> bool: ...

    async def set_protected(self, *, voice_id: str, protected: bool) -> bool: ...


class Consents(Protocol):
    async def record_decision(self, decision: ConsentDecision) -> None: ...

    async def record_decisions(self, decisions: list[ConsentDecision]) -> None: ...

    async def get(self, *, consent_id: uuid.UUID) -> ConsentRecord | None: ...

    async def get_many(self, *, consent_ids: list[uuid.UUID]) -> dict[uuid.UUID, ConsentRecord]: ...

    async def statement_embedding(self, *, consent_id: uuid.UUID) -> list[float] | None: ...

    async def current_for_voice(self, *, voice_id: str, now: datetime) -> ConsentRecord | None: ...

    async def revoke(self, *, consent_id: uuid.UUID, revoked_at: datetime) -> None: ...

    async def claim_use(self, *, consent_id: uuid.UUID) -> bool: ...

    async def rejections_since(self, *, voice_id: str, since: datetime) -> int: ...

    async def rejections_since_by_voice(self, *, voice_ids: list[str], since: datetime) -> dict[str, int]: ...


class Profiles(Protocol):
    async def save(self, *, voice_id: str, tenant_id: str, adaptation_id: uuid.UUID, sample_ids: list[uuid.UUID],
                   embedding, profile: dict[str, Any]) -> int: ...

    async def latest(self, *, voice_id: str) -> ProfileVersion | None: ...

    async def version(self, *, voice_id: str, version: int) -> ProfileVersion | None: ...

    async def latest_embedding(self, *, voice_id: str, tenant_id: str) -> list[float] | None: ...

    async def closest_voice_of_another_tenant(self, *, embedding, tenant_id: str) -> tuple[str, float] | None: ...

    async def closest_protected_voice(self, *, embedding, other_than: str) -> tuple[str, float] | None: ...


class Samples(Protocol):
    async def record_decision(
        self, *, sample_id: uuid.UUID, voice_id: str, tenant_id: str, object_key: str, status: str,
        normalised_key: str | None = None, reasons: list[str] = (), suggestions: list[str] = (),
        speech_s: float | None = None, quality: dict[str, Any] | None = None,
    ) -> None: ...

    async def decisions(self, *, voice_id: str, sample_ids: list[uuid.UUID]) -> dict[uuid.UUID, SampleRecord]: ...

    async def accepted_for_voice(self, *, voice_id: str) -> list[SampleRecord]: ...


class Syntheses(Protocol):
    async def record_request(
        self, *, synthesis_id: uuid.UUID, voice_id: str, tenant_id: str, text: str, language: str,
        purpose: str, controls: dict[str, Any], requested_at: datetime, status: str,
        reason: str | None = None, consent_id: uuid.UUID | None = None, profile_version: int | None = None,
        profile: dict[str, Any] | None = None, chunk_count: int | None = None, engine: str = "kokoro",
        correlation_id: uuid.UUID | None = None, request_event_id: uuid.UUID | None = None,
    ) -> bool: ...

    async def fail_stalled(self, *, requested_before: datetime, reason: str) -> list[StalledSynthesis]: ...

    async def record_chunk(self, *, synthesis_id: uuid.UUID, chunk_index: int, raw_key: str, duration_s: float,
                           compute_s: float) -> None: ...

    async def chunk(self, *, synthesis_id: uuid.UUID, chunk_index: int) -> SynthesisChunk | None: ...

    async def release_chunk(self, *, synthesis_id: uuid.UUID, chunk_index: int, object_key: str) -> SynthesisChunk: ...

    async def released_chunks(self, *, synthesis_id: uuid.UUID) -> list[SynthesisChunk]: ...

    async def mark_completed(self, *, synthesis_id: uuid.UUID, object_key: str, watermark_payload: str,
                             latency_s: float, rtf: float, duration_s: float) -> None: ...

    async def record_scores(self, *, synthesis_id: uuid.UUID, speaker_similarity: float | None,
                            word_error_rate: float | None, dnsmos: float | None) -> None: ...

    async def mark_failed(self, *, synthesis_id: uuid.UUID, reason: str) -> None: ...

    async def get(self, *, synthesis_id: uuid.UUID) -> SynthesisRecord | None: ...

    async def find_by_watermark(self, *, payload: str) -> SynthesisRecord | None: ...

    async def request_times_since(self, *, tenant_id: str, since: datetime) -> list[datetime]: ...

    async def voice_request_times_since(self, *, voice_id: str, since: datetime) -> list[datetime]: ...


class Dubs(Protocol):
    async def record_request(self, *, dub_id: uuid.UUID, voice_id: str, tenant_id: str, requested_at: datetime,
                             status: str, correlation_id: uuid.UUID | None, request_event_id: uuid.UUID,
                             consent_id: uuid.UUID | None = None, reason: str | None = None,
                             languages: list[str] = ()) -> None: ...

    async def get(self, *, dub_id: uuid.UUID) -> DubRecord | None: ...

    async def mark_completed(self, *, dub_id: uuid.UUID, output_key: str, media_type: str, watermark_payload: str,
                             duration_s: float, placements: list[dict[str, Any]], overflows: list[dict[str, Any]],
                             latency_s: float) -> bool: ...

    async def mark_failed(self, *, dub_id: uuid.UUID, reason: str) -> None: ...

    async def find_by_watermark(self, *, payload: str) -> DubRecord | None: ...

    async def fail_stalled(self, *, requested_before: datetime, reason: str) -> list[StalledDub]: ...


class StageRepositories(Protocol):
    """The repositories a stage handler is given: ``infra.repositories.Repositories`` over Postgres, fakes in tests.
    Voices, consents, profiles, samples, syntheses and dubs are ports of their own (with records, not rows); the
    others are still the Postgres classes."""

    @property
    def voices(self) -> Voices: ...

    @property
    def samples(self) -> Samples: ...

    @property
    def consents(self) -> Consents: ...

    @property
    def profiles(self) -> Profiles: ...

    @property
    def adaptations(self) -> AdaptationJobRepository: ...

    @property
    def syntheses(self) -> Syntheses: ...

    @property
    def dubs(self) -> Dubs: ...

    @property
    def anomalies(self) -> AnomalyRepository: ...

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def inbox(self) -> InboxRepository: ...

    @property
    def tenant_keys(self) -> TenantKeyRepository: ...

    @property
    def checkpoints(self) -> AuditCheckpointRepository: ...

    @property
    def blocks(self) -> BlockRepository: ...

    @property
    def erasures(self) -> ErasureRepository: ...

    def transaction(self) -> AbstractAsyncContextManager[StageRepositories]:
        """A unit of work: the same repositories on one connection, their writes committed together."""
