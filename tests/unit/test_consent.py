"""Consent documents: only the owner's untouched, in-scope consent passes."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

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
