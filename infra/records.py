"""What the repositories hand back: small frozen records, one per stored thing, instead of database rows.

Each has the columns a caller reads; a record is built from a row with ``from_row`` (columns it does not
name, such as a sealed blob, are left behind).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Mapping, TypeVar

R = TypeVar("R")


def from_row(record_type: type[R], row: Mapping[str, Any], **opened: Any) -> R:
    """``record_type`` from a row's columns (and ``opened``: fields the repository decrypted or derived)."""
    values = {**row, **opened}
    return record_type(**{field.name: values[field.name] for field in fields(record_type) if field.name in values})


@dataclass(frozen=True)
class VoiceRecord:
    """A voice id, the tenant that claimed it first, and what operators decided about it."""

    voice_id: str
    tenant_id: str
    protected: bool = False  # a public figure's voice: never cloned, look-alikes blocked
    review_cleared_at: datetime | None = None  # an operator allowed it although it sounds like another tenant's
    erased_at: datetime | None = None


@dataclass(frozen=True)
class ConsentRecord:
    """A consent as decided: the owner's signed grant (``document``: the ``consent.granted`` event as JSON), its
    status, and how often it was used."""

    consent_id: uuid.UUID
    voice_id: str
    tenant_id: str
    owner_id: str
    owner_public_key: bytes
    status: str  # verified | rejected | revoked
    document: dict[str, Any]
    signature: bytes
    reasons: list[str] = field(default_factory=list)  # why it was rejected
    uses: int = 0
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class ProfileVersion:
    """One stored version of a voice's profile, opened."""

    voice_id: str
    version: int
    profile: dict[str, Any]
    sample_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class SampleRecord:
    """An uploaded sample and the ingest gate's decision on it."""

    sample_id: uuid.UUID
    voice_id: str
    tenant_id: str
    object_key: str
    status: str  # accepted | rejected
    decided_at: datetime
    normalised_key: str | None = None  # the accepted sample, resampled and trimmed, that adaptation reads
    reasons: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    speech_s: float | None = None
    quality: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SynthesisRecord:
    """A synthesis request: accepted (consent used, profile snapshot taken), then completed or failed."""

    synthesis_id: uuid.UUID
    voice_id: str
    tenant_id: str
    status: str  # accepted | completed | failed
    text: str
    language: str
    purpose: str
    controls: dict[str, Any]
    requested_at: datetime
    engine: str = "kokoro"
    reason: str | None = None
    consent_id: uuid.UUID | None = None
    profile_version: int | None = None
    profile: dict[str, Any] | None = None  # the snapshot spoken with, opened; None for a request refused before it
    chunk_count: int | None = None
    object_key: str | None = None
    watermark_payload: str | None = None
    duration_s: float | None = None
    rtf: float | None = None
    latency_s: float | None = None
    speaker_similarity: float | None = None
    word_error_rate: float | None = None
    dnsmos: float | None = None
    completed_at: datetime | None = None
    correlation_id: uuid.UUID | None = None
    request_event_id: uuid.UUID | None = None


@dataclass(frozen=True)
class SynthesisChunk:
    """One chunk of a synthesis: produced (its unmarked audio at ``raw_key``), then released marked at ``object_key``."""

    synthesis_id: uuid.UUID
    chunk_index: int
    duration_s: float
    compute_s: float
    raw_key: str | None = None
    object_key: str | None = None
    released_at: datetime | None = None


@dataclass(frozen=True)
class ErasedOutput:
    """A synthesis or dub removed with its voice: only its id, whose it was, and when."""

    output_id: uuid.UUID
    kind: str  # synthesis | dub
    tenant_id: str
    erased_at: datetime


@dataclass(frozen=True)
class DubRecord:
    """A dubbing request: accepted (its consent use claimed), then completed or failed."""

    dub_id: uuid.UUID
    voice_id: str
    tenant_id: str
    status: str  # accepted | completed | failed
    requested_at: datetime
    consent_id: uuid.UUID | None = None
    languages: list[str] = field(default_factory=list)  # what the script speaks (empty for dubs before 0013)
    reason: str | None = None
    output_key: str | None = None
    media_type: str | None = None
    watermark_payload: str | None = None
    duration_s: float | None = None
    placements: list[dict[str, Any]] | None = None
    overflows: list[dict[str, Any]] | None = None
    latency_s: float | None = None
    completed_at: datetime | None = None
    correlation_id: uuid.UUID | None = None
    request_event_id: uuid.UUID | None = None
