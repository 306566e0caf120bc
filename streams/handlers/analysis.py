"""Analysis: a tenant's recording analysed (and compared with another of its recordings or voices), the HTML
report sealed in the tenant's area for ``GET /v1/analyses/{id}/report``."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np

from infra.errors import InfraError, ObjectNotFound
from processors.errors import ProcessorError
from processors.scoring.analysis import AnalysisModels, ComparedVoice, analyze_recording, embed_recording
from schemas.envelope import Event
from schemas.events import (AnalysisCompleted, AnalysisFailed, AnalysisRequested, Authenticity, ContentCredentials,
                            SpeakerVerdict, SyntheticSpeechScore, WatermarkFinding)
from streams.context import StageContext
from streams.handlers.common import keep_sealed


class AnalysisRefused(Exception):
    """The request names something the tenant cannot analyse: a missing object, another tenant's voice."""


def analysis_report_key(tenant_id: str, analysis_id: uuid.UUID) -> str:
    return f"checks/{tenant_id}/analyses/{analysis_id}/report.html"


async def analyze_object(event: AnalysisRequested, context: StageContext) -> list[Event]:
    try:
        data = await _tenant_object(event.object_key, context)
        compared = await _compared_voice(event, context)
        analysis = await asyncio.to_thread(
            analyze_recording, data, context.watermark_key, _models(context), compared=compared,
            neighbours=await _stock_voice_embeddings(context) if compared else None,
            trust_anchors_pem=context.provenance.trust_anchors_pem if context.provenance else None)
    except (AnalysisRefused, ProcessorError) as error:
        return [_failed(event, str(error))]
    report_key = analysis_report_key(event.tenant_id, event.analysis_id)
    page = await asyncio.to_thread(analysis.report_html, f"Analysis of {event.object_key.rsplit('/', 1)[-1]}")
    await context.store.put(report_key, page.encode(), content_type="text/html")
    return [_completed(event, analysis.findings, report_key)]


async def fail_analysis(event: AnalysisRequested, context: StageContext, reason: str) -> list[Event]:
    return [_failed(event, reason)]


async def _tenant_object(key: str, context: StageContext) -> bytes:
    try:
        data = await context.store.get(key)
    except ObjectNotFound as error:
        raise AnalysisRefused(f"no object at key {key!r}: upload it before the request") from error
    await keep_sealed(context, key, data)
    if len(data) > context.limits.max_upload_bytes:
        raise AnalysisRefused(f"{key!r} is {len(data)} bytes; the limit is {context.limits.max_upload_bytes}")
    return data


async def _compared_voice(event: AnalysisRequested, context: StageContext) -> ComparedVoice | None:
    if event.compare_object_key is not None:
        data = await _tenant_object(event.compare_object_key, context)
        embedding = await asyncio.to_thread(embed_recording, data, context.models.encoder)
        return ComparedVoice(label=event.compare_object_key.rsplit("/", 1)[-1], embedding=embedding)
    if event.compare_voice_id is not None:
        return ComparedVoice(label=event.compare_voice_id, embedding=await _voice_embedding(event, context))
    return None


async def _voice_embedding(event: AnalysisRequested, context: StageContext) -> np.ndarray:
    embedding = await context.repos.profiles.latest_embedding(voice_id=event.compare_voice_id,
                                                              tenant_id=event.tenant_id)
    # one answer for another tenant's voice and a missing one: it must not tell which ids are taken
    if embedding is None:
        raise AnalysisRefused(f"voice {event.compare_voice_id!r} is not a voice of tenant {event.tenant_id!r} "
                              "with a profile (adapt it before comparing with it)")
    return np.asarray(embedding, dtype=np.float32)


async def _stock_voice_embeddings(context: StageContext) -> dict:
    """Kokoro's stock voices as the crowd the compared voices are placed among; none where they are not installed."""
    try:
        stock = await asyncio.to_thread(lambda: context.models.stock_voices)
    except (InfraError, ProcessorError):
        return {}
    return dict(zip(stock.names, stock.embeddings))


def _models(context: StageContext) -> AnalysisModels:
    models = context.models
    return AnalysisModels(vad=models.vad, dnsmos=models.dnsmos, encoder=models.encoder,
                          synthetic_speech=_loaded_or_none(lambda: models.synthetic_speech))


def _loaded_or_none(load):
    try:
        return load()
    except ProcessorError:
        return None


def _completed(event: AnalysisRequested, findings: dict, report_key: str) -> AnalysisCompleted:
    fields = ("duration_s", "speech_s", "snr_db", "clipping_ratio", "dnsmos", "vad", "f0_range_hz", "f0_median_hz",
              "speaking_rate", "accepted", "reasons", "suggestions")
    comparison = findings.get("comparison")
    return event.follow_up(
        AnalysisCompleted, analysis_id=event.analysis_id, report_key=report_key,
        watermark=WatermarkFinding(**findings["watermark"]), authenticity=_authenticity(findings["authenticity"]),
        comparison=SpeakerVerdict(**comparison) if comparison else None, **{name: findings[name] for name in fields})


def _authenticity(found: dict) -> Authenticity:
    synthetic, credentials = found["synthetic_speech"], found["content_credentials"]
    claims = credentials["claims"] or {}
    return Authenticity(
        synthetic_speech=SyntheticSpeechScore(probability=synthetic["probability"], model=synthetic["model"])
        if synthetic["probability"] is not None else None,
        content_credentials=ContentCredentials(
            status=credentials["status"], failure_codes=credentials["failure_codes"], signer=credentials["signer"],
            synthesis_id=claims.get("synthesis_id"), voice_id=claims.get("voice_id"),
            consent_id=claims.get("consent_id")),
    )


def _failed(event: AnalysisRequested, reason: str) -> AnalysisFailed:
    return event.follow_up(AnalysisFailed, analysis_id=event.analysis_id, reason=reason)
