"""Ingest: fetch the uploaded object, decode, resample, normalise, trim, quality-gate."""

from __future__ import annotations

import asyncio

from infra.errors import ObjectNotFound
from processors.audio.codec_quality import encode_wav, prepare_sample
from processors.constants import ANALYSIS_SAMPLE_RATE_HZ
from processors.errors import ProcessorError
from schemas.envelope import Event
from schemas.events import SampleAccepted, SampleRejected, SampleUploaded
from streams.context import StageContext
from streams.handlers.common import claim_voice, keep_sealed, resend_waiting_adaptations, sample_key


async def ingest_sample(event: SampleUploaded, context: StageContext) -> list[Event]:
    rejection = await claim_voice(event, context)
    if rejection:
        return [event.follow_up(SampleRejected, sample_id=event.sample_id, reasons=[rejection])]
    try:
        data = await context.store.get(event.object_key)
    except ObjectNotFound:
        return await _reject(event, context, [f"no object at key {event.object_key!r}: upload it before the event"])
    await keep_sealed(context, event.object_key, data)
    if len(data) > context.limits.max_upload_bytes:
        return await _reject(event, context, [f"file is {len(data)} bytes; the limit is {context.limits.max_upload_bytes}"])
    try:
        prepared = await asyncio.to_thread(prepare_sample, data, ANALYSIS_SAMPLE_RATE_HZ,
                                           vad=context.models.vad, dnsmos=context.models.dnsmos)
    except ProcessorError as error:
        return await _reject(event, context, [str(error)])
    report = prepared.report
    if not report.accepted:
        return await _reject(event, context, list(report.reasons), list(report.suggestions))
    return await _accept(event, context, prepared)


async def _accept(event: SampleUploaded, context: StageContext, prepared) -> list[Event]:
    report = prepared.report
    normalised_key = sample_key(event, event.sample_id, "normalised.wav")
    await context.store.put(
        normalised_key, encode_wav(prepared.samples, prepared.sample_rate_hz), content_type="audio/wav"
    )
    quality = {**report.to_dict(), "original_duration_s": prepared.original_duration_s}
    await context.repos.samples.record_decision(
        sample_id=event.sample_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
        object_key=event.object_key, status="accepted", normalised_key=normalised_key,
        suggestions=list(report.suggestions), speech_s=report.speech_duration_s, quality=quality,
    )
    accepted = event.follow_up(
        SampleAccepted,
        sample_id=event.sample_id,
        normalised_key=normalised_key,
        duration_s=round(prepared.original_duration_s, 3),
        speech_s=round(report.speech_duration_s, 3),
        snr_db=round(report.snr_db, 2),
        clipping_ratio=round(report.clipping_ratio, 5),
        dnsmos=None if report.dnsmos is None else round(report.dnsmos, 2),
        speech_detector=report.vad,
        original_sample_rate_hz=prepared.original_rate_hz,
        original_channels=prepared.original_channels,
        suggestions=list(report.suggestions),
    )
    return [accepted, *await resend_waiting_adaptations(event.voice_id, context)]


async def _reject(event: SampleUploaded, context: StageContext, reasons: list[str], suggestions=()) -> list[Event]:
    await context.repos.samples.record_decision(
        sample_id=event.sample_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
        object_key=event.object_key, status="rejected", reasons=reasons, suggestions=list(suggestions),
    )
    rejected = event.follow_up(SampleRejected, sample_id=event.sample_id, reasons=reasons, suggestions=list(suggestions))
    return [rejected, *await resend_waiting_adaptations(event.voice_id, context)]
