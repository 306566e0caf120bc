"""Chain of custody of one output file, link by link, from what was read out of it and looked up about it.

An output's custody holds when every link does: its C2PA manifest is valid (signed by a trusted chain,
bytes unchanged); its watermark is detected and carries the payload the manifest names; that payload
names a completed synthesis (or dub) of the manifest's voice under the manifest's consent; the consent
document is signed by its owner's Ed25519 key and its scope (purpose, languages, validity, revocation)
covers the request when it was made; and the audit log holds that request's completion, covered by a
checkpoint the worker key signed, with the chain between them unbroken.

Everything here is pure: the caller gathers a ``CustodyEvidence`` (file, database) and gets a report.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from processors.errors import ConsentSignatureError
from processors.trust.audit_chain import ChainEntry, ChainVerification, verify_audit_chain
from processors.trust.audit_checkpoints import SignedCheckpoint, checkpoint_problem
from processors.trust.consent import ConsentDocument, check_consent_scope, utc_timestamp, verify_consent_signature
from processors.trust.provenance import ProvenanceClaims, ProvenanceReport
from processors.trust.watermark import WatermarkDetection


@dataclass(frozen=True)
class OutputFacts:
    """The stored synthesis or dub a payload or manifest names (``output_id``: its synthesis or dub id)."""

    kind: Literal["synthesis", "dub"]
    output_id: uuid.UUID
    tenant_id: str
    voice_id: str
    consent_id: uuid.UUID | None
    purpose: str
    languages: tuple[str, ...]  # a dub recorded before its languages were stored has none
    status: str
    requested_at: datetime
    watermark_payload: str | None


@dataclass(frozen=True)
class ConsentFacts:
    """The consent as stored: the owner's document, their signature over it and their public key (raw)."""

    document: ConsentDocument
    signature: bytes
    owner_public_key: bytes
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class CustodyEvidence:
    provenance: ProvenanceReport
    watermark: WatermarkDetection
    output: OutputFacts | None
    consent: ConsentFacts | None
    completion: ChainEntry | None  # the audit entry recording the output's completion
    checkpoint: SignedCheckpoint | None  # the first checkpoint whose sequence covers that entry
    chain_segment: Sequence[ChainEntry]  # the entries from the completion up to the checkpoint, in order
    worker_public_key: bytes
    audit_key: bytes | None  # the chain's HMAC key, to recheck the segment; None checks only its links


@dataclass(frozen=True)
class CustodyLink:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CustodyReport:
    links: tuple[CustodyLink, ...]

    @property
    def ok(self) -> bool:
        return all(link.ok for link in self.links)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "links": [asdict(link) for link in self.links]}


def custody_report(evidence: CustodyEvidence) -> CustodyReport:
    claims = evidence.provenance.claims
    return CustodyReport((
        content_credentials_link(evidence.provenance),
        watermark_link(evidence.watermark, claims),
        output_link(evidence.output, claims),
        consent_signature_link(evidence.consent, evidence.output),
        consent_scope_link(evidence.consent, evidence.output),
        audit_record_link(evidence.completion, evidence.output),
        audit_checkpoint_link(evidence),
    ))


def covering_checkpoint(checkpoints: Sequence[SignedCheckpoint], sequence: int) -> SignedCheckpoint | None:
    """The first checkpoint (lowest sequence) that saw entry ``sequence``; None when none has yet."""
    covering = [checkpoint for checkpoint in checkpoints if checkpoint.sequence >= sequence]
    return min(covering, key=lambda checkpoint: checkpoint.sequence, default=None)


def content_credentials_link(report: ProvenanceReport) -> CustodyLink:
    explanations = {
        "valid": f"valid C2PA manifest, trusted signer {report.signer}",
        "untrusted": f"intact C2PA manifest, but its signer {report.signer} chains to no trust anchor here",
        "altered": "the file's bytes changed after the C2PA manifest was signed (" + ", ".join(report.failure_codes) + ")",
        "missing": f"no C2PA manifest: stripped, re-encoded or never signed ({report.detail})",
        "invalid": f"the C2PA manifest is broken or its signature does not verify ({report.detail or report.failure_codes})",
    }
    if report.status == "valid" and report.claims is None:
        return CustodyLink("content_credentials", False, "the C2PA manifest names no voxflow synthesis")
    return CustodyLink("content_credentials", report.status == "valid", explanations[report.status])


def watermark_link(detection: WatermarkDetection, claims: ProvenanceClaims | None) -> CustodyLink:
    if not detection.detected:
        return CustodyLink("watermark", False, f"no voxflow watermark detected ({detection.reason})")
    payload = detection.payload.hex()
    if claims is None:
        return CustodyLink("watermark", True, f"payload {payload} (no manifest to compare it with)")
    if payload != claims.watermark_payload_hex:
        return CustodyLink("watermark", False,
                           f"payload {payload} differs from the manifest's {claims.watermark_payload_hex}")
    return CustodyLink("watermark", True, f"payload {payload}, as the manifest states")


def output_link(output: OutputFacts | None, claims: ProvenanceClaims | None) -> CustodyLink:
    """Named after what the file is ("synthesis" or "dub"); "synthesis" when nothing on record names it."""
    if output is None:
        return CustodyLink("synthesis", False, "no synthesis or dub has this watermark payload or the manifest's id")
    what = f"{output.kind} {output.output_id}"
    if output.status != "completed":
        return CustodyLink(output.kind, False, f"{what} is {output.status}, not completed")
    if claims is not None:
        # a dub's manifest names the dub in its synthesis_id claim
        stated = (claims.synthesis_id, claims.tenant_id, claims.voice_id, claims.consent_id)
        stored = (str(output.output_id), output.tenant_id, output.voice_id, str(output.consent_id))
        if stated != stored:
            return CustodyLink(output.kind, False, f"the manifest states (id, tenant, voice, consent) {stated}, "
                               f"the {output.kind} record {stored}")
    return CustodyLink(output.kind, True, f"{what} of voice {output.voice_id} (tenant {output.tenant_id}), completed")


def consent_signature_link(consent: ConsentFacts | None, output: OutputFacts | None) -> CustodyLink:
    if output is None:
        return CustodyLink("consent_signature", False, "not checked: no synthesis or dub")
    if consent is None:
        return CustodyLink("consent_signature", False, f"no consent document {output.consent_id} on record")
    if consent.document.voice_id != output.voice_id:
        return CustodyLink("consent_signature", False, f"consent {consent.document.consent_id} is for voice "
                           f"{consent.document.voice_id}, not {output.voice_id}")
    try:
        verify_consent_signature(consent.document, consent.signature, consent.owner_public_key)
    except ConsentSignatureError as error:
        return CustodyLink("consent_signature", False, f"consent {consent.document.consent_id}'s Ed25519 signature "
                           f"is not the owner's: {error}")
    return CustodyLink("consent_signature", True, f"consent {consent.document.consent_id} signed by owner "
                       f"{consent.document.owner_id} (Ed25519)")


def consent_scope_link(consent: ConsentFacts | None, output: OutputFacts | None) -> CustodyLink:
    if output is None or consent is None:
        return CustodyLink("consent_scope", False, "not checked: no synthesis or dub, or no consent")
    when = output.requested_at
    # the use limit was counted when the request claimed its use; here only what the document allows
    violations = _scope_violations(consent.document, output)
    if consent.revoked_at is not None and consent.revoked_at <= when:
        violations.append(f"consent revoked at {utc_timestamp(consent.revoked_at)}")
    if violations:
        return CustodyLink("consent_scope", False, f"at {utc_timestamp(when)}: " + "; ".join(violations))
    languages = ", ".join(repr(language) for language in output.languages) or "none on record"
    return CustodyLink("consent_scope", True, f"purpose {output.purpose!r}, languages {languages} "
                       f"at {utc_timestamp(when)} within the consent (valid until "
                       f"{utc_timestamp(consent.document.expires_at)})")


def _scope_violations(document: ConsentDocument, output: OutputFacts) -> list[str]:
    # with no languages on record (a dub from before they were stored) only purpose and validity are checked
    languages = output.languages or tuple(sorted(document.languages)[:1])
    checks = [check_consent_scope(document, purpose=output.purpose, language=language, now=output.requested_at,
                                  uses_so_far=0) for language in languages]
    return list(dict.fromkeys(violation for violations in checks for violation in violations))


def audit_record_link(completion: ChainEntry | None, output: OutputFacts | None) -> CustodyLink:
    if output is None:
        return CustodyLink("audit_record", False, "not checked: no synthesis or dub")
    if completion is None:
        return CustodyLink("audit_record", False,
                           f"the audit log holds no completion of {output.kind} {output.output_id}")
    return CustodyLink("audit_record", True, f"completion recorded at audit sequence {completion.sequence}")


def audit_checkpoint_link(evidence: CustodyEvidence) -> CustodyLink:
    completion, checkpoint = evidence.completion, evidence.checkpoint
    if completion is None:
        return CustodyLink("audit_checkpoint", False, "not checked: no audit record")
    if checkpoint is None:
        return CustodyLink("audit_checkpoint", False, f"no signed checkpoint covers sequence {completion.sequence} "
                           "yet (workers sign one every VOXFLOW_AUDIT_CHECKPOINT_INTERVAL_S)")
    segment = list(evidence.chain_segment)
    chain = verify_audit_chain(segment, key=evidence.audit_key,
                               start_after=(completion.sequence - 1, completion.previous_hash)) \
        if evidence.audit_key else _links_only(segment)
    if not segment or segment[0] != completion or not chain.valid:
        reason = chain.reason or "the segment does not start at the completion"
        return CustodyLink("audit_checkpoint", False, f"the chain from sequence {completion.sequence} to the "
                           f"checkpoint is broken: {reason}")
    hashes = {entry.sequence: entry.record_hash for entry in segment}
    problem = checkpoint_problem(checkpoint, hashes, evidence.worker_public_key, segment[-1].sequence)
    if problem:
        return CustodyLink("audit_checkpoint", False, problem)
    return CustodyLink("audit_checkpoint", True, f"checkpoint at sequence {checkpoint.sequence} signed "
                       f"{utc_timestamp(checkpoint.signed_at)} by worker key {checkpoint.key_id} covers it")


def _links_only(segment: list[ChainEntry]) -> ChainVerification:
    """Without the HMAC key: each entry must follow its predecessor and name its hash."""
    for previous, entry in zip(segment, segment[1:]):
        if entry.sequence != previous.sequence + 1 or entry.previous_hash != previous.record_hash:
            return ChainVerification(False, 0, entry.sequence, f"entry {entry.sequence} does not follow entry "
                                     f"{previous.sequence}")
    return ChainVerification(True, len(segment))
