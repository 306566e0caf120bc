"""Consent: verify the owner's Ed25519 signature, validity window and spoken statement; apply signed revocations.

The statement recording must be the signed one (sha256), clean enough to judge, and say the consent
phrase (its words or phonemes scored against ``Limits.spoken_consent_phrase``). Its speaker is
compared with the voice's profile when it has one, else with the samples at adaptation.

The stage takes grants in batches (``grant_consents``): a batch costs a few queries whatever its size,
and each grant in it ends as it would have alone, after the ones before it.
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
from infra.records import ConsentRecord
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
from streams.handlers.common import claim_voices, keep_sealed, waiting_adaptations_by_voice
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


@dataclass
class StatementCheck:
    """What checking the statement recording found; ``scores`` once the recording could be scored."""

    problems: list[str] = field(default_factory=list)
    embedding: np.ndarray | None = None
    scores: SpokenStatementScores | None = None


async def grant_consent(event: ConsentGranted, context: StageContext) -> list[Event]:
    (outcomes,) = await grant_consents([event], context)
    return outcomes


async def grant_consents(batch: list[ConsentGranted], context: StageContext) -> list[list[Event]]:
    """``grant_consent`` for each grant of ``batch``, judged as if one after the other (a copy of a grant later
    in the batch is a duplicate of it), in a few queries for the whole batch; only spoken statements take
    their own (the model time is theirs anyway)."""
    judged = await _judged(batch, context)
    # counted before this batch's decisions are stored: each rejection counts those up to itself
    alerts = await _failure_burst_alerts(judged, context)
    decisions = [item.decision for item in judged if item.decision is not None]
    if decisions:
        await context.repos.consents.record_decisions(decisions)
    resent = await waiting_adaptations_by_voice([item.event.voice_id for item in judged if item.verified], context)
    return [_outcomes(item, alert, resent) for item, alert in zip(judged, alerts)]


@dataclass
class _Judged:
    """One grant of a batch: refused before any decision (its voice, a replay), or decided."""

    event: ConsentGranted
    refusal: str | None = None
    decision: ConsentDecision | None = None
    statement: StatementCheck = field(default_factory=StatementCheck)
    first_decision: bool = False  # no decision of its consent was stored before: recording it adds a row

    @property
    def verified(self) -> bool:
        return self.decision is not None and self.decision.status == "verified"

    @property
    def rejected(self) -> bool:
        return self.decision is not None and self.decision.status == "rejected"


async def _judged(batch: list[ConsentGranted], context: StageContext) -> list[_Judged]:
    refusals = await claim_voices(batch, context)
    stored = await context.repos.consents.get_many(consent_ids=[event.consent_id for event in batch])
    judged = []
    for event, refusal in zip(batch, refusals):
        refusal = refusal or _replayed_grant(event, stored.get(event.consent_id))
        if refusal:
            judged.append(_Judged(event, refusal=refusal))
            continue
        item = await _decided(event, context)
        item.first_decision = event.consent_id not in stored
        # what a later grant of the same consent in this batch finds stored (the table keeps the first decision)
        stored.setdefault(event.consent_id, _as_stored(item.decision))
        judged.append(item)
    return judged


async def _decided(event: ConsentGranted, context: StageContext) -> _Judged:
    document = consent_document(event)
    reasons = _signature_problems(event, document) + _validity_problems(event, context)
    statement = StatementCheck()
    if not reasons:
        statement = await _spoken_statement(event, context)
        reasons += statement.problems
    return _Judged(event, statement=statement, decision=ConsentDecision(
        consent_id=event.consent_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
        owner_id=event.owner_id, owner_public_key=_decode_or_empty(event.owner_public_key),
        status="rejected" if reasons else "verified", reasons=reasons, purposes=list(event.purposes),
        languages=list(event.languages), issued_at=event.issued_at, expires_at=event.expires_at,
        max_uses=event.max_uses, document=event.model_dump(mode="json"), signature=_decode_or_empty(event.signature),
        statement_embedding=statement.embedding,
    ))


def _outcomes(item: _Judged, alert: list[Event], resent: dict[str, list[Event]]) -> list[Event]:
    event = item.event
    if item.refusal:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id, reasons=[item.refusal])]
    if item.rejected:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id, reasons=item.decision.reasons,
                                spoken_statement=item.statement.scores), *alert]
    verified = event.follow_up(
        ConsentVerified, consent_id=event.consent_id, owner_id=event.owner_id, purposes=list(event.purposes),
        languages=list(event.languages), expires_at=event.expires_at, max_uses=event.max_uses,
        spoken_statement=item.statement.scores,
    )
    return [verified, *resent.get(event.voice_id, [])]


def _as_stored(decision: ConsentDecision) -> ConsentRecord:
    """The record a decision leaves, for a later grant of the same consent in the batch to find."""
    return ConsentRecord(consent_id=decision.consent_id, voice_id=decision.voice_id, tenant_id=decision.tenant_id,
                         owner_id=decision.owner_id, owner_public_key=decision.owner_public_key,
                         status=decision.status, document=decision.document, signature=decision.signature,
                         reasons=decision.reasons)


def _replayed_grant(event: ConsentGranted, stored: ConsentRecord | None) -> str | None:
    """Why a grant of an already decided consent (``stored``: its decision) is a replay or a duplicate; None
    for a new one.

    The consent id is inside what the owner signed, so a copied grant keeps it: whatever its event id,
    the stored decision stands (a revoked consent stays revoked). A retry of the same event is no replay.
    """
    if stored is None or stored.document.get("event_id") == str(event.event_id):
        return None
    if stored.status == "revoked":
        return (f"replayed grant: consent {event.consent_id} was revoked at {stored.revoked_at.isoformat()} "
                "and stays revoked")
    return f"duplicate grant: consent {event.consent_id} was already {stored.status}; that decision stands"


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
    return round(cosine_similarity(embedding, VoiceProfile.from_dict(row.profile).embedding), 4)


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


async def _failure_burst_alerts(judged: list[_Judged], context: StageContext) -> list[list[Event]]:
    """Each grant's anomaly alert, if its rejection makes its voice's rejections in the window a burst; one
    query, made before the batch's decisions are stored, for every voice with a rejection in it."""
    rejected_voices = sorted({item.event.voice_id for item in judged if item.rejected})
    if not rejected_voices:
        return [[] for _ in judged]
    window_s = context.limits.consent_failure_window_s
    failures = await context.repos.consents.rejections_since_by_voice(
        voice_ids=rejected_voices, since=context.clock() - timedelta(seconds=window_s))
    alerts = []
    for item in judged:
        if not item.rejected:
            alerts.append([])
            continue
        # decided now, a new rejection is inside the window; a retried one was counted already
        failures[item.event.voice_id] = failures.get(item.event.voice_id, 0) + item.first_decision
        alerts.append(_failure_burst_alert(item.event, failures[item.event.voice_id], context.limits))
    return alerts


def _failure_burst_alert(event: ConsentGranted, failures: int, limits: Limits) -> list[Event]:
    finding = consent_failure_burst(failures, limit=limits.consent_failure_limit,
                                    window_s=limits.consent_failure_window_s)
    if finding is None:
        return []
    return [event.follow_up(AnomalyDetected, kind="consent_failures", severity=finding.severity,
                            detail=finding.detail, action="alert")]


async def revoke_consent(event: ConsentRevoked, context: StageContext) -> list[Event]:
    stored = await context.repos.consents.get(consent_id=event.consent_id)
    if stored is None or stored.voice_id != event.voice_id:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id,
                                reasons=[f"no consent {event.consent_id} for voice {event.voice_id!r}"])]
    try:
        signature = _decode_base64(event.signature, "signature")
        verify_revocation_signature(str(event.consent_id), event.revoked_at, signature, stored.owner_public_key)
    except ConsentSignatureError as error:
        return [event.follow_up(ConsentRejected, consent_id=event.consent_id,
                                reasons=[f"revocation signature: {error}"])]
    await context.repos.consents.revoke(consent_id=event.consent_id, revoked_at=event.revoked_at)
    return [event.follow_up(ConsentRevocationApplied, consent_id=event.consent_id, revoked_at=event.revoked_at)]

