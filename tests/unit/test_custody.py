"""Chain-of-custody checks of one output, link by link, on evidence built in memory."""

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.trust.audit_chain import GENESIS_HASH, ChainEntry, audit_record_hash
from processors.trust.audit_checkpoints import sign_checkpoint
from processors.trust.consent import ConsentDocument, raw_public_key, sign_consent
from processors.trust.custody import (
    ConsentFacts,
    CustodyEvidence,
    OutputFacts,
    covering_checkpoint,
    custody_report,
)
from processors.trust.provenance import ProvenanceClaims, ProvenanceReport
from processors.trust.watermark import WatermarkDetection

AUDIT_KEY = b"k" * 32
WORKER_KEY = Ed25519PrivateKey.generate()
OWNER_KEY = Ed25519PrivateKey.generate()
REQUESTED_AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SYNTHESIS_ID = uuid.uuid4()
CONSENT_ID = uuid.uuid4()
PAYLOAD = SYNTHESIS_ID.bytes[:8]


def chain(records: list[dict]) -> list[ChainEntry]:
    entries, previous = [], GENESIS_HASH
    for sequence, record in enumerate(records, start=1):
        record_hash = audit_record_hash(previous, sequence, record, key=AUDIT_KEY)
        entries.append(ChainEntry(sequence, previous, record_hash, record))
        previous = record_hash
    return entries


def consent(**changes) -> ConsentFacts:
    document = ConsentDocument(
        consent_id=str(CONSENT_ID), voice_id="v-1", owner_id="owner-1", purposes=("narration",), languages=("en",),
        issued_at=REQUESTED_AT - timedelta(days=1), expires_at=REQUESTED_AT + timedelta(days=30), max_uses=None,
        statement_text="I consent.",
    )
    return ConsentFacts(dataclasses.replace(document, **changes), sign_consent(document, OWNER_KEY),
                        raw_public_key(OWNER_KEY))


@pytest.fixture
def evidence() -> CustodyEvidence:
    claims = ProvenanceClaims(str(SYNTHESIS_ID), "acme", "v-1", str(CONSENT_ID), PAYLOAD.hex(), "1.0")
    log = chain([{"action": "synthesis.requested"},
                 {"action": "synthesis.completed", "detail": {"synthesis_id": str(SYNTHESIS_ID)}},
                 {"action": "sample.accepted"}])
    checkpoint = sign_checkpoint(3, log[2].record_hash, REQUESTED_AT + timedelta(minutes=1), WORKER_KEY)
    return CustodyEvidence(
        provenance=ProvenanceReport("valid", claims=claims, signer="voxflow (issued by dev root)"),
        watermark=WatermarkDetection(True, PAYLOAD, 0.99),
        output=OutputFacts("synthesis", SYNTHESIS_ID, "acme", "v-1", CONSENT_ID, "narration", ("en",), "completed",
                           REQUESTED_AT, PAYLOAD.hex()),
        consent=consent(),
        completion=log[1], checkpoint=checkpoint, chain_segment=log[1:],
        worker_public_key=raw_public_key(WORKER_KEY), audit_key=AUDIT_KEY,
    )


def failed(report) -> dict[str, str]:
    return {link.name: link.detail for link in report.links if not link.ok}


def test_an_intact_output_holds_every_link(evidence):
    report = custody_report(evidence)

    assert report.ok, failed(report)
    assert [link.name for link in report.links] == [
        "content_credentials", "watermark", "synthesis", "consent_signature", "consent_scope", "audit_record",
        "audit_checkpoint"]


def test_an_altered_file_fails_only_its_content_credentials(evidence):
    altered = dataclasses.replace(evidence, provenance=dataclasses.replace(
        evidence.provenance, status="altered", failure_codes=("assertion.dataHash.mismatch",)))

    assert failed(custody_report(altered)) == {
        "content_credentials": "the file's bytes changed after the C2PA manifest was signed (assertion.dataHash.mismatch)"}


def test_a_stripped_manifest_fails_but_the_watermark_still_names_the_synthesis(evidence):
    stripped = dataclasses.replace(evidence, provenance=ProvenanceReport("missing", detail="no C2PA manifest in the file"))

    problems = failed(custody_report(stripped))

    assert list(problems) == ["content_credentials"] and "no C2PA manifest" in problems["content_credentials"]


def test_a_watermark_payload_other_than_the_manifests_fails(evidence):
    other = dataclasses.replace(evidence, watermark=WatermarkDetection(True, b"\x00" * 8, 0.9))

    assert "differs from the manifest's" in failed(custody_report(other))["watermark"]


def test_a_consent_document_changed_after_signing_fails_its_signature(evidence):
    widened = dataclasses.replace(evidence, consent=consent(purposes=("narration", "advertising")))

    assert "not the owner's" in failed(custody_report(widened))["consent_signature"]


@pytest.mark.parametrize("synthesis_changes, consent_changes, reason", [
    ({"purpose": "advertising"}, {}, "purpose 'advertising' not granted"),
    ({"languages": ("de",)}, {}, "language 'de' not granted"),
    ({"requested_at": REQUESTED_AT + timedelta(days=60)}, {}, "consent expired"),
    ({}, {"revoked_at": REQUESTED_AT - timedelta(hours=1)}, "consent revoked at"),
])
def test_a_synthesis_outside_the_consents_scope_fails_with_the_reason(evidence, synthesis_changes, consent_changes,
                                                                      reason):
    outside = dataclasses.replace(evidence, output=dataclasses.replace(evidence.output, **synthesis_changes),
                                  consent=dataclasses.replace(evidence.consent, **consent_changes))

    assert reason in failed(custody_report(outside))["consent_scope"]


def test_a_manifest_naming_another_voice_than_the_synthesis_fails(evidence):
    claims = dataclasses.replace(evidence.provenance.claims, voice_id="someone-else")
    lying = dataclasses.replace(evidence, provenance=dataclasses.replace(evidence.provenance, claims=claims))

    assert "someone-else" in failed(custody_report(lying))["synthesis"]


def test_no_synthesis_fails_every_link_that_depends_on_it(evidence):
    unknown = dataclasses.replace(evidence, output=None, consent=None, completion=None, checkpoint=None,
                                  chain_segment=[])

    assert set(failed(custody_report(unknown))) == {"synthesis", "consent_signature", "consent_scope", "audit_record",
                                                    "audit_checkpoint"}


def test_a_checkpoint_signed_by_another_key_fails(evidence):
    forged = dataclasses.replace(evidence, worker_public_key=raw_public_key(Ed25519PrivateKey.generate()))

    assert "is not signed by key" in failed(custody_report(forged))["audit_checkpoint"]


def test_a_rewritten_entry_between_the_completion_and_the_checkpoint_fails(evidence):
    rewritten = list(evidence.chain_segment)
    rewritten[1] = rewritten[1]._replace(record={"action": "sample.rejected"})

    problem = failed(custody_report(dataclasses.replace(evidence, chain_segment=rewritten)))["audit_checkpoint"]

    assert "broken" in problem and "record or hash altered" in problem


def test_without_the_audit_key_the_chains_links_are_still_checked(evidence):
    keyless = dataclasses.replace(evidence, audit_key=None)
    relinked = list(evidence.chain_segment)
    relinked[1] = relinked[1]._replace(previous_hash="0" * 64)

    assert custody_report(keyless).ok
    assert "does not follow" in failed(custody_report(dataclasses.replace(keyless, chain_segment=relinked)))[
        "audit_checkpoint"]


def test_a_completion_no_checkpoint_covers_yet_fails_naming_the_wait(evidence):
    assert "no signed checkpoint covers sequence 2" in failed(custody_report(
        dataclasses.replace(evidence, checkpoint=None)))["audit_checkpoint"]


def test_the_covering_checkpoint_is_the_first_at_or_after_the_entry():
    checkpoints = [sign_checkpoint(n, "a" * 64, REQUESTED_AT, WORKER_KEY) for n in (2, 9, 5)]

    assert covering_checkpoint(checkpoints, 3).sequence == 5
    assert covering_checkpoint(checkpoints, 2).sequence == 2
    assert covering_checkpoint(checkpoints, 10) is None


def dubbed(evidence: CustodyEvidence, *languages: str) -> CustodyEvidence:
    """The evidence of a dub in ``languages`` under a consent to dub in English and French."""
    output = dataclasses.replace(evidence.output, kind="dub", purpose="dubbing", languages=languages)
    document = dataclasses.replace(evidence.consent.document, purposes=("dubbing",), languages=("en", "fr"))
    signed = ConsentFacts(document, sign_consent(document, OWNER_KEY), raw_public_key(OWNER_KEY))
    return dataclasses.replace(evidence, output=output, consent=signed)


def test_a_dub_within_its_consent_holds_with_a_dub_link(evidence):
    report = custody_report(dubbed(evidence, "en", "fr"))

    links = {link.name: link for link in report.links}
    assert "dub" in links and "synthesis" not in links
    assert links["dub"].ok and f"dub {SYNTHESIS_ID}" in links["dub"].detail
    assert links["consent_scope"].ok and "'en', 'fr'" in links["consent_scope"].detail


def test_a_dub_speaking_a_language_its_consent_lacks_fails_its_scope(evidence):
    assert "language 'de' not granted" in failed(custody_report(dubbed(evidence, "en", "de")))["consent_scope"]
