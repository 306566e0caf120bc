"""Watermark: mark every output with a keyed payload before release; answer detection requests."""

from __future__ import annotations

import asyncio

from infra.errors import ObjectNotFound
from processors.audio import decode_audio, encode_wav, resample, to_mono
from processors.constants import OUTPUT_SAMPLE_RATE_HZ
from processors.errors import ProcessorError
from processors.watermark import detect_watermark, embed_watermark
from schemas.envelope import Event
from schemas.events import SynthesisCompleted, SynthesisProduced, WatermarkDetected, WatermarkDetectionRequested
from streams.context import StageContext
from streams.handlers.common import synthesis_key


def watermark_payload(synthesis_id) -> bytes:
    """64 bits naming the synthesis; the syntheses table maps it back to the request."""
    return synthesis_id.bytes[:8]


async def release_output(event: SynthesisProduced, context: StageContext) -> list[Event]:
    synthesis = await context.repos.syntheses.get(synthesis_id=event.synthesis_id)
    if synthesis is not None and synthesis["status"] == "completed":
        return []
    decoded = decode_audio(await context.store.get(event.raw_key))
    payload = watermark_payload(event.synthesis_id)
    marked = await asyncio.to_thread(
        embed_watermark, to_mono(decoded.samples), decoded.sample_rate_hz, context.watermark_key, payload
    )
    object_key = synthesis_key(event, event.synthesis_id, "output.wav")
    await context.store.put(object_key, encode_wav(marked, decoded.sample_rate_hz), content_type="audio/wav")
    latency_s = (context.clock() - event.requested_at).total_seconds()
    await context.repos.syntheses.mark_completed(
        synthesis_id=event.synthesis_id, object_key=object_key, watermark_payload=payload.hex(),
        latency_s=latency_s, speaker_similarity=event.speaker_similarity,
    )
    await context.store.delete(event.raw_key)
    return [event.follow_up(
        SynthesisCompleted, synthesis_id=event.synthesis_id, object_key=object_key,
        sample_rate_hz=decoded.sample_rate_hz, duration_s=event.duration_s, rtf=event.rtf,
        latency_s=round(latency_s, 3), watermark_payload=payload.hex(), speaker_similarity=event.speaker_similarity,
    )]


async def detect_output(event: WatermarkDetectionRequested, context: StageContext) -> list[Event]:
    try:
        decoded = decode_audio(await context.store.get(event.object_key))
        samples = resample(to_mono(decoded.samples), decoded.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)
        detection = await asyncio.to_thread(detect_watermark, samples, OUTPUT_SAMPLE_RATE_HZ, context.watermark_key)
    except ObjectNotFound:
        return [_answer(event, detected=False, confidence=0.0, reason=f"no object at key {event.object_key!r}")]
    except ProcessorError as error:
        return [_answer(event, detected=False, confidence=0.0, reason=str(error))]
    if not detection.detected:
        return [_answer(event, detected=False, confidence=detection.confidence, reason="no voxflow watermark found")]
    payload = detection.payload.hex()
    synthesis = await context.repos.syntheses.find_by_watermark(payload=payload)
    return [_answer(event, detected=True, confidence=detection.confidence, payload=payload,
                    synthesis_id=synthesis["synthesis_id"] if synthesis else None)]


def _answer(event: WatermarkDetectionRequested, **fields) -> WatermarkDetected:
    return event.follow_up(WatermarkDetected, detection_id=event.detection_id, **fields)
