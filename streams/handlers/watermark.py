"""Watermark: mark every chunk with a keyed payload before release, assemble the whole, and answer
detection requests; scoring: score the whole once it is out (off the request's path)."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import numpy as np

from infra.errors import ObjectNotFound
from infra.records import SynthesisChunk, SynthesisRecord
from processors.audio.codec_quality import decode_audio, encode_wav, resample, to_mono
from processors.constants import CHUNK_PAUSE_MS, OUTPUT_SAMPLE_RATE_HZ, SCORED_EXCERPT_S
from processors.errors import ProcessorError, WatermarkAudioTooShortError
from processors.synthesis.text import chunk_text
from processors.voice.profile import VoiceProfile
from processors.trust.provenance import UNKNOWN_MIME_TYPE, ProvenanceClaims, read_provenance, sign_audio
from processors.trust.watermark import detect_watermark, embed_watermark
from schemas.envelope import Event
from schemas.events import (
    ContentCredentials,
    SynthesisChunkReady,
    SynthesisCompleted,
    SynthesisFailed,
    SynthesisProduced,
    SynthesisScored,
    SynthesisScoringRequested,
    SyntheticSpeechScore,
    WatermarkDetected,
    WatermarkDetectionRequested,
)
from streams.context import StageContext
from streams.handlers.common import keep_sealed, stopped_by_revocation, synthesis_key


VOXFLOW_VERSION = version("voxflow")
_COMPLETED_FIELDS = ("object_key", "watermark_payload", "latency_s", "rtf", "duration_s")


def watermark_payload(synthesis_id) -> bytes:
    """64 bits naming the synthesis; the syntheses table maps it back to the request."""
    return synthesis_id.bytes[:8]


async def release_output(event: SynthesisProduced, context: StageContext) -> list[Event]:
    """Mark and release the chunk, and complete the synthesis with its last chunk (its scoring requested).

    A redelivery after a crash re-sends what the first delivery may not have sent (the chunk's
    ``chunk_ready``, the ``synthesis.completed``, the scoring request) from the stored rows, with the same event ids.
    """
    synthesis = await context.repos.syntheses.get(synthesis_id=event.synthesis_id)
    if synthesis is None:
        return []
    if synthesis.status == "failed":
        return await stopped_by_revocation(event, synthesis, context) or []
    chunk = await context.repos.syntheses.chunk(synthesis_id=event.synthesis_id, chunk_index=event.chunk_index)
    if synthesis.status == "completed":
        return [_chunk_ready(event, chunk), *_completion(event, _stored_completion(synthesis))] if chunk.released_at else []
    if not chunk.released_at:
        stopped = await stopped_by_revocation(event, synthesis, context)
        if stopped is not None:
            return stopped
    try:
        outcomes = [_chunk_ready(event, chunk) if chunk.released_at else await _release_chunk(event, context)]
    except WatermarkAudioTooShortError as error:
        # voxflow never releases unmarked audio
        reason = (f"chunk {event.chunk_index + 1} of {event.chunk_count} is too short to carry the watermark "
                  f"({error}); send a longer text")
        await context.repos.syntheses.mark_failed(synthesis_id=event.synthesis_id, reason=reason)
        return [event.follow_up(SynthesisFailed, synthesis_id=event.synthesis_id, reason=reason)]
    released = await context.repos.syntheses.released_chunks(synthesis_id=event.synthesis_id)
    if len(released) == event.chunk_count:
        outcomes += await _complete(event, context, synthesis, released)
    return outcomes


async def _release_chunk(event: SynthesisProduced, context: StageContext) -> Event:
    decoded = decode_audio(await context.store.get(event.raw_key))
    marked = await asyncio.to_thread(embed_watermark, to_mono(decoded.samples), decoded.sample_rate_hz,
                                     context.watermark_key, watermark_payload(event.synthesis_id))
    object_key = synthesis_key(event, event.synthesis_id, f"chunk-{event.chunk_index:04d}.wav")
    await context.store.put(object_key, encode_wav(marked, decoded.sample_rate_hz), content_type="audio/wav")
    released = await context.repos.syntheses.release_chunk(synthesis_id=event.synthesis_id,
                                                           chunk_index=event.chunk_index, object_key=object_key)
    await context.store.delete(event.raw_key)
    return _chunk_ready(event, released)


def _chunk_ready(event: SynthesisProduced, chunk: SynthesisChunk) -> Event:
    return event.follow_up(
        SynthesisChunkReady, synthesis_id=event.synthesis_id, chunk_index=event.chunk_index,
        chunk_count=event.chunk_count, object_key=chunk.object_key, sample_rate_hz=event.sample_rate_hz,
        duration_s=event.duration_s, latency_s=round((chunk.released_at - event.requested_at).total_seconds(), 3),
    )


async def _complete(event: SynthesisProduced, context: StageContext, synthesis: SynthesisRecord,
                    released: list[SynthesisChunk]) -> list[Event]:
    """All chunks are out: join them (each already marked) into one file; scoring it is left to the scoring stage."""
    pieces = await _released_audio(released, context)
    rate = event.sample_rate_hz
    whole = _joined(pieces, rate)
    object_key = synthesis_key(event, event.synthesis_id, "output.wav")
    output = await _with_content_credentials(encode_wav(whole, rate), event, synthesis, context)
    await context.store.put(object_key, output, content_type="audio/wav")
    duration_s = whole.size / rate
    rtf = sum(chunk.compute_s for chunk in released) / duration_s
    latency_s = _seconds_since(event, context)
    fields = dict(
        object_key=object_key, watermark_payload=watermark_payload(event.synthesis_id).hex(),
        latency_s=round(latency_s, 3), rtf=round(rtf, 4), duration_s=round(duration_s, 3),
    )
    await context.repos.syntheses.mark_completed(synthesis_id=event.synthesis_id, **fields)
    return _completion(event, fields)


async def _released_audio(released: list[SynthesisChunk], context: StageContext) -> list[np.ndarray]:
    return [to_mono(decode_audio(await context.store.get(chunk.object_key)).samples) for chunk in released]


async def score_output(event: SynthesisScoringRequested, context: StageContext) -> list[Event]:
    """Score the completed output's leading chunks against the voice and the text (seconds of model time,
    which the caller does not wait for: it already has the completion)."""
    synthesis = await context.repos.syntheses.get(synthesis_id=event.synthesis_id)
    if synthesis is None or synthesis.status != "completed":  # erased since, or a forged request
        return []
    released = await context.repos.syntheses.released_chunks(synthesis_id=event.synthesis_id)
    rate = event.sample_rate_hz
    excerpt, excerpt_text = _scored_excerpt(await _released_audio(released, context), rate, synthesis.text)
    profile = VoiceProfile.from_dict(synthesis.profile)
    scores = await asyncio.to_thread(context.models.scorer.score, excerpt, rate, profile.embedding,
                                     excerpt_text, synthesis.language)
    fields = dict(speaker_similarity=_rounded(scores.similarity), word_error_rate=_rounded(scores.wer),
                  dnsmos=_rounded(scores.dnsmos))
    await context.repos.syntheses.record_scores(synthesis_id=event.synthesis_id, **fields)
    return [event.follow_up(SynthesisScored, synthesis_id=event.synthesis_id, **fields)]


async def _with_content_credentials(wav: bytes, event: SynthesisProduced, synthesis: SynthesisRecord,
                                    context: StageContext) -> bytes:
    """The output with a signed C2PA manifest: made by voxflow, by an algorithm, in which voice, under which consent."""
    if context.provenance is None:
        return wav
    claims = ProvenanceClaims(
        synthesis_id=str(event.synthesis_id), tenant_id=event.tenant_id, voice_id=event.voice_id,
        consent_id=str(synthesis.consent_id), watermark_payload_hex=watermark_payload(event.synthesis_id).hex(),
        generator_version=VOXFLOW_VERSION,
    )
    return await asyncio.to_thread(sign_audio, wav, "audio/wav", claims, context.provenance.signer)


def _joined(pieces: list[np.ndarray], rate: int) -> np.ndarray:
    pause = np.zeros(int(CHUNK_PAUSE_MS * rate / 1000), dtype=np.float32)
    return np.concatenate([part for piece in pieces for part in (pause, piece)][1:])


def _scored_excerpt(pieces: list[np.ndarray], rate: int, text: str) -> tuple[np.ndarray, str]:
    """The leading chunks up to ``SCORED_EXCERPT_S`` (at least one) and their text: scoring stays bounded."""
    texts = [chunk.text for chunk in chunk_text(text)]
    if len(texts) != len(pieces):  # chunked by another version of the rules: score the whole
        return _joined(pieces, rate), text
    durations_s = np.cumsum([piece.size / rate for piece in pieces])
    count = max(1, int(np.searchsorted(durations_s, SCORED_EXCERPT_S, side="right")))
    return _joined(pieces[:count], rate), " ".join(texts[:count])


def _stored_completion(synthesis: SynthesisRecord) -> dict:
    return {name: getattr(synthesis, name) for name in _COMPLETED_FIELDS}


def _completion(event: SynthesisProduced, fields: dict) -> list[Event]:
    """The completion and the request to score the output; ``fields``: what the completion wrote to the synthesis.
    One of each per request: a redelivered chunk other than the one that completed it re-sends the same two."""
    completed = event.request_follow_up(SynthesisCompleted, event.synthesis_id, synthesis_id=event.synthesis_id,
                                        sample_rate_hz=event.sample_rate_hz, chunk_count=event.chunk_count, **fields)
    return [completed, event.request_follow_up(SynthesisScoringRequested, event.synthesis_id,
                                               synthesis_id=event.synthesis_id, sample_rate_hz=event.sample_rate_hz)]


def _seconds_since(event: SynthesisProduced, context: StageContext) -> float:
    return (context.clock() - event.requested_at).total_seconds()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


async def detect_output(event: WatermarkDetectionRequested, context: StageContext) -> list[Event]:
    try:
        data = await context.store.get(event.object_key)
    except ObjectNotFound:
        return [_answer(event, detected=False, examined=False, confidence=0.0,
                        reason=f"no object at key {event.object_key!r}")]
    await keep_sealed(context, event.object_key, data)
    credentials = await asyncio.to_thread(_content_credentials, data, context)
    try:
        decoded = decode_audio(data)
        samples = resample(to_mono(decoded.samples), decoded.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)
        detection = await asyncio.to_thread(detect_watermark, samples, OUTPUT_SAMPLE_RATE_HZ, context.watermark_key)
    except ProcessorError as error:
        return [_answer(event, detected=False, examined=False, confidence=0.0, reason=str(error),
                        content_credentials=credentials)]
    synthetic_speech = await asyncio.to_thread(_synthetic_speech, samples, context)
    if not detection.detected:
        return [_answer(event, detected=False, confidence=detection.confidence, reason="no voxflow watermark found",
                        content_credentials=credentials, synthetic_speech=synthetic_speech)]
    payload = detection.payload.hex()
    synthesis = await context.repos.syntheses.find_by_watermark(payload=payload)
    dub = None if synthesis else await context.repos.dubs.find_by_watermark(payload=payload)
    return [_answer(event, detected=True, confidence=detection.confidence, payload=payload,
                    synthesis_id=synthesis.synthesis_id if synthesis else None,
                    dub_id=dub.dub_id if dub else None, content_credentials=credentials,
                    synthetic_speech=synthetic_speech)]


def _synthetic_speech(samples: np.ndarray, context: StageContext) -> SyntheticSpeechScore | None:
    """AASIST's score, or None for audio it cannot score (too short, silent) or without the model installed."""
    try:
        score = context.models.synthetic_speech.score(samples, OUTPUT_SAMPLE_RATE_HZ)
    except ProcessorError:
        return None
    return SyntheticSpeechScore(probability=score.synthetic_probability, model=score.model)


def _content_credentials(data: bytes, context: StageContext) -> ContentCredentials:
    anchors = context.provenance.trust_anchors_pem if context.provenance is not None else None
    report = read_provenance(data, UNKNOWN_MIME_TYPE, anchors)
    claims = report.claims
    return ContentCredentials(
        status=report.status, failure_codes=list(report.failure_codes), signer=report.signer,
        synthesis_id=claims.synthesis_id if claims else None, voice_id=claims.voice_id if claims else None,
        consent_id=claims.consent_id if claims else None,
    )


def _answer(event: WatermarkDetectionRequested, **fields) -> WatermarkDetected:
    return event.follow_up(WatermarkDetected, detection_id=event.detection_id, **fields)
