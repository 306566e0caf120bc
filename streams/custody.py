"""What `voxflow verify FILE` needs to judge an output file's (a synthesis's or a dub's) chain of custody: read from
the file, looked up in Postgres."""

from __future__ import annotations

import uuid

from infra.provenance_keys import provenance_trust_anchors
from infra.repositories import AuditCheckpointRepository, ConsentRepository, CustodyRepository
from infra.settings import Settings
from infra.signing_keys import worker_signer
from processors.audio.codec_quality import decode_audio, resample, to_mono
from processors.constants import OUTPUT_SAMPLE_RATE_HZ
from processors.errors import ProcessorError
from processors.trust.audit_chain import ChainEntry
from processors.trust.custody import (
    ConsentFacts,
    CustodyEvidence,
    CustodyReport,
    OutputFacts,
    covering_checkpoint,
    custody_report,
)
from processors.trust.provenance import read_provenance
from processors.trust.watermark import WatermarkDetection, detect_watermark
from schemas.events import ConsentGranted
from streams.session import database
from voxflow.envelopes import consent_document


async def verify_custody(settings: Settings, data: bytes, mime_type: str) -> CustodyReport:
    """The custody report of the file ``data`` under this deployment's keys and records."""
    provenance = read_provenance(data, mime_type, provenance_trust_anchors(settings))
    watermark = _watermark(data, settings.watermark_key())
    claimed_id = _uuid_or_none(provenance.claims.synthesis_id) if provenance.claims else None
    payload = watermark.payload.hex() if watermark.detected else None
    async with database(settings) as pool:
        custody = CustodyRepository(pool)
        output = await custody.output(watermark_payload=payload, output_id=claimed_id)
        consent = await _consent(ConsentRepository(pool), output)
        completion = None if output is None else await custody.completion_entry(kind=output.kind,
                                                                                output_id=output.output_id)
        checkpoint = None if completion is None else covering_checkpoint(
            await AuditCheckpointRepository(pool).all(), completion.sequence)
        segment = [] if checkpoint is None else await custody.entries_between(first=completion.sequence,
                                                                              last=checkpoint.sequence)
    return custody_report(CustodyEvidence(
        provenance=provenance, watermark=watermark, output=output, consent=consent,
        completion=_chain_entry(completion), checkpoint=checkpoint, chain_segment=[_chain_entry(e) for e in segment],
        worker_public_key=worker_signer(settings).public_key, audit_key=settings.audit_key(),
    ))


def _watermark(data: bytes, key: bytes) -> WatermarkDetection:
    try:
        decoded = decode_audio(data)
        samples = resample(to_mono(decoded.samples), decoded.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)
        return detect_watermark(samples, OUTPUT_SAMPLE_RATE_HZ, key)
    except ProcessorError as error:
        return WatermarkDetection(False, None, 0.0, reason=str(error))


async def _consent(consents: ConsentRepository, output: OutputFacts | None) -> ConsentFacts | None:
    if output is None or output.consent_id is None:
        return None
    consent = await consents.get(consent_id=output.consent_id)
    if consent is None:
        return None
    granted = ConsentGranted.model_validate(consent.document)
    return ConsentFacts(consent_document(granted), consent.signature, consent.owner_public_key, consent.revoked_at)


def _chain_entry(entry) -> ChainEntry | None:
    return None if entry is None else ChainEntry(entry.sequence, entry.previous_hash, entry.record_hash, entry.record)


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
