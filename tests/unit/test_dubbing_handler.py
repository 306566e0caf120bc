"""The dubbing stage's endings with fakes: a redelivery re-sends the ending it had, a refused request says why,
and a request a stage gave up on ends failed once."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.audio.codec_quality import encode_wav

from schemas.events import DubRequested
from streams.context import StageContext
from streams.handlers.dubbing import dub_media, fail_dub
from tests.unit.fakes import FakeDubs, FakeSyntheses, FakeVoices, InMemoryStore, a_dub, a_synthesis, stored_consent
from voxflow.envelopes import signed_consent

TENANT, VOICE = "acme", "narrator-1"
SCRIPT = "1\n00:00:00,500 --> 00:00:02,000\nHello.\n"


MEDIA_KEY = f"uploads/{TENANT}/{VOICE}/clip.wav"


def request(script_text: str | None = SCRIPT, **fields) -> DubRequested:
    return DubRequested(tenant_id=TENANT, voice_id=VOICE, media_key=MEDIA_KEY,
                        script_format=fields.pop("script_format", "srt"), script_text=script_text, **fields)


class EnglishDubbingConsent:
    """The voice's current consent: dubbing in English only."""

    def __init__(self):
        self.document = signed_consent(Ed25519PrivateKey.generate(), tenant_id=TENANT, voice_id=VOICE,
                                       owner_id="owner-1", purposes=["dubbing"], languages=["en"],
                                       statement_text="I consent.")

    async def current_for_voice(self, *, voice_id, now):
        return stored_consent(self.document)


def three_seconds_of_sound() -> bytes:
    return encode_wav(np.random.default_rng(1).normal(0, 0.1, 3 * 16_000).astype(np.float32), 16_000)


def context(dubs: FakeDubs, store: InMemoryStore | None = None) -> StageContext:
    voices = FakeVoices()
    voices.owners[VOICE] = TENANT
    return StageContext(repos=SimpleNamespace(dubs=dubs, voices=voices, syntheses=FakeSyntheses(dubs)),
                        store=store or InMemoryStore(), watermark_key=b"k" * 32)


async def test_a_redelivered_request_of_a_finished_dub_gets_the_same_ending_and_no_new_work():
    event = request()
    dub = a_dub(event.dub_id, tenant_id=TENANT, voice_id=VOICE, status="completed",
                output_key=f"syntheses/{TENANT}/{VOICE}/x/dub.mp4", media_type="video/mp4",
                watermark_payload="00" * 8, duration_s=3.0, latency_s=1.0, overflows=[],
                placements=[{"segment_index": 0, "slot_start_s": 0.5, "slot_end_s": 2.0, "start_s": 0.5,
                             "end_s": 1.4, "tempo": 1.0}])

    first, again = [await dub_media(event, context(FakeDubs(dub))) for _ in range(2)]

    assert [e.type for e in first] == ["dub.completed"] and first[0].event_id == again[0].event_id
    assert first[0].placements[0].end_s == 1.4


async def test_a_script_that_does_not_parse_fails_the_dub_naming_the_line():
    event = request(script_text="1\n00:00:02,000 --> 00:00:01,000\nBackwards.\n")
    dubs = FakeDubs()

    outcomes = await dub_media(event, context(dubs))

    assert [e.type for e in outcomes] == ["dub.failed"]
    assert "segment 1 (line 2): ends at 1.000 s" in outcomes[0].reason
    assert dubs.rows[event.dub_id].status == "failed"


async def test_media_missing_from_the_store_fails_the_dub():
    outcomes = await dub_media(request(), context(FakeDubs()))

    assert [e.type for e in outcomes] == ["dub.failed"] and "not in the object store" in outcomes[0].reason


async def test_a_dub_for_a_voice_the_tenant_has_not_got_fails_without_a_row():
    event = request().model_copy(update={"voice_id": "someone-else"})
    dubs = FakeDubs()

    outcomes = await dub_media(event, context(dubs))

    assert [e.reason for e in outcomes] == ["unknown voice 'someone-else'"] and dubs.rows == {}


@pytest.mark.parametrize("status, endings", [("accepted", ["dub.failed"]), ("completed", []), ("failed", [])])
async def test_a_dub_a_stage_gave_up_on_ends_failed_unless_it_had_ended(status, endings):
    event = request()
    dubs = FakeDubs(a_dub(event.dub_id, status=status))

    outcomes = await fail_dub(event, context(dubs), "dead-lettered: boom")

    assert [e.type for e in outcomes] == endings
    assert dubs.rows[event.dub_id].status == ("failed" if status == "accepted" else status)


async def test_a_script_kept_in_the_store_is_read_from_there_and_its_lines_checked():
    script_key = f"uploads/{TENANT}/{VOICE}/lines.srt"
    store = InMemoryStore({script_key: b"1\n00:00:00,500 --> 00:00:00,600\nToo quick.\n"})

    outcomes = await dub_media(request(None, script_key=script_key), context(FakeDubs(), store))

    assert [e.reason for e in outcomes] == ["segment 1 (line 2): its slot of 0.100 s is under 0.3 s"]


async def test_the_languages_the_script_names_must_be_in_the_consent():
    script = json.dumps([{"start": 0.5, "end": 1.5, "text": "Buenos días.", "language": "es"},
                         {"start": 1.6, "end": 2.8, "text": "Hola.", "language": "es"}])
    dub_context = context(FakeDubs(), InMemoryStore({MEDIA_KEY: three_seconds_of_sound()}))
    dub_context.repos.consents = EnglishDubbingConsent()

    outcomes = await dub_media(request(script, script_format="json"), dub_context)

    assert [e.type for e in outcomes] == ["dub.failed"]
    assert "does not allow this" in outcomes[0].reason and "'es'" in outcomes[0].reason


async def test_a_line_matching_a_deny_pattern_blocks_the_dub_without_repeating_it():
    script = "1\n00:00:00,500 --> 00:00:02,500\nYour verification code is 482 913.\n"
    dub_context = context(FakeDubs(), InMemoryStore({MEDIA_KEY: three_seconds_of_sound()}))

    outcomes = await dub_media(request(script), dub_context)

    assert [e.type for e in outcomes] == ["anomaly.detected", "dub.failed"]
    assert outcomes[0].kind == "denied_text" and "line 1 of the script" in outcomes[1].reason
    assert "482" not in outcomes[1].reason


async def test_a_dub_over_the_voices_rate_window_is_refused_like_a_synthesis():
    dub_context = context(FakeDubs(), InMemoryStore({MEDIA_KEY: three_seconds_of_sound()}))
    limit = dub_context.limits.voice_synthesis_rate_limit
    now = dub_context.clock()
    for _ in range(limit):
        dub_context.repos.syntheses.put(a_synthesis(tenant_id=TENANT, voice_id=VOICE, requested_at=now))

    outcomes = await dub_media(request(), dub_context)

    assert [e.type for e in outcomes] == ["anomaly.detected", "dub.failed"]
    assert outcomes[0].kind == "rate_exceeded" and "per-voice rate window" in outcomes[1].reason
