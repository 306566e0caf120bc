"""Kokoro voices through the pipeline: an instant voice in seconds, a refined one after a fit with progress,
both speaking watermarked, intelligible speech — on the real broker, Postgres and S3 endpoint."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.events import AdaptationRequested, SynthesisRequested
from streams import topics
from streams.client import upload_sample
from voxflow.envelopes import signed_consent
from streams.results import ResultWatcher
from streams.session import client_session
from streams.worker import VoxflowWorker
from tests.integration.test_pipeline import TENANT, wav_of_real_speech

pytestmark = pytest.mark.integration

REFINEMENT_STEPS = 2  # the fit's figures are the benchmark's business; here it only has to run end to end
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def kokoro_settings(stack_settings):
    return stack_settings.model_copy(update={
        "engine": "kokoro", "refinement_steps": REFINEMENT_STEPS, "consumer_group": f"tiers-{uuid.uuid4().hex[:8]}",
    })


@pytest.fixture(scope="module")
async def session(kokoro_settings):
    async with VoxflowWorker(kokoro_settings), client_session(kokoro_settings) as opened:
        yield opened


@pytest.fixture
async def results(kokoro_settings, session):
    async with ResultWatcher(kokoro_settings.kafka_bootstrap, topics.RESULTS) as watcher:
        yield watcher


async def test_a_voice_is_ready_instantly_then_refined_with_progress_and_speaks_its_words(session, results):
    correlation = uuid.uuid4()
    uploads = [await upload_sample(session.store, session.publisher, data=wav_of_real_speech(10, offset=i),
                                   filename=f"s{i}.wav", tenant_id=TENANT, voice_id="kora", correlation_id=correlation)
               for i in range(2)]
    await session.publisher.publish(signed_consent(
        Ed25519PrivateKey.generate(), tenant_id=TENANT, voice_id="kora", owner_id="kora", purposes=["narration"],
        languages=["en"], statement_text="I consent.", correlation_id=correlation))
    await session.publisher.publish(AdaptationRequested(tenant_id=TENANT, voice_id="kora", correlation_id=correlation,
                                                        sample_ids=[upload.sample_id for upload in uploads]))

    outcomes = await results.wait_for(correlation, {"voice.ready", "adaptation.failed"}, 2, timeout_s=TIMEOUT_S)
    progress = await results.wait_for(correlation, {"adaptation.progress"}, 0, timeout_s=0)

    assert [(e.type, e.tier) for e in outcomes][0] == ("voice.ready", "instant")
    assert outcomes[1].tier == "refined", outcomes
    instant, refined = ([p for p in progress if p.tier == tier] for tier in ("instant", "refined"))
    assert [(p.step, p.steps) for p in instant] == [(1, 4), (2, 4), (3, 4)]
    assert [p.step for p in refined] == list(range(1, REFINEMENT_STEPS + 1)) and refined[-1].percent == 100.0
    if outcomes[1].type == "voice.ready":
        assert outcomes[1].profile_version == outcomes[0].profile_version + 1
    else:
        assert "instant voice stays" in outcomes[1].reason

    request = SynthesisRequested(tenant_id=TENANT, voice_id="kora", correlation_id=correlation, purpose="narration",
                                 text="Good morning, everyone. Today we will read the news of the week together.")
    await session.publisher.publish(request)
    (answer,) = await results.wait_until(
        lambda e: getattr(e, "synthesis_id", None) == request.synthesis_id
        and e.type in {"synthesis.completed", "synthesis.failed"}, timeout_s=TIMEOUT_S)

    assert answer.type == "synthesis.completed", answer
    (scored,) = await results.wait_until(
        lambda e: e.type == "synthesis.scored" and e.synthesis_id == request.synthesis_id, timeout_s=TIMEOUT_S)
    assert scored.word_error_rate is not None and scored.word_error_rate <= 0.15
