"""The synthetic-speech score (AASIST) on real and synthetic speech, and where voxflow reports it."""

import json
import uuid
from types import SimpleNamespace

import numpy as np
import pytest

from processors.audio.codec_quality import encode_wav, resample
from processors.errors import InvalidAudioError
from processors.scoring.analysis import analyze_audio
from processors.scoring.authenticity import AASIST_MODEL_NAME, SyntheticSpeechScorer
from schemas import parse_event
from schemas.events import WatermarkDetected, WatermarkDetectionRequested
from streams.context import StageContext
from streams.handlers.watermark import detect_output
from tests.unit.fakes import InMemoryStore, a_dub

SENTENCE = "Good morning, everyone. Today we will read the news of the week together."


@pytest.fixture(scope="module")
def scorer() -> SyntheticSpeechScorer:
    return SyntheticSpeechScorer()


def test_espeak_speech_scores_as_more_synthetic_than_a_real_recording(scorer, english_speech_8s, espeak_tts):
    robotic, rate = espeak_tts.synthesize(SENTENCE, "en", voice_gender="female")

    human = scorer.score(english_speech_8s, 16000)
    synthetic = scorer.score(robotic, rate)

    assert 0.0 <= human.synthetic_probability < synthetic.synthetic_probability <= 1.0
    assert synthetic.synthetic_probability > 0.99
    assert human.model == synthetic.model == AASIST_MODEL_NAME


def test_the_same_audio_at_another_rate_scores_about_the_same(scorer, espeak_tts):
    robotic, rate = espeak_tts.synthesize(SENTENCE, "en", voice_gender="male")
    at_48k = resample(robotic, rate, 48000)

    assert abs(scorer.score(robotic, rate).synthetic_probability - scorer.score(at_48k, 48000).synthetic_probability) < 0.01


def test_a_long_recording_is_scored_over_several_windows(scorer, english_reference_speech):
    samples, rate = english_reference_speech

    assert scorer.score(samples, rate).windows_scored == 3


@pytest.mark.parametrize("clip, reason", [(np.zeros(16000 * 3, dtype=np.float32), "silent"),
                                          (np.full(8000, 0.1, dtype=np.float32), "at least")])
def test_silent_or_too_short_audio_is_refused_with_a_reason(scorer, clip, reason):
    with pytest.raises(InvalidAudioError, match=reason):
        scorer.score(clip, 16000)


def test_analyze_reports_the_score_with_its_blind_spot(scorer, espeak_tts):
    robotic, rate = espeak_tts.synthesize(SENTENCE, "en", voice_gender="female")

    report = analyze_audio(encode_wav(robotic, rate), b"k" * 32, scorer)["synthetic_speech"]

    assert report["probability"] > 0.99 and report["model"] == AASIST_MODEL_NAME
    assert "WORLD resynthesis" in report["blind_spot"]


async def test_a_detection_result_carries_the_score_or_none_for_audio_too_short_to_score(scorer, espeak_tts):
    robotic, rate = espeak_tts.synthesize(SENTENCE, "en", voice_gender="female")
    store = InMemoryStore({"checks/acme/long.wav": encode_wav(robotic, rate),
                           "checks/acme/short.wav": encode_wav(robotic[: rate // 2], rate)})
    context = StageContext(repos=SimpleNamespace(), store=store, watermark_key=b"k" * 32,
                           models=SimpleNamespace(synthetic_speech=scorer))

    async def detection_of(key):
        request = WatermarkDetectionRequested(tenant_id="acme", voice_id="v-1", object_key=key)
        [answer] = await detect_output(request, context)
        return answer

    long, short = await detection_of("checks/acme/long.wav"), await detection_of("checks/acme/short.wav")

    assert not long.detected and long.synthetic_speech.probability > 0.99
    assert long.synthetic_speech.model == AASIST_MODEL_NAME and long.schema_version == 5
    assert short.synthetic_speech is None


def test_a_v2_detection_result_without_the_score_still_parses():
    current = WatermarkDetected(tenant_id="acme", voice_id="v-1", detection_id="00000000-0000-0000-0000-000000000001",
                                detected=False, confidence=0.1)
    v2 = current.model_dump(mode="json", exclude={"synthetic_speech"}) | {"schema_version": 2}

    parsed = parse_event(json.dumps(v2))

    assert parsed.schema_version == 2 and parsed.synthetic_speech is None


async def test_a_dubs_watermark_is_traced_to_its_dub(scorer, espeak_tts):
    from processors.constants import OUTPUT_SAMPLE_RATE_HZ
    from processors.trust.watermark import embed_watermark

    class Syntheses:
        async def find_by_watermark(self, *, payload):
            return None

    class Dubs:
        async def find_by_watermark(self, *, payload):
            return a_dub(uuid.UUID(dub_id)) if payload == mark.hex() else None

    dub_id, mark, key = "00000000-0000-0000-0000-0000000000d1", bytes.fromhex("d1d2d3d4d5d6d7d8"), b"k" * 32
    speech, rate = espeak_tts.synthesize(SENTENCE, "en", voice_gender="female")
    marked = embed_watermark(resample(speech, rate, OUTPUT_SAMPLE_RATE_HZ), OUTPUT_SAMPLE_RATE_HZ, key, mark)
    context = StageContext(repos=SimpleNamespace(syntheses=Syntheses(), dubs=Dubs()), watermark_key=key,
                           store=InMemoryStore({"checks/acme/dubbed.wav": encode_wav(marked, OUTPUT_SAMPLE_RATE_HZ)}),
                           models=SimpleNamespace(synthetic_speech=scorer))

    [answer] = await detect_output(WatermarkDetectionRequested(tenant_id="acme", voice_id="v-1",
                                                               object_key="checks/acme/dubbed.wav"), context)

    assert answer.detected and (answer.payload, str(answer.dub_id), answer.synthesis_id) == (mark.hex(), dub_id, None)
