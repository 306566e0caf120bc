"""Consent: verify the owner's Ed25519 signature and validity window; apply signed revocations."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from datetime import timedelta

from infra.errors import ObjectNotFound
from infra.repositories import ConsentDecision
from processors.audio.codec_quality import prepare_sample
from processors.constants import ANALYSIS_SAMPLE_RATE_HZ
from processors.trust.anomaly import consent_failure_burst
from processors.trust.consent import (
    ConsentDocument,
    verify_consent_signature,
    verify_revocation_signature,
)
from processors.errors import ConsentSignatureError, ProcessorError
from schemas.envelope import Event
from schemas.events import (
    AnomalyDetected,
    ConsentGranted,
    ConsentRejected,
    ConsentRevocationApplied,
    ConsentRevoked,
    ConsentVerified,
)
from streams.context import StageContext
from streams.handlers.common import claim_voice, resend_waiting_adaptations

# Producers' clocks drift; a consent issued a little "in the future" is still the owner's.
_ISSUE_CLOCK_SKEW = timedelta(minutes=5)


def consent_document(event: ConsentGranted) -> ConsentDocument:
    return ConsentDocument(
        consent_id=str(event.consent_id),
        voice_id=event.voice_id,
        owner_id=event.owner_id,
        purposes=tuple(event.purposes),
        languages=tuple(event.languages),
        issued_at=event.issued_at,
        expires_at=event.expires_at,
        max_uses=event.max_uses,
        statement_text=event.statement_text,
        statement_audio_sha256=event.statement_audio_sha256,
    )


def _decode_base64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ConsentSignatureError(f"{what} is not valid base64") from error


async def grant_consent(event: ConsentGranted, context: StageContext) -> list[Event]:
    rejection = await claim_voice(event, context)
    if rejection:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id, reasons=[rejection])]
    replayed = await _replayed_grant(event, context)
    if replayed:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id, reasons=[replayed])]
    document = consent_document(event)
    reasons = _signature_problems(event, document) + _validity_problems(event, context)
    statement_embedding = None
    if not reasons:
        statement_problems, statement_embedding = await _spoken_statement(event, context)
        reasons += statement_problems
    public_key = _decode_or_empty(event.owner_public_key)
    await context.repos.consents.record_decision(ConsentDecision(
        consent_id=event.consent_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
        owner_id=event.owner_id, owner_public_key=public_key, status="rejected" if reasons else "verified",
        reasons=reasons, purposes=list(event.purposes), languages=list(event.languages),
        issued_at=event.issued_at, expires_at=event.expires_at, max_uses=event.max_uses,
        document=event.model_dump(mode="json"), signature=_decode_or_empty(event.signature),
        statement_embedding=statement_embedding,
    ))
    if reasons:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id, reasons=reasons),
                *await _failure_burst_alert(event, context)]
    verified = event.follow_up(
        ConsentVerified, consent_id=event.consent_id, owner_id=event.owner_id, purposes=list(event.purposes),
        languages=list(event.languages), expires_at=event.expires_at, max_uses=event.max_uses,
    )
    return [verified, *await resend_waiting_adaptations(event.voice_id, context)]


async def _replayed_grant(event: ConsentGranted, context: StageContext) -> str | None:
    """Why a grant of an already decided consent is a replay or a duplicate; None for a new one.

    The consent id is inside what the owner signed, so a copied grant keeps it: whatever its event id,
    the stored decision stands (a revoked consent stays revoked). A retry of the same event is no replay.
    """
    stored = await context.repos.consents.get(consent_id=event.consent_id)
    if stored is None or stored["document"].get("event_id") == str(event.event_id):
        return None
    if stored["status"] == "revoked":
        return (f"replayed grant: consent {event.consent_id} was revoked at {stored['revoked_at'].isoformat()} "
                "and stays revoked")
    return f"duplicate grant: consent {event.consent_id} was already {stored['status']}; that decision stands"


def _decode_or_empty(value: str) -> bytes:
    """What a rejected consent stores when a field was not even base64."""
    try:
        return _decode_base64(value, "field")
    except ConsentSignatureError:
        return b""


def _signature_problems(event: ConsentGranted, document: ConsentDocument) -> list[str]:
    try:
        signature = _decode_base64(event.signature, "signature")
        public_key = _decode_base64(event.owner_public_key, "owner_public_key")
        verify_consent_signature(document, signature, public_key)
    except ConsentSignatureError as error:
        return [f"signature: {error}"]
    return []


def _validity_problems(event: ConsentGranted, context: StageContext) -> list[str]:
    now = context.clock()
    problems = []
    if event.expires_at <= now:
        problems.append(f"consent expired at {event.expires_at.isoformat()}")
    if event.expires_at <= event.issued_at:
        problems.append("expires_at is not after issued_at")
    if event.issued_at > now + _ISSUE_CLOCK_SKEW:
        problems.append(f"issued_at {event.issued_at.isoformat()} is in the future")
    return problems


async def _spoken_statement(event: ConsentGranted, context: StageContext):
    """Check the recording of the owner speaking the statement; its voice is compared at adaptation."""
    if event.statement_audio_key is None:
        if context.limits.require_spoken_consent:
            return ["a recording of the owner speaking the consent statement is required"], None
        return [], None
    try:
        data = await context.store.get(event.statement_audio_key)
    except ObjectNotFound:
        return [f"no statement recording at {event.statement_audio_key!r}"], None
    if hashlib.sha256(data).hexdigest() != event.statement_audio_sha256:
        return ["the statement recording is not the one the owner signed (sha256 differs)"], None
    try:
        prepared = await asyncio.to_thread(prepare_sample, data, ANALYSIS_SAMPLE_RATE_HZ, vad=context.models.vad)
        if not prepared.report.accepted:
            return [f"statement recording: {'; '.join(prepared.report.reasons)}"], None
        embedding = await asyncio.to_thread(context.models.encoder.embed, prepared.samples, prepared.sample_rate_hz)
    except ProcessorError as error:
        return [f"statement recording: {error}"], None
    return [], embedding


async def _failure_burst_alert(event: ConsentGranted, context: StageContext) -> list[Event]:
    window = timedelta(seconds=context.limits.consent_failure_window_s)
    failures = await context.repos.consents.rejections_since(voice_id=event.voice_id, since=context.clock() - window)
    finding = consent_failure_burst(failures, limit=context.limits.consent_failure_limit,
                                    window_s=context.limits.consent_failure_window_s)
    if finding is None:
        return []
    return [event.follow_up(AnomalyDetected, kind="consent_failures", severity=finding.severity,
                            detail=finding.detail, action="alert")]


async def revoke_consent(event: ConsentRevoked, context: StageContext) -> list[Event]:
    stored = await context.repos.consents.get(consent_id=event.consent_id)
    if stored is None or stored["voice_id"] != event.voice_id:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id,
                                reasons=[f"no consent {event.consent_id} for voice {event.voice_id!r}"])]
    try:
        signature = _decode_base64(event.signature, "signature")
        verify_revocation_signature(str(event.consent_id), event.revoked_at, signature, bytes(stored["owner_public_key"]))
    except ConsentSignatureError as error:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id,
                                reasons=[f"revocation signature: {error}"])]
    await context.repos.consents.revoke(consent_id=event.consent_id, revoked_at=event.revoked_at)
    return [event.follow_up(ConsentRevocationApplied, consent_id=event.consent_id, revoked_at=event.revoked_at)]

