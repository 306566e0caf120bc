"""Consent: verify the owner's Ed25519 signature, validity window and spoken statement; apply signed revocations.

The statement recording must be the signed one (sha256), clean enough to judge, and say the consent
phrase (its words or phonemes scored against ``Limits.spoken_consent_phrase``). Its speaker is
compared with the voice's profile when it has one, else with the samples at adaptation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

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
from processors.trust.spoken_phrase import (
    PhraseMatch,
    PhraseThresholds,
    is_the_phrase,
    phrase_mismatch,
    speaker_mismatch,
)
from processors.voice.profile import VoiceProfile
from processors.voice.speaker import cosine_similarity
from schemas.envelope import Event
from schemas.events import (
    AnomalyDetected,
    ConsentGranted,
    ConsentRejected,
    ConsentRevocationApplied,
    ConsentRevoked,
    ConsentVerified,
    SpokenStatementScores,
)
from streams.context import Limits, StageContext
from streams.handlers.common import claim_voice, keep_sealed, resend_waiting_adaptations
from voxflow.envelopes import consent_document

# Producers' clocks drift; a consent issued a little "in the future" is still the owner's.
_ISSUE_CLOCK_SKEW = timedelta(minutes=5)
# what a result event repeats of the recogniser's output: a consent phrase is one sentence, a long recording is not
_HEARD_CHARACTERS = 500


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
    statement = StatementCheck()
    if not reasons:
        statement = await _spoken_statement(event, context)
        reasons += statement.problems
    public_key = _decode_or_empty(event.owner_public_key)
    await context.repos.consents.record_decision(ConsentDecision(
        consent_id=event.consent_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
        owner_id=event.owner_id, owner_public_key=public_key, status="rejected" if reasons else "verified",
        reasons=reasons, purposes=list(event.purposes), languages=list(event.languages),
        issued_at=event.issued_at, expires_at=event.expires_at, max_uses=event.max_uses,
        document=event.model_dump(mode="json"), signature=_decode_or_empty(event.signature),
        statement_embedding=statement.embedding,
    ))
    if reasons:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id, reasons=reasons,
                                spoken_statement=statement.scores),
                *await _failure_burst_alert(event, context)]
    verified = event.follow_up(
        ConsentVerified, consent_id=event.consent_id, owner_id=event.owner_id, purposes=list(event.purposes),
        languages=list(event.languages), expires_at=event.expires_at, max_uses=event.max_uses,
        spoken_statement=statement.scores,
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


@dataclass
class StatementCheck:
    """What checking the statement recording found; ``scores`` once the recording could be scored."""

    problems: list[str] = field(default_factory=list)
    embedding: np.ndarray | None = None
    scores: SpokenStatementScores | None = None


async def _spoken_statement(event: ConsentGranted, context: StageContext) -> StatementCheck:
    """Check the owner's recording of the consent phrase: the signed text, the bytes, quality, words and speaker."""
    if event.statement_audio_key is None:
        if context.limits.require_spoken_consent:
            return StatementCheck(["a recording of the owner speaking the consent statement is required"])
        return StatementCheck()
    phrase = context.limits.spoken_consent_phrase
    check = await _statement_recording(event, phrase, context)
    if not is_the_phrase(event.statement_text, phrase):
        check.problems.append(f"wrong phrase: the signed statement must be the consent phrase {phrase!r}")
    return check


async def _statement_recording(event: ConsentGranted, phrase: str, context: StageContext) -> StatementCheck:
    try:
        data = await context.store.get(event.statement_audio_key)
    except ObjectNotFound:
        return StatementCheck([f"no statement recording at {event.statement_audio_key!r}"])
    if hashlib.sha256(data).hexdigest() != event.statement_audio_sha256:
        return StatementCheck(["the statement recording is not the one the owner signed (sha256 differs)"])
    await keep_sealed(context, event.statement_audio_key, data)
    try:
        prepared = await asyncio.to_thread(prepare_sample, data, ANALYSIS_SAMPLE_RATE_HZ, vad=context.models.vad)
        if not prepared.report.accepted:
            return StatementCheck([f"statement recording: {'; '.join(prepared.report.reasons)}"])
        embedding = await asyncio.to_thread(context.models.encoder.embed, prepared.samples, prepared.sample_rate_hz)
        match = await asyncio.to_thread(context.models.spoken_phrase.score, prepared.samples, prepared.sample_rate_hz,
                                        phrase, context.limits.spoken_consent_operator,
                                        context.limits.spoken_consent_language)
    except ProcessorError as error:
        return StatementCheck([f"statement recording: {error}"])
    similarity = await _similarity_to_current_profile(event.voice_id, embedding, context)
    mismatches = (phrase_mismatch(match, context.limits.spoken_consent_operator, _thresholds(match, context.limits)),
                  speaker_mismatch(similarity, context.limits.spoken_consent_min_similarity))
    return StatementCheck([problem for problem in mismatches if problem], embedding,
                          _statement_scores(match, similarity, context.limits))


async def _similarity_to_current_profile(voice_id: str, embedding: np.ndarray, context: StageContext) -> float | None:
    """The statement's similarity to the voice's newest profile; None before the voice has one."""
    row = await context.repos.profiles.latest(voice_id=voice_id)
    if row is None:
        return None
    return round(cosine_similarity(embedding, VoiceProfile.from_dict(row["profile"]).embedding), 4)


def _statement_scores(match: PhraseMatch, similarity: float | None, limits: Limits) -> SpokenStatementScores:
    thresholds = _thresholds(match, limits)
    speaker_check = ("compared with the voice's current profile" if similarity is not None
                     else "no samples adapted yet: compared with the samples at adaptation")
    return SpokenStatementScores(phrase_match=match.score, phrase_method=match.method,
                                 phrase_min_match=thresholds.phrase, operator=limits.spoken_consent_operator,
                                 operator_match=match.operator_score, operator_min_match=thresholds.operator,
                                 heard=match.heard[:_HEARD_CHARACTERS], speaker_similarity=similarity,
                                 speaker_min_similarity=limits.spoken_consent_min_similarity,
                                 speaker_check=speaker_check)


def _thresholds(match: PhraseMatch, limits: Limits) -> PhraseThresholds:
    return limits.spoken_phrase_words if match.method == "whisper_words" else limits.spoken_phrase_phonemes


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

