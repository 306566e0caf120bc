"""``AsyncClient``: what an upstream app does with voxflow, over Kafka, the object store and the delivery endpoint.

Every request method builds its event, signs it with the tenant's key, sends it to its topic (acks=all)
and returns it, so its ids can be waited on (``wait_for``) or kept. Results are read from the moment the
client opens: an ending that arrived before that is not seen.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.trust.consent import private_key_from_raw
from processors.trust.signing import EventSigner
from schemas.envelope import Event
from schemas.events import (AdaptationRequested, AnalysisRequested, ConsentGranted, ConsentRevoked, DubRequested,
                            ErasureRequested, SampleUploaded, SynthesisCompleted, SynthesisControls, SynthesisRequested,
                            SynthesisScored, VoiceReady, VoiceWeight)
from voxflow import envelopes
from voxflow.broker_login import login_refusal
from voxflow.config import ClientConfig
from voxflow.delivery import download_audio, download_dub, download_report
from voxflow.errors import BrokerLoginRefused, BrokerUnreachable, RequestFailed
from voxflow.objects import Uploads
from voxflow.results import ProgressCallback, ResultFeed, consumer_for, expectation_for

E = TypeVar("E", bound=Event)
CONSENT_VALIDITY = timedelta(days=365)
FAILURES = frozenset({"sample.rejected", "consent.rejected", "adaptation.failed", "synthesis.failed",
                      "erasure.failed", "dub.failed", "analysis.failed"})


@dataclass(frozen=True)
class ClonedSpeech:
    """What ``clone_and_speak`` did: the consent it granted (revoke it by its id), the voice, the output and its scores."""

    consent: ConsentGranted
    voice: VoiceReady
    synthesis: SynthesisCompleted
    scores: SynthesisScored


class AsyncClient:
    """``async with AsyncClient(config) as client: ...``; ``BrokerUnreachable`` when Kafka does not answer."""

    def __init__(self, config: ClientConfig):
        self.config = config
        self._signer = EventSigner(private_key_from_raw(config.tenant_key))
        self._uploads = Uploads(config)
        self._producer: AIOKafkaProducer | None = None
        self._results: ResultFeed | None = None

    @property
    def key_id(self) -> str:
        """The id of the tenant key this client signs with (what the operator registered)."""
        return self._signer.key_id

    async def __aenter__(self) -> "AsyncClient":
        producer = await self._started_producer()
        config = self.config
        results = ResultFeed(consumer_for(config.kafka_bootstrap, broker_timeout_s=config.broker_timeout_s,
                                          security=config.broker_security),
                             bootstrap=config.kafka_bootstrap, tenant_id=config.tenant_id,
                             worker_public_key=config.worker_public_key, broker_timeout_s=config.broker_timeout_s)
        try:
            await results.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer, self._results = producer, results
        return self

    async def _started_producer(self) -> AIOKafkaProducer:
        config = self.config
        producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap, acks="all", linger_ms=0,
                                    request_timeout_ms=int(config.broker_timeout_s * 1000),
                                    **config.broker_security.client_options())
        try:
            await asyncio.wait_for(producer.start(), config.broker_timeout_s)
        except (KafkaError, TimeoutError, OSError) as error:
            await producer.stop()
            await self._raise_if_login_refused()
            raise BrokerUnreachable(f"cannot reach Kafka at {config.kafka_bootstrap}: "
                                    f"{type(error).__name__}: {error}") from error
        return producer

    async def _raise_if_login_refused(self) -> None:
        """aiokafka reports a refused login as a failed bootstrap: one more login attempt tells them apart."""
        security = self.config.broker_security
        refusal = await login_refusal(self.config.kafka_bootstrap, security)
        if refusal is not None:
            raise BrokerLoginRefused(f"Kafka at {self.config.kafka_bootstrap} refused the login of "
                                     f"{security.username!r}: {type(refusal).__name__}: {refusal}") from refusal

    async def __aexit__(self, *exc_info) -> None:
        if self._results is not None:
            await self._results.stop()
        if self._producer is not None:
            await self._producer.stop()
        self._producer = self._results = None

    # --- requests ----------------------------------------------------------------------------

    async def upload_sample(self, voice_id: str, data: bytes | None = None, *, path: Path | str | None = None,
                            filename: str | None = None, correlation_id: uuid.UUID | None = None) -> SampleUploaded:
        """Put a voice sample (``data``, or the file at ``path``) in the store, then send sample.uploaded."""
        if (data is None) == (path is None):
            raise ValueError("give the sample as data or as path, not both or neither")
        if path is not None:
            data = await asyncio.to_thread(Path(path).read_bytes)
            filename = filename or Path(path).name
        event = envelopes.sample_uploaded(tenant_id=self.config.tenant_id, voice_id=voice_id, filename=filename,
                                          size_bytes=len(data), correlation_id=correlation_id)
        await self._uploads.put(event.object_key, data)
        return await self._send(event)

    async def grant_consent(self, owner_key: Ed25519PrivateKey, voice_id: str, owner_id: str, purposes: Sequence[str],
                            languages: Sequence[str], statement_text: str, statement_audio: bytes | None = None, *,
                            valid_for: timedelta = CONSENT_VALIDITY, max_uses: int | None = None,
                            correlation_id: uuid.UUID | None = None) -> ConsentGranted:
        """Send consent.granted signed by the owner; ``statement_audio`` (the owner speaking the statement, a
        WAV) goes to the store first and its sha256 is signed with the document."""
        audio_key = None
        if statement_audio is not None:
            audio_key = envelopes.statement_audio_key(self.config.tenant_id, voice_id)
        event = envelopes.signed_consent(
            owner_key, tenant_id=self.config.tenant_id, voice_id=voice_id, owner_id=owner_id, purposes=list(purposes),
            languages=list(languages), statement_text=statement_text, valid_for=valid_for, max_uses=max_uses,
            statement_audio_key=audio_key, statement_audio=statement_audio, correlation_id=correlation_id)
        if audio_key is not None:
            await self._uploads.put(audio_key, statement_audio)
        return await self._send(event)

    async def revoke_consent(self, owner_key: Ed25519PrivateKey, voice_id: str, consent_id: uuid.UUID, *,
                             correlation_id: uuid.UUID | None = None) -> ConsentRevoked:
        return await self._send(envelopes.signed_revocation(owner_key, tenant_id=self.config.tenant_id,
                                                            voice_id=voice_id, consent_id=consent_id,
                                                            correlation_id=correlation_id))

    async def request_adaptation(self, voice_id: str, sample_ids: Iterable[uuid.UUID] = (), *,
                                 correlation_id: uuid.UUID | None = None) -> AdaptationRequested:
        """Build the voice from these samples (all its accepted ones if none); it waits for the voice's consent."""
        return await self._send(AdaptationRequested(tenant_id=self.config.tenant_id, voice_id=voice_id,
                                                    sample_ids=list(sample_ids),
                                                    correlation_id=correlation_id or uuid.uuid4()))

    async def synthesize(self, voice_id: str, text: str, language: str = "en", purpose: str = "narration", *,
                         engine: str | None = None, voice_mix: dict[str, float] | None = None,
                         correlation_id: uuid.UUID | None = None, **controls) -> SynthesisRequested:
        """Speak ``text`` in the voice; ``controls`` are SynthesisControls' (speed, pitch_semitones, energy_db,
        emotion, gender_shift, age_shift); ``voice_mix`` maps 2-4 voice ids to weights summing to 1."""
        mix = [VoiceWeight(voice_id=voice, weight=weight) for voice, weight in (voice_mix or {}).items()]
        return await self._send(SynthesisRequested(
            tenant_id=self.config.tenant_id, voice_id=voice_id, text=text, language=language, purpose=purpose,
            controls=SynthesisControls(**controls), voice_mix=mix, engine=engine,
            correlation_id=correlation_id or uuid.uuid4()))

    async def dub(self, voice_id: str, media: bytes | None = None, *, path: Path | str | None = None,
                  script: str, script_format: str = "srt", background: str = "duck", language: str = "en",
                  engine: str | None = None, filename: str | None = None,
                  correlation_id: uuid.UUID | None = None) -> DubRequested:
        """Put a video or audio file (``media``, or the file at ``path``) in the store, then send dub.requested
        with the timed ``script`` inline (``script_format`` srt, vtt or json). ``background`` "duck" keeps the
        original sound quieter under the lines, "replace" drops it. Wait for dub.completed with ``wait_for``
        (``dub.progress`` comes to ``on_progress``) and fetch the result with ``download_dub``."""
        if (media is None) == (path is None):
            raise ValueError("give the media as data or as path, not both or neither")
        if path is not None:
            media = await asyncio.to_thread(Path(path).read_bytes)
            filename = filename or Path(path).name
        dub_id = uuid.uuid4()
        event = DubRequested(
            tenant_id=self.config.tenant_id, voice_id=voice_id, dub_id=dub_id,
            media_key=envelopes.upload_key(self.config.tenant_id, voice_id, dub_id, filename or "media.mp4"),
            script_format=script_format, script_text=script, background=background, language=language,
            engine=engine, correlation_id=correlation_id or uuid.uuid4())
        await self._uploads.put(event.media_key, media)
        return await self._send(event)

    async def analyze(self, recording: bytes, *, compare_with: bytes | None = None, compare_voice_id: str | None = None,
                      voice_id: str | None = None, correlation_id: uuid.UUID | None = None) -> AnalysisRequested:
        """Put a recording (and ``compare_with``, another recording) in the store, then send analysis.requested:
        its quality, pitch, speaking rate, advice, watermark and authenticity, and with ``compare_with`` or
        ``compare_voice_id`` (one of the tenant's voices) a same-speaker verdict. ``voice_id`` (the message key)
        defaults to the compared voice. Wait for analysis.completed with ``wait_for``; ``download_report`` fetches
        its HTML report."""
        analysis_id = uuid.uuid4()
        tenant_id = self.config.tenant_id
        compare_key = envelopes.analysis_object_key(tenant_id, analysis_id, "compared") if compare_with else None
        event = AnalysisRequested(
            tenant_id=tenant_id, voice_id=voice_id or compare_voice_id or "analysis", analysis_id=analysis_id,
            object_key=envelopes.analysis_object_key(tenant_id, analysis_id, "recording"),
            compare_object_key=compare_key, compare_voice_id=compare_voice_id,
            correlation_id=correlation_id or uuid.uuid4())
        await self._uploads.put(event.object_key, recording)
        if compare_key is not None:
            await self._uploads.put(compare_key, compare_with)
        return await self._send(event)

    async def erase_voice(self, owner_key: Ed25519PrivateKey, voice_id: str, *,
                          correlation_id: uuid.UUID | None = None) -> ErasureRequested:
        """Ask for the voice to be erased, signed with the key of one of its consents."""
        return await self._send(envelopes.signed_erasure(owner_key, tenant_id=self.config.tenant_id,
                                                         voice_id=voice_id, correlation_id=correlation_id))

    async def _send(self, event: E) -> E:
        if self._producer is None:
            raise RuntimeError("the client is not open: use `async with AsyncClient(config) as client`")
        value = event.to_bytes()
        topic = envelopes.TOPIC_OF[type(event)]
        try:
            await asyncio.wait_for(self._producer.send_and_wait(topic, value=value, key=event.key(),
                                                                headers=self._signer.headers_for(value)),
                                   self.config.broker_timeout_s)
        except (KafkaError, TimeoutError) as error:
            raise BrokerUnreachable(f"{event.type} {event.event_id} not sent to {topic}: "
                                    f"{type(error).__name__}: {error}") from error
        return event

    # --- results -----------------------------------------------------------------------------

    async def wait_for(self, awaited: Event | uuid.UUID, *, types: Iterable[str] | None = None,
                       where: Callable[[Event], bool] | None = None, timeout_s: float | None = None,
                       on_progress: ProgressCallback | None = None) -> Event:
        """The event that ends ``awaited``, typed (e.g. ``SynthesisCompleted`` or ``SynthesisFailed``).

        ``awaited`` is a request this client sent (its own outcomes: sample.accepted/rejected,
        consent.verified/rejected, voice.ready/adaptation.failed, synthesis.completed/failed, …) or a
        correlation id (then ``types`` says which events end the wait). ``types`` narrows the endings,
        ``where`` filters them (``lambda e: e.tier == "refined"`` for the refined voice). ``on_progress``
        is called once with each progress event of the request, in order (``*.progress``,
        ``synthesis.chunk_ready``). Raises ``ResultTimeout`` naming what it waited for after ``timeout_s``
        (the config's default), ``RequestDeadLettered`` when the pipeline refused the request unread.
        """
        if self._results is None:
            raise RuntimeError("the client is not open: use `async with AsyncClient(config) as client`")
        return await self._results.wait(expectation_for(awaited, types), where=where, on_progress=on_progress,
                                        timeout_s=self.config.default_timeout_s if timeout_s is None else timeout_s)

    async def download(self, synthesis_id: uuid.UUID, *, timeout_s: float | None = None) -> bytes:
        """The completed synthesis's watermarked WAV (with its C2PA manifest) from the delivery endpoint."""
        return await download_audio(self.config.delivery_url, self._signer, synthesis_id,
                                    timeout_s=self.config.default_timeout_s if timeout_s is None else timeout_s)

    async def download_dub(self, dub_id: uuid.UUID, *, timeout_s: float | None = None) -> bytes:
        """The completed dub's file (MP4 for a video, WAV for audio), watermarked and with its C2PA manifest."""
        return await download_dub(self.config.delivery_url, self._signer, dub_id,
                                  timeout_s=self.config.default_timeout_s if timeout_s is None else timeout_s)

    async def download_report(self, analysis_id: uuid.UUID, *, timeout_s: float | None = None) -> bytes:
        """A completed analysis's report: one self-contained HTML page."""
        return await download_report(self.config.delivery_url, self._signer, analysis_id,
                                     timeout_s=self.config.default_timeout_s if timeout_s is None else timeout_s)

    async def clone_and_speak(self, voice_id: str, samples: Sequence[bytes], text: str, *,
                              owner_key: Ed25519PrivateKey, owner_id: str, statement_text: str,
                              statement_audio: bytes | None = None, language: str = "en",
                              purpose: str = "narration", timeout_s: float | None = None,
                              on_progress: ProgressCallback | None = None) -> ClonedSpeech:
        """Upload the samples, grant consent (for ``purpose`` in ``language``), adapt, speak ``text``: one journey.
        ``RequestFailed`` names the first step that was rejected or failed; each wait gets ``timeout_s``."""
        journey = uuid.uuid4()
        uploads = [await self.upload_sample(voice_id, sample, filename=f"sample-{number}.wav", correlation_id=journey)
                   for number, sample in enumerate(samples, start=1)]
        consent = await self.grant_consent(owner_key, voice_id, owner_id, [purpose], [language], statement_text,
                                           statement_audio, correlation_id=journey)
        adaptation = await self.request_adaptation(voice_id, [upload.sample_id for upload in uploads],
                                                   correlation_id=journey)
        waits = {"timeout_s": timeout_s, "on_progress": on_progress}
        succeeded(await self.wait_for(consent, **waits))
        voice = succeeded(await self.wait_for(adaptation, **waits))
        synthesis = await self.synthesize(voice_id, text, language, purpose, correlation_id=journey)
        completed = succeeded(await self.wait_for(synthesis, **waits))
        # scored after the completion, off the request's path
        scores = await self.wait_for(synthesis, types=["synthesis.scored"], timeout_s=timeout_s)
        return ClonedSpeech(consent, voice, completed, scores)


def succeeded(ending: E) -> E:
    """``ending`` unless it is a rejection or failure, which becomes ``RequestFailed`` with its reasons."""
    if ending.type not in FAILURES:
        return ending
    reasons = getattr(ending, "reasons", None) or [getattr(ending, "reason", "no reason given")]
    raise RequestFailed(f"{ending.type} for voice {ending.voice_id}: {'; '.join(reasons)}", event=ending)
