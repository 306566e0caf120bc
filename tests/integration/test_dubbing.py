"""Dubbing on the real services: a short video with a real speech track and a three-line SRT script, dubbed in a
cloned voice through the client package; every line lands in its slot, the picture survives, the output carries
the watermark and signed content credentials, `voxflow verify` traces it to its dub and consent, and nobody reaches
another tenant's media or dub."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.provenance_keys import provenance_trust_anchors
from processors.audio.media import FfmpegMediaEngine
from processors.constants import OUTPUT_SAMPLE_RATE_HZ
from processors.trust.provenance import read_provenance
from processors.trust.watermark import detect_watermark
from schemas.envelope import utc_now
from schemas.events import DubRequested
from tests.integration.test_client import OTHER_TENANT, client_config
from tests.integration.test_custody import verified
from tests.journeys import RESULT_TIMEOUT_S, TENANT, eventually, wav_of_real_speech
from voxflow import AsyncClient, DeliveryForbidden

pytestmark = pytest.mark.integration

CLIP_S = 7
SCRIPT = """1
00:00:00,500 --> 00:00:02,300
Good morning, everyone.

2
00:00:02,800 --> 00:00:04,300
Here is the news.

3
00:00:04,800 --> 00:00:06,000
That was all for today.
"""
SLOTS_S = [(0.5, 2.3), (2.8, 4.3), (4.8, 6.0)]
TOLERANCE_S = 0.05
FRAME_S = 0.01


def video_with_real_speech(folder) -> bytes:
    """A few seconds of ffmpeg's test picture with a real recording as its sound."""
    speech, video = folder / "speech.wav", folder / "clip.mp4"
    speech.write_bytes(wav_of_real_speech(CLIP_S, offset=3))
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size=320x240:rate=25:d={CLIP_S}",
                    "-i", str(speech), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(video)],
                   check=True)
    return video.read_bytes()


def speech_frames(track: np.ndarray, rate_hz: int) -> np.ndarray:
    """Which 10 ms frames hold speech: more than 25 dB above the quietest tenth (the watermark's floor)."""
    frame = int(rate_hz * FRAME_S)
    frames = track[: track.size // frame * frame].reshape(-1, frame).astype(np.float64)
    levels = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return levels > np.percentile(levels, 10) + 25


@pytest.fixture(scope="module")
async def dubbing_voice(pipeline_settings, worker):
    voice, owner, journey = f"dub-{uuid.uuid4().hex[:6]}", Ed25519PrivateKey.generate(), uuid.uuid4()
    async with AsyncClient(client_config(pipeline_settings, worker)) as client:
        uploads = [await client.upload_sample(voice, wav_of_real_speech(10, offset=i), filename=f"take-{i}.wav",
                                              correlation_id=journey) for i in range(2)]
        consent = await client.grant_consent(owner, voice, "owner-1", ["dubbing"], ["en"], "I consent.",
                                             correlation_id=journey)
        adaptation = await client.request_adaptation(voice, [upload.sample_id for upload in uploads],
                                                     correlation_id=journey)
        assert (await client.wait_for(consent)).type == "consent.verified"
        assert (await client.wait_for(adaptation)).type == "voice.ready"
    return voice, consent


async def test_a_clip_is_dubbed_line_by_line_inside_each_slot(pipeline_settings, worker, dubbing_voice, tmp_path):
    voice, consent = dubbing_voice
    progress = []
    async with AsyncClient(client_config(pipeline_settings, worker)) as client:
        request = await client.dub(voice, video_with_real_speech(tmp_path), filename="clip.mp4", script=SCRIPT,
                                   script_format="srt", background="replace")
        completed = await client.wait_for(request, on_progress=progress.append, timeout_s=RESULT_TIMEOUT_S)
        dubbed = await client.download_dub(completed.dub_id)
    media = FfmpegMediaEngine()

    assert completed.type == "dub.completed", completed
    assert [event.segments_done for event in progress] == [1, 2, 3]
    assert [event.percent for event in progress] == sorted(event.percent for event in progress)
    info = media.probe(dubbed)
    assert info.has_video and info.has_audio and info.duration_s == pytest.approx(CLIP_S, abs=0.15)
    track = media.audio_track(dubbed, OUTPUT_SAMPLE_RATE_HZ)
    speech = speech_frames(track, OUTPUT_SAMPLE_RATE_HZ)
    in_a_slot = np.zeros_like(speech)
    for (slot_start_s, slot_end_s), placement in zip(SLOTS_S, completed.placements):
        assert (placement.slot_start_s, placement.slot_end_s) == (slot_start_s, slot_end_s)
        first, last = int((slot_start_s - TOLERANCE_S) / FRAME_S), int((slot_end_s + TOLERANCE_S) / FRAME_S)
        heard = np.flatnonzero(speech[first:last]) + first
        assert heard.size, f"no speech in the slot {slot_start_s}-{slot_end_s} s"
        assert abs(heard[0] * FRAME_S - slot_start_s) <= TOLERANCE_S
        assert placement.end_s <= slot_end_s + TOLERANCE_S
        in_a_slot[first:last] = True
    assert not np.any(speech & ~in_a_slot), "speech outside every slot"
    assert completed.overflows == []
    credentials = read_provenance(dubbed, "video/mp4", provenance_trust_anchors(pipeline_settings))
    assert credentials.status == "valid", credentials
    assert (credentials.claims.synthesis_id, credentials.claims.consent_id) == (str(completed.dub_id),
                                                                                 str(consent.consent_id))
    mark = detect_watermark(track, OUTPUT_SAMPLE_RATE_HZ, pipeline_settings.watermark_key())
    assert mark.detected and mark.payload.hex() == completed.watermark_payload
    (tmp_path / "dubbed.mp4").write_bytes(dubbed)
    status, links = await eventually(lambda: verified(pipeline_settings, tmp_path / "dubbed.mp4"),
                                     lambda result: result[0] == 0, timeout_s=60)
    assert status == 0, links
    assert str(completed.dub_id) in links["dub"]["detail"] and "'en'" in links["consent_scope"]["detail"]

    async with AsyncClient(client_config(pipeline_settings, worker, tenant_id=OTHER_TENANT)) as intruder:
        with pytest.raises(DeliveryForbidden):
            await intruder.download_dub(completed.dub_id)


async def test_voxflow_dub_writes_the_dubbed_clip(pipeline_settings, worker, dubbing_voice, tmp_path):
    voice, _ = dubbing_voice
    clip, script, out = tmp_path / "clip.mp4", tmp_path / "lines.srt", tmp_path / "clip.dubbed.mp4"
    clip.write_bytes(video_with_real_speech(tmp_path))
    script.write_text(SCRIPT)
    settings = pipeline_settings
    environment = {**os.environ, "VOXFLOW_TENANT_ID": TENANT,
                   "VOXFLOW_TENANT_KEYS_DIR": str(settings.tenant_key_directory()),
                   "VOXFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "VOXFLOW_S3_ENDPOINT": settings.s3_endpoint,
                   "VOXFLOW_S3_ACCESS_KEY": settings.s3_access_key, "VOXFLOW_S3_SECRET_KEY": settings.s3_secret_key,
                   "VOXFLOW_S3_BUCKET": settings.s3_bucket,
                   "VOXFLOW_DELIVERY_URL": f"http://{settings.web_host}:{worker.web_port}"}

    command = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("voxflow")), "dub", str(clip), "--voice", voice, "--script", str(script),
        "--out", str(out), env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(command.communicate(), RESULT_TIMEOUT_S)

    assert command.returncode == 0, stderr.decode()
    completed = json.loads(stdout)
    assert (completed["type"], completed["written_to"]) == ("dub.completed", str(out))
    assert [placement["slot_start_s"] for placement in completed["placements"]] == [start for start, _ in SLOTS_S]
    info = FfmpegMediaEngine().probe(out.read_bytes())
    assert info.has_video and info.has_audio
    assert b"90%" in stderr  # the progress shown after the last line was spoken


async def test_a_dub_of_another_tenants_media_is_refused_unread(pipeline_settings, session, dead_letters, dubbing_voice):
    voice, _ = dubbing_voice
    # a worker refuses what the model refuses: built without validation, as a hostile producer could send it
    request = DubRequested.model_construct(
        event_id=uuid.uuid4(), type="dub.requested", schema_version=1, tenant_id=TENANT, voice_id=voice,
        correlation_id=uuid.uuid4(), causation_id=None, occurred_at=utc_now(), dub_id=uuid.uuid4(),
        media_key=f"uploads/{OTHER_TENANT}/their-voice/clip.mp4", script_format="srt", script_text=SCRIPT,
        script_key=None, background="duck", language="en", engine=None)
    await session.publisher.publish(request)

    letters = await dead_letters.wait_until(lambda e: str(request.dub_id) in e.payload_text,
                                            timeout_s=RESULT_TIMEOUT_S)

    assert [letter.reason for letter in letters] == ["MalformedEvent"]
    assert "outside the event's tenant and voice" in letters[0].error

