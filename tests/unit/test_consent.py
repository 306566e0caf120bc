"""Consent documents: only the owner's untouched, in-scope consent passes, with its spoken statement where required."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.records import ProfileVersion
from processors.audio.codec_quality import encode_wav

from processors.trust.consent import (
    ConsentDocument,
    canonical_consent_bytes,
    check_consent_scope,
    generate_owner_keypair,
    private_key_from_base64,
    private_key_from_raw,
    private_key_to_base64,
    private_key_to_raw,
    public_key_from_base64,
    public_key_to_base64,
    raw_public_key,
    sign_consent,
    sign_revocation,
    verify_consent_signature,
    verify_revocation_signature,
)
from processors.errors import ConsentKeyError, ConsentSignatureError, InvalidConsentError
from processors.trust.spoken_phrase import PhraseMatch
from schemas.events import ConsentVerified
from streams.context import Limits, StageContext
from streams.handlers.consent import grant_consent
from tests.unit.fakes import FakeAdaptations, FakeConsents, FakeVoices, InMemoryStore
from voxflow.envelopes import signed_consent

ISSUED = datetime(2025, 1, 1, tzinfo=timezone.utc)
DOCUMENT = ConsentDocument(
    consent_id="c-1", voice_id="v-1", owner_id="o-1", purposes=("narration", "audiobook"), languages=("en", "de"),
    issued_at=ISSUED, expires_at=datetime(2026, 1, 1, tzinfo=timezone.utc), max_uses=None,
    statement_text="I consent.",
)
DOCUMENTED_CANONICAL_FORM = (
    b'{"consent_id":"c-1","expires_at":"2026-01-01T00:00:00Z","issued_at":"2025-01-01T00:00:00Z",'
    b'"languages":["de","en"],"max_uses":null,"owner_id":"o-1","purposes":["audiobook","narration"],'
    b'"statement_audio_sha256":null,"statement_text":"I consent.","voice_id":"v-1"}'
)


@pytest.fixture(scope="module")
def owner():
    return generate_owner_keypair()


def test_the_owner_signature_verifies(owner):
    private_key, public_key = owner
    verify_consent_signature(DOCUMENT, sign_consent(DOCUMENT, private_key), public_key)


def test_canonical_bytes_are_the_documented_form():
    assert canonical_consent_bytes(DOCUMENT) == DOCUMENTED_CANONICAL_FORM


def test_canonical_bytes_ignore_list_order_and_time_zone_notation():
    berlin = timezone(timedelta(hours=1))
    same = replace(DOCUMENT, purposes=("audiobook", "narration"), languages=["de", "en"],
                   issued_at=datetime(2025, 1, 1, 1, tzinfo=berlin))
    assert canonical_consent_bytes(same) == canonical_consent_bytes(DOCUMENT)


def test_non_ascii_text_is_signed_as_utf8(owner):
    document = replace(DOCUMENT, statement_text="Souhlasím s klonováním hlasu. 同意します。")
    assert "Souhlasím".encode() in canonical_consent_bytes(document)
    verify_consent_signature(document, sign_consent(document, owner[0]), owner[1])


@pytest.mark.parametrize("tampering", [
    {"purposes": ("narration", "audiobook", "advertising")},
    {"expires_at": datetime(2030, 1, 1, tzinfo=timezone.utc)},
    {"max_uses": 1000},
    {"statement_text": "I consent to anything."},
    {"voice_id": "v-2"},
    {"statement_audio_sha256": hashlib.sha256(b"another recording").hexdigest()},
])
def test_a_changed_document_no_longer_verifies(owner, tampering):
    private_key, public_key = owner
    signature = sign_consent(DOCUMENT, private_key)
    with pytest.raises(ConsentSignatureError, match="does not match"):
        verify_consent_signature(replace(DOCUMENT, **tampering), signature, public_key)


def test_a_signature_by_another_key_is_rejected(owner):
    forger, _ = generate_owner_keypair()
    with pytest.raises(ConsentSignatureError):
        verify_consent_signature(DOCUMENT, sign_consent(DOCUMENT, forger), owner[1])


@pytest.mark.parametrize("public_key, signature_length", [
    (b"\x01" * 31, 64), (b"\x01" * 33, 64), ("not bytes", 64), (None, 64), ("owner", 63),
])
def test_malformed_keys_and_signatures_are_rejected(owner, public_key, signature_length):
    key = owner[1] if public_key == "owner" else public_key
    signature = sign_consent(DOCUMENT, owner[0])[:signature_length]
    with pytest.raises(ConsentSignatureError):
        verify_consent_signature(DOCUMENT, signature, key)


def test_revocations_verify_and_cannot_be_moved_to_another_consent(owner):
    private_key, public_key = owner
    revoked_at = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    signature = sign_revocation("c-1", revoked_at, private_key)
    verify_revocation_signature("c-1", revoked_at, signature, public_key)
    with pytest.raises(ConsentSignatureError):
        verify_revocation_signature("c-2", revoked_at, signature, public_key)


def scope(document=DOCUMENT, *, purpose="narration", language="en", now=ISSUED + timedelta(days=30), uses_so_far=0):
    return check_consent_scope(document, purpose=purpose, language=language, now=now, uses_so_far=uses_so_far)


def test_an_in_scope_request_is_allowed():
    assert scope() == []


@pytest.mark.parametrize("request_overrides, expected", [
    ({"now": datetime(2026, 1, 1, tzinfo=timezone.utc)}, "expired"),
    ({"now": ISSUED - timedelta(seconds=1)}, "not valid yet"),
    ({"purpose": "advertising"}, "purpose 'advertising' not granted"),
    ({"language": "fr"}, "language 'fr' not granted"),
])
def test_out_of_scope_requests_say_why(request_overrides, expected):
    violations = scope(**request_overrides)
    assert len(violations) == 1 and expected in violations[0]


def test_the_use_limit_counts():
    limited = replace(DOCUMENT, max_uses=3)
    assert scope(limited, uses_so_far=2) == []
    assert scope(limited, uses_so_far=3) == ["use limit of 3 reached"]


def test_every_violation_is_listed():
    violations = scope(replace(DOCUMENT, max_uses=1), purpose="advertising", language="fr",
                       now=datetime(2027, 1, 1, tzinfo=timezone.utc), uses_so_far=1)
    assert len(violations) == 4


def test_naive_times_are_refused():
    with pytest.raises(InvalidConsentError, match="timezone-aware"):
        replace(DOCUMENT, issued_at=datetime(2025, 1, 1))
    with pytest.raises(InvalidConsentError, match="timezone-aware"):
        scope(now=datetime(2025, 2, 1))


@pytest.mark.parametrize("overrides", [
    {"purposes": ()}, {"languages": "en"}, {"max_uses": 0}, {"statement_audio_sha256": "ABC"},
])
def test_malformed_documents_are_refused(overrides):
    with pytest.raises(InvalidConsentError):
        replace(DOCUMENT, **overrides)


def test_keys_survive_raw_and_base64_round_trips(owner):
    private_key, public_key = owner
    assert raw_public_key(private_key_from_raw(private_key_to_raw(private_key))) == public_key
    assert raw_public_key(private_key_from_base64(private_key_to_base64(private_key))) == public_key
    assert public_key_from_base64(public_key_to_base64(public_key)) == public_key


@pytest.mark.parametrize("text", ["not base64!", "AAAA", ""])
def test_malformed_base64_keys_are_refused(text):
    with pytest.raises(ConsentKeyError):
        public_key_from_base64(text)
    with pytest.raises(ConsentKeyError):
        private_key_from_base64(text)


# --- the spoken statement, through the consent handler ----------------------------------------------------------

PHRASE = Limits().spoken_consent_phrase
STATEMENT_KEY = "consents/t/v1/statement.wav"


class LatestProfile:
    def __init__(self, profile=None):
        self.profile = profile

    async def latest(self, *, voice_id):
        return None if self.profile is None else ProfileVersion(voice_id, 1, self.profile.to_dict())


class HeardPhrase:
    """Stands in for Whisper: the recording "says" whatever score it is given."""

    def __init__(self, score: float):
        self.match = PhraseMatch("whisper_words", score, 1.0, "what the recogniser heard")

    def score(self, samples, sample_rate_hz, phrase, operator, language):
        return self.match


def spoken_context(recording: bytes, encoder, *, phrase_score: float = 1.0, profile=None, **limits) -> StageContext:
    repos = SimpleNamespace(voices=FakeVoices(), consents=FakeConsents(), adaptations=FakeAdaptations(),
                            profiles=LatestProfile(profile))
    models = SimpleNamespace(vad=None, encoder=encoder, spoken_phrase=HeardPhrase(phrase_score))
    return StageContext(repos=repos, store=InMemoryStore({STATEMENT_KEY: recording}), watermark_key=b"k" * 32,
                        models=models, limits=Limits(**limits))


def spoken_grant(recording: bytes | None, statement_text: str = PHRASE):
    return signed_consent(Ed25519PrivateKey.generate(), tenant_id="t", voice_id="v1", owner_id="o",
                          purposes=["narration"], languages=["en"], statement_text=statement_text,
                          statement_audio_key=STATEMENT_KEY if recording else None, statement_audio=recording)


@pytest.fixture(scope="module")
def owner_recording(english_heldout_speech) -> bytes:
    return encode_wav(english_heldout_speech[0][: 5 * 16000], english_heldout_speech[1])


async def test_by_default_a_consent_needs_the_spoken_statement(speaker_encoder):
    (rejected, *_) = await grant_consent(spoken_grant(None), spoken_context(b"", speaker_encoder))

    assert rejected.type == "consent.rejected"
    assert "a recording of the owner speaking the consent statement is required" in rejected.reasons


async def test_the_phrase_spoken_reports_both_scores_with_the_speaker_left_to_adaptation(owner_recording,
                                                                                        speaker_encoder):
    (verified,) = await grant_consent(spoken_grant(owner_recording), spoken_context(owner_recording, speaker_encoder))

    scores = verified.spoken_statement
    assert verified.type == "consent.verified" and verified.schema_version == 2
    assert (scores.phrase_match, scores.phrase_method, scores.phrase_min_match) == (1.0, "whisper_words", 0.75)
    assert (scores.operator, scores.operator_match) == ("Voxflow", 1.0)
    assert scores.speaker_similarity is None and "at adaptation" in scores.speaker_check


async def test_a_recording_of_other_words_is_rejected_as_the_wrong_phrase_with_its_score(owner_recording,
                                                                                        speaker_encoder):
    context = spoken_context(owner_recording, speaker_encoder, phrase_score=0.2)

    (rejected, *_) = await grant_consent(spoken_grant(owner_recording), context)

    assert rejected.type == "consent.rejected" and rejected.spoken_statement.phrase_match == 0.2
    assert rejected.reasons == ["wrong phrase: the recording does not say the consent phrase (match 0.20 < 0.75 "
                                "by whisper_words; heard 'what the recogniser heard')"]


async def test_a_signed_statement_that_is_not_the_phrase_is_rejected(owner_recording, speaker_encoder):
    grant = spoken_grant(owner_recording, statement_text="I agree that my voice may be cloned.")

    (rejected, *_) = await grant_consent(grant, spoken_context(owner_recording, speaker_encoder))

    assert rejected.reasons == [f"wrong phrase: the signed statement must be the consent phrase {PHRASE!r}"]


async def test_once_the_voice_has_a_profile_the_speaker_is_checked_at_consent_time(
        owner_recording, speaker_encoder, english_voice_profile, czech_male_speech):
    impostor = encode_wav(czech_male_speech[0][: 5 * 16000], czech_male_speech[1])

    (verified,) = await grant_consent(spoken_grant(owner_recording), spoken_context(
        owner_recording, speaker_encoder, profile=english_voice_profile))
    (rejected, *_) = await grant_consent(spoken_grant(impostor), spoken_context(
        impostor, speaker_encoder, profile=english_voice_profile))

    assert verified.spoken_statement.speaker_similarity >= 0.80
    assert "voice's current profile" in verified.spoken_statement.speaker_check
    assert rejected.spoken_statement.speaker_similarity < 0.80
    assert rejected.reasons[0].startswith("wrong speaker: the statement is not spoken by the voice's speaker")


def test_version_1_results_without_scores_still_parse():
    verified = ConsentVerified.model_validate({
        "type": "consent.verified", "schema_version": 1, "tenant_id": "t", "voice_id": "v1",
        "consent_id": str(uuid.uuid4()), "owner_id": "o", "purposes": ["narration"], "languages": ["en"],
        "expires_at": "2030-01-01T00:00:00Z"})

    assert verified.schema_version == 1 and verified.spoken_statement is None
