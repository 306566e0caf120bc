"""User journeys the integration and fault tests share: a consented voice, a synthesis to its end."""

from __future__ import annotations

import asyncio
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.speech_assets import reference_utterance
from processors.audio.codec_quality import encode_wav
from schemas.events import AdaptationRequested, SynthesisRequested
from streams.client import upload_sample

from voxflow.envelopes import signed_consent

TENANT = "acme"
RESULT_TIMEOUT_S = 240
SHORT_TEXT = "Good morning, everyone. Today we will read the news of the week together."


async def eventually(read, done, *, timeout_s: float = 30.0):
    """Poll `read()` until `done(value)`: stages behind the results topic (audit, anomalies) lag a little."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await read()
        if done(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.5)


def wav_of_real_speech(seconds: float, offset: int) -> bytes:
    return encode_wav(*reference_utterance(seconds, offset=offset))


async def consented_voice(session, results, *, voice_id: str, max_uses: int | None = None,
                          owner_key: Ed25519PrivateKey | None = None, tenant_id: str = TENANT,
                          expected: str = "voice.ready"):
    """A voice with two real samples and a signed consent, adapted; ``expected`` is the adaptation's outcome."""
    correlation = uuid.uuid4()
    uploads = [
        await upload_sample(session.store, session.publisher, data=wav_of_real_speech(10, offset=i),
                            filename=f"s{i}.wav", tenant_id=tenant_id, voice_id=voice_id, correlation_id=correlation)
        for i in range(2)
    ]
    owner_key = owner_key or Ed25519PrivateKey.generate()
    consent = signed_consent(owner_key, tenant_id=tenant_id, voice_id=voice_id, owner_id="owner-1",
                             purposes=["narration"], languages=["en"], statement_text="I consent.",
                             max_uses=max_uses, correlation_id=correlation)
    # adaptation is sent before consent on purpose: it must wait for the consent, then run
    await session.publisher.publish(AdaptationRequested(tenant_id=tenant_id, voice_id=voice_id, correlation_id=correlation,
                                                        sample_ids=[u.sample_id for u in uploads]))
    await session.publisher.publish(consent)
    ready = await results.wait_for(correlation, {"voice.ready", "adaptation.failed"}, 1, timeout_s=RESULT_TIMEOUT_S)
    assert [e.type for e in ready] == [expected], ready
    return correlation, consent, ready[0]


async def synthesise(session, results, *, voice_id: str, correlation, text: str = SHORT_TEXT,
                     purpose: str = "narration", language: str = "en"):
    request = SynthesisRequested(tenant_id=TENANT, voice_id=voice_id, correlation_id=correlation, text=text,
                                 language=language, purpose=purpose)
    await session.publisher.publish(request)
    answer = await results.wait_until(
        lambda e: getattr(e, "synthesis_id", None) == request.synthesis_id
        and e.type in {"synthesis.completed", "synthesis.failed"},
        timeout_s=RESULT_TIMEOUT_S,
    )
    assert answer, f"no result for synthesis {request.synthesis_id}"
    return answer[0]
