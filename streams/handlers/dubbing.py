"""Dubbing: speak each line of a timed script in the cloned voice, fit it to its slot, mix it over the original
sound and put the track back into the video; the result is watermarked, signed and stored sealed.

A request is accepted once (its consent use claimed with its row), then done in one go, reporting progress
line by line. A redelivery of a finished request re-sends its ending; one that finds it accepted but not
finished (the worker stopped midway) does the work again without claiming another use.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np

from infra.errors import ObjectNotFound
from infra.records import DubRecord
from processors.audio.codec_quality import encode_wav, resample
from processors.audio.media import MediaInfo
from processors.constants import OUTPUT_SAMPLE_RATE_HZ
from processors.errors import ProcessorError
from processors.synthesis.dubbing import FittedLine, ScriptSegment, check_within_media, fit_line, mix_dub, parse_script
from processors.synthesis.engine import SynthesisControls
from processors.trust.provenance import ProvenanceClaims, sign_audio
from processors.trust.watermark import embed_watermark
from processors.voice.profile import VoiceProfile
from schemas.envelope import Event
from schemas.events import (DUBBING_PURPOSE, AnomalyDetected, DubCompleted, DubFailed, DubOverflow, DubPlacement,
                            DubProgress, DubRequested)
from streams.context import StageContext
from streams.errors import SynthesisRefused
from streams.handlers.common import keep_sealed, synthesis_key
from streams.handlers.synthesis import consented_profile, over_rate_window

MIX_RATE_HZ = OUTPUT_SAMPLE_RATE_HZ  # the rate the watermark detector reads at
LINES_SHARE_PERCENT = 90.0  # of a dub's progress: speaking the lines; mixing, muxing and signing the rest
VOXFLOW_VERSION = version("voxflow")


class _UseLimitReached(Exception):
    """Rolls the request's unit of work back: its consent has no use left."""


@dataclass(frozen=True)
class _Voice:
    consent_id: uuid.UUID
    profile: VoiceProfile


async def dub_media(event: DubRequested, context: StageContext) -> list[Event]:
    existing = await context.repos.dubs.get(dub_id=event.dub_id)
    if existing is not None and existing.status != "accepted":
        return [_ending(event, existing)]  # a redelivery: the same ending, never a second consent use
    voice = await context.repos.voices.get_voice(voice_id=event.voice_id)
    if voice is None or voice.tenant_id != event.tenant_id:
        return [_failed(event, f"unknown voice {event.voice_id!r}")]
    try:
        segments, media, info = await _inputs(event, context)
        if existing is None:
            refused = await _over_rate_window(event, context) or await _denied_line(event, context, segments)
            if refused is not None:
                return refused
            speaker = await _accepted(event, context, segments)
        else:
            speaker = await _still_consented(context, existing)
        if speaker is None:
            return await _fail(event, context, "consent use limit reached" if existing is None
                               else f"consent {existing.consent_id} was revoked before the dub was done")
        completed = await _dub(event, context, segments, media, info, speaker)
        return [] if completed is None else [completed]
    except (SynthesisRefused, ProcessorError) as refusal:
        return await _fail(event, context, str(refusal))
    except ObjectNotFound as missing:
        return await _fail(event, context, f"not in the object store: {missing}")


async def fail_dub(event: DubRequested, context: StageContext, reason: str) -> list[Event]:
    """A stage gave up on the request: it ends failed, unless it already ended."""
    existing = await context.repos.dubs.get(dub_id=event.dub_id)
    if existing is not None and existing.status != "accepted":
        return []
    if existing is not None:
        await context.repos.dubs.mark_failed(dub_id=event.dub_id, reason=reason)
    return [_failed(event, reason)]


async def _inputs(event: DubRequested, context: StageContext) -> tuple[list[ScriptSegment], bytes, MediaInfo]:
    """The script's segments, the media's bytes and what ffprobe says of it; a script reaching past the media's
    end is refused."""
    script = event.script_text
    if script is None:
        data = await context.store.get(event.script_key)
        await keep_sealed(context, event.script_key, data)
        script = data.decode("utf-8", errors="replace")
    segments = parse_script(script, event.script_format)
    media = await context.store.get(event.media_key)
    await keep_sealed(context, event.media_key, media)
    info = await asyncio.to_thread(context.media.probe, media)
    check_within_media(segments, info.duration_s)
    return segments, media, info


async def _over_rate_window(event: DubRequested, context: StageContext) -> list[Event] | None:
    """The refusal of a dub over its tenant's or voice's rate window (dubs and syntheses count alike)."""
    finding = await over_rate_window(context, tenant_id=event.tenant_id, voice_id=event.voice_id,
                                     requested_at=event.occurred_at)
    if finding is None:
        return None
    anomaly = event.follow_up(AnomalyDetected, kind=finding.kind, severity=finding.severity, detail=finding.detail,
                              action="blocked")
    return [anomaly, *await _fail(event, context, f"blocked: {finding.detail}")]


async def _denied_line(event: DubRequested, context: StageContext, segments: list[ScriptSegment]) -> list[Event] | None:
    """The refusal of a script with a line matching a deny pattern; it names the line and pattern, never the text."""
    for segment in segments:
        pattern = await asyncio.to_thread(context.limits.text_policy.denied_by, segment.text)
        if pattern is not None:
            detail = f"line {segment.index + 1} of the script matches deny pattern {pattern!r}"
            anomaly = event.follow_up(AnomalyDetected, kind="denied_text", severity="warning", detail=detail,
                                      action="blocked")
            return [anomaly, *await _fail(event, context, f"blocked: {detail}")]
    return None


async def _accepted(event: DubRequested, context: StageContext, segments: list[ScriptSegment]) -> _Voice | None:
    """The consented voice, its use claimed with the request's row in one unit of work; None when no use is left.

    The consent must cover dubbing in every language the script uses, and the engine must speak each."""
    languages = sorted({_language(event, segment) for segment in segments})
    consented = [await consented_profile(context, tenant_id=event.tenant_id, voice_id=event.voice_id,
                                         purpose=DUBBING_PURPOSE, language=language) for language in languages]
    for language in languages:
        context.models.engine_for(context.models.engine_name_for(event.engine, language)).check_language(language)
    consent_id, profile, _ = consented[0]
    try:
        async with context.repos.transaction() as repos:
            if not await repos.consents.claim_use(consent_id=consent_id):
                raise _UseLimitReached(consent_id)
            await repos.dubs.record_request(dub_id=event.dub_id, voice_id=event.voice_id, tenant_id=event.tenant_id,
                                            requested_at=event.occurred_at, status="accepted", consent_id=consent_id,
                                            languages=languages, correlation_id=event.correlation_id,
                                            request_event_id=event.event_id)
    except _UseLimitReached:
        return None
    return _Voice(consent_id, profile)


async def _still_consented(context: StageContext, dub: DubRecord) -> _Voice | None:
    """The voice of a request accepted before the worker stopped, unless its consent was revoked since."""
    consent = await context.repos.consents.get(consent_id=dub.consent_id)
    profile = await context.repos.profiles.latest(voice_id=dub.voice_id)
    if consent is None or consent.status == "revoked" or profile is None:
        return None
    return _Voice(dub.consent_id, VoiceProfile.from_dict(profile.profile))


async def _dub(event: DubRequested, context: StageContext, segments: list[ScriptSegment], media: bytes,
               info: MediaInfo, speaker: _Voice) -> DubCompleted | None:
    lines = [await _spoken_line(event, context, segment, speaker.profile, len(segments)) for segment in segments]
    mixed = mix_dub(await _original_sound(context, media, info), MIX_RATE_HZ, lines, event.background)
    marked = await asyncio.to_thread(embed_watermark, mixed, MIX_RATE_HZ, context.watermark_key,
                                     _watermark_payload(event))
    if info.has_video:
        output, media_type, name = await asyncio.to_thread(context.media.with_audio_track, media, marked,
                                                           MIX_RATE_HZ), "video/mp4", "dub.mp4"
    else:
        output, media_type, name = encode_wav(marked, MIX_RATE_HZ), "audio/wav", "dub.wav"
    output = await _with_content_credentials(output, media_type, event, speaker, context)
    output_key = synthesis_key(event, event.dub_id, name)
    await context.store.put(output_key, output, content_type=media_type)
    fields = dict(
        output_key=output_key, media_type=media_type, watermark_payload=_watermark_payload(event).hex(),
        duration_s=round(mixed.size / MIX_RATE_HZ, 3), placements=[_placement(line) for line in lines],
        overflows=[DubOverflow(segment_index=line.segment.index, overflow_s=line.overflow_s).model_dump()
                   for line in lines if line.overflow_s > 0],
        latency_s=round((context.clock() - event.occurred_at).total_seconds(), 3),
    )
    if not await context.repos.dubs.mark_completed(dub_id=event.dub_id, **fields):
        return None  # failed meanwhile (past its deadline): that failure was its one ending
    return event.follow_up(DubCompleted, dub_id=event.dub_id, **fields)


async def _original_sound(context: StageContext, media: bytes, info: MediaInfo) -> np.ndarray:
    """The media's sound at the mix rate, silence where it has none, as long as the media (a video's sound
    may stop before its picture does)."""
    length = int(round(info.duration_s * MIX_RATE_HZ))
    if not info.has_audio:
        return np.zeros(length, dtype=np.float32)
    sound = await asyncio.to_thread(context.media.audio_track, media, MIX_RATE_HZ)
    return np.pad(sound, (0, max(0, length - sound.size)))


async def _spoken_line(event: DubRequested, context: StageContext, segment: ScriptSegment, profile: VoiceProfile,
                       count: int) -> FittedLine:
    language = _language(event, segment)
    engine = context.models.engine_for(context.models.engine_name_for(event.engine, language))
    speech = await asyncio.to_thread(engine.synthesize, segment.text, language, profile, SynthesisControls())
    samples = resample(speech.samples, speech.sample_rate_hz, MIX_RATE_HZ)
    line = await asyncio.to_thread(fit_line, segment, samples, MIX_RATE_HZ, context.media.change_tempo)
    done = segment.index + 1
    await context.report_progress(event.follow_up(
        DubProgress, discriminator=str(done), dub_id=event.dub_id, segments_done=done, segment_count=count,
        percent=round(LINES_SHARE_PERCENT * done / count, 1)))
    return line


def _placement(line: FittedLine) -> dict:
    segment = line.segment
    return DubPlacement(segment_index=segment.index, slot_start_s=segment.start_s, slot_end_s=segment.end_s,
                        start_s=segment.start_s, end_s=round(line.end_s(MIX_RATE_HZ), 3),
                        tempo=line.tempo).model_dump()


async def _with_content_credentials(data: bytes, media_type: str, event: DubRequested, speaker: _Voice,
                                    context: StageContext) -> bytes:
    """The output with a signed C2PA manifest: made by voxflow, by an algorithm, in which voice, under which consent."""
    if context.provenance is None:
        return data
    claims = ProvenanceClaims(synthesis_id=str(event.dub_id), tenant_id=event.tenant_id, voice_id=event.voice_id,
                              consent_id=str(speaker.consent_id),
                              watermark_payload_hex=_watermark_payload(event).hex(), generator_version=VOXFLOW_VERSION)
    return await asyncio.to_thread(sign_audio, data, media_type, claims, context.provenance.signer)


def _watermark_payload(event: DubRequested) -> bytes:
    """64 bits naming the dub; the dubs table maps it back to the request."""
    return event.dub_id.bytes[:8]


def _language(event: DubRequested, segment: ScriptSegment) -> str:
    return segment.language or event.language


def _ending(event: DubRequested, dub: DubRecord) -> Event:
    if dub.status == "failed":
        return _failed(event, dub.reason)
    fields = {name: getattr(dub, name) for name in ("output_key", "media_type", "watermark_payload", "duration_s",
                                           "placements", "overflows", "latency_s")}
    return event.follow_up(DubCompleted, dub_id=event.dub_id, **fields)


async def _fail(event: DubRequested, context: StageContext, reason: str) -> list[Event]:
    if await context.repos.dubs.get(dub_id=event.dub_id) is None:
        await context.repos.dubs.record_request(dub_id=event.dub_id, voice_id=event.voice_id,
                                                tenant_id=event.tenant_id, requested_at=event.occurred_at,
                                                status="failed", reason=reason, correlation_id=event.correlation_id,
                                                request_event_id=event.event_id)
    else:
        await context.repos.dubs.mark_failed(dub_id=event.dub_id, reason=reason)
    return [_failed(event, reason)]


def _failed(event: DubRequested, reason: str) -> DubFailed:
    return event.follow_up(DubFailed, dub_id=event.dub_id, reason=reason)
