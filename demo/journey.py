"""`voxflow demo`: the whole journey on the embedded stack, with a real human recording."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.embedded import EmbeddedStack, check_broker_security
from infra.errors import InfraError
from infra.settings import Settings
from infra.speech_assets import reference_utterance
from processors.audio.codec_quality import decode_audio, encode_wav, to_mono
from processors.voice.speaker import SpeakerEncoder, cosine_similarity
from processors.trust.watermark import detect_watermark
from schemas.events import AdaptationRequested, SynthesisControls, SynthesisRequested
from streams.auditing import verify_audit_log
from streams.client import upload_sample
from voxflow.envelopes import signed_consent
from streams.results import ResultWatcher
from streams.session import client_session, database
from streams.tenants import register_tenant
from streams.topics import RESULTS
from streams.worker import VoxflowWorker

log = logging.getLogger("voxflow.demo")

TENANT = "demo-tenant"
SAMPLE_SECONDS = (12.0, 12.0)
HELD_OUT_SECONDS = 10.0
# A CPU fit step takes 10-60 s here: the demo shows the refined tier with a short fit unless
# VOXFLOW_REFINEMENT_STEPS asks for more (the worker's default is REFINEMENT_STEPS).
DEMO_REFINEMENT_STEPS = 4
REQUESTS = (
    ("Hello! This voice was cloned with the owner's signed consent.", SynthesisControls()),
    ("Every output carries a watermark that traces it back to this request.",
     SynthesisControls(speed=1.1, emotion="happy")),
    ("The audit log records each decision in a hash chain.", SynthesisControls(pitch_semitones=-2, emotion="sad")),
)


SPOKEN_CONSENT_OFF = ("NOT REQUIRED in this demo: its packaged speakers never said the consent phrase "
                      "(a real deployment keeps VOXFLOW_REQUIRE_SPOKEN_CONSENT on)")


def run_demo(settings: Settings, *, out_dir: Path, keep_stack: bool = False) -> dict:
    if "refinement_steps" not in settings.model_fields_set:
        settings = settings.model_copy(update={"refinement_steps": DEMO_REFINEMENT_STEPS})
    settings = settings.model_copy(update={"require_spoken_consent": False})
    log.warning("spoken consent %s", SPOKEN_CONSENT_OFF)
    check_broker_security(settings)
    stack = EmbeddedStack.from_settings(settings)
    started = time.perf_counter()
    log.info("starting the embedded stack in %s", settings.data_dir)
    stack.up()
    try:
        summary = asyncio.run(_journey(settings, out_dir))
    finally:
        if not keep_stack:
            stack.down()
    summary["wall_time_s"] = round(time.perf_counter() - started, 1)
    summary["spoken_consent"] = SPOKEN_CONSENT_OFF
    return summary


async def _journey(settings: Settings, out_dir: Path) -> dict:
    voice_id = f"demo-voice-{uuid.uuid4().hex[:8]}"
    correlation_id = uuid.uuid4()
    await register_tenant(settings, TENANT)
    async with VoxflowWorker(settings), client_session(settings) as session, \
            ResultWatcher(settings.kafka_bootstrap, RESULTS, security=settings.broker_security()) as results:
        sample_events = await _upload_real_speech(session, voice_id, correlation_id)
        owner_key = Ed25519PrivateKey.generate()
        await session.publisher.publish(signed_consent(
            owner_key, tenant_id=TENANT, voice_id=voice_id, owner_id="demo-owner", purposes=["demo"],
            languages=["en"], statement_text="I agree that voxflow may clone my voice for this demo.",
            max_uses=10, correlation_id=correlation_id,
        ))
        await session.publisher.publish(AdaptationRequested(
            tenant_id=TENANT, voice_id=voice_id, correlation_id=correlation_id,
            sample_ids=[e.sample_id for e in sample_events],
        ))
        log.info("uploaded %d samples, consent and adaptation request for %s; waiting for the voice",
                 len(sample_events), voice_id)
        ready = await _wait_for_voice(settings, results, correlation_id)
        if ready is None:
            return _failed_summary("the voice did not become ready", await _adaptation_outcomes(results, correlation_id))
        log.info("voice ready (%s, profile v%d); sending %d synthesis requests", ready.tier, ready.profile_version,
                 len(REQUESTS))
        for text, controls in REQUESTS:
            await session.publisher.publish(SynthesisRequested(
                tenant_id=TENANT, voice_id=voice_id, correlation_id=correlation_id, text=text, language="en",
                purpose="demo", controls=controls,
            ))
        outcomes = await results.wait_for(correlation_id, {"synthesis.completed", "synthesis.failed"},
                                          len(REQUESTS), timeout_s=600)
        completed = [e for e in outcomes if e.type == "synthesis.completed"]
        # each output is scored after its completion
        scored = await results.wait_for(correlation_id, {"synthesis.scored"}, len(completed), timeout_s=600)
        first_chunks = await results.wait_for(correlation_id, {"synthesis.chunk_ready"}, 0, timeout_s=0)
        outputs = await _fetch_outputs(session.store, completed, out_dir)
        audit = await _settled_audit(settings)
        tiers = await _adaptation_outcomes(results, correlation_id)
    return _summary(settings, voice_id, ready, tiers, outcomes, completed, scored, outputs, audit,
                    [e for e in first_chunks if e.chunk_index == 0])


async def _wait_for_voice(settings: Settings, results: ResultWatcher, correlation_id: uuid.UUID):
    """The best voice adaptation gives: the refined one when refinement is on and kept, else the instant one."""
    outcomes = {"voice.ready", "adaptation.failed"}
    first = await results.wait_for(correlation_id, outcomes, 1, timeout_s=600)
    if not first or first[0].type != "voice.ready":
        return None
    if settings.engine != "kokoro" or settings.refinement_steps == 0:
        return first[0]
    log.info("instant voice ready in %.1f s; refining it (%d steps, progress below)", first[0].adaptation_s,
             settings.refinement_steps)
    both = await results.wait_for(correlation_id, outcomes, 2, timeout_s=1800, on_event=_log_progress)
    refined = [e for e in both if e.type == "voice.ready" and e.tier == "refined"]
    if not refined:
        log.info("refinement not kept: %s", "; ".join(e.reason for e in both if e.type == "adaptation.failed"))
    return refined[0] if refined else first[0]


def _log_progress(event) -> None:
    if event.type == "adaptation.progress" and event.tier == "refined":
        log.info("refining: %.0f %% (step %d/%d, objective similarity %.3f)", event.percent, event.step, event.steps,
                 event.similarity_objective or 0.0)


async def _adaptation_outcomes(results: ResultWatcher, correlation_id: uuid.UUID):
    return await results.wait_for(correlation_id, {"voice.ready", "adaptation.failed"}, 0, timeout_s=0)


async def _upload_real_speech(session, voice_id: str, correlation_id: uuid.UUID):
    events = []
    for index, seconds in enumerate(SAMPLE_SECONDS):
        samples, rate = reference_utterance(seconds, offset=index)
        events.append(await upload_sample(
            session.store, session.publisher, data=encode_wav(samples, rate), filename=f"sample-{index}.wav",
            tenant_id=TENANT, voice_id=voice_id, correlation_id=correlation_id,
        ))
    return events


async def _fetch_outputs(store, completed, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, event in enumerate(completed, start=1):
        path = out_dir / f"synthesis-{index}-{event.synthesis_id}.wav"
        path.write_bytes(await store.get(event.object_key))
        paths.append(path)
    return paths


async def _settled_audit(settings: Settings, *, timeout_s: float = 30.0):
    """The audit stage runs behind the others: wait until its log stops growing, then verify it."""
    deadline = time.monotonic() + timeout_s
    previous = -1
    async with database(settings) as pool:
        while (count := await pool.fetchval("SELECT count(*) FROM audit_log")) != previous \
                and time.monotonic() < deadline:
            previous = count
            await asyncio.sleep(2.0)
    return await verify_audit_log(settings)


def _summary(settings, voice_id, ready, tiers, outcomes, completed, scored, outputs, audit, first_chunks) -> dict:
    key = settings.watermark_key()
    held_out = reference_utterance(HELD_OUT_SECONDS, offset=len(SAMPLE_SECONDS))
    judges = _speaker_judges()
    references = {name: judge.embed(*held_out) for name, judge in judges.items()}
    detections, similarities = [], {name: [] for name in judges}
    for path in outputs:
        decoded = decode_audio(path.read_bytes())
        mono = to_mono(decoded.samples)
        detections.append(detect_watermark(mono, decoded.sample_rate_hz, key).detected)
        for name, judge in judges.items():
            similarities[name].append(cosine_similarity(judge.embed(mono, decoded.sample_rate_hz), references[name]))
    summary = {
        "voice_id": voice_id,
        "profile_version": ready.profile_version,
        "engine": settings.engine,
        "voice_tier": ready.tier,
        "voice_tiers": {f"{e.tier}": (e.type == "voice.ready") for e in tiers},
        "adaptation_s": {e.tier: e.adaptation_s for e in tiers if e.type == "voice.ready"},
        "syntheses_requested": len(REQUESTS),
        "syntheses_completed": len(completed),
        "syntheses_failed": [e.reason for e in outcomes if e.type == "synthesis.failed"],
        "watermarks_detected": sum(detections),
        "audit_chain_valid": audit.valid,
        "audit_records": audit.checked,
        "median_latency_s": _median([e.latency_s for e in completed]),
        "median_first_chunk_latency_s": _median([e.latency_s for e in first_chunks]),
        "median_rtf": _median([e.rtf for e in completed]),
        "speaker_similarity": _median(similarities["ge2e"]),
        "speaker_similarity_independent": _median(similarities.get("campplus", [])),
        "speaker_similarity_to_profile": _median([e.speaker_similarity for e in scored]),
        "median_word_error_rate": _median([e.word_error_rate for e in scored if e.word_error_rate is not None]),
        "median_dnsmos": _median([e.dnsmos for e in scored if e.dnsmos is not None]),
        "outputs": [str(p) for p in outputs],
    }
    summary["ok"] = (summary["syntheses_completed"] == len(REQUESTS) == summary["watermarks_detected"]
                     and audit.valid)
    return summary


def _speaker_judges() -> dict:
    """GE2E (what the refined voice was fitted against) and, where it can be fetched, CAM++ (an independent judge)."""
    judges = {"ge2e": SpeakerEncoder()}
    try:
        from infra.campplus_assets import campplus_encoder

        judges["campplus"] = campplus_encoder()
    except (InfraError, ImportError) as error:
        log.warning("no independent speaker judge (CAM++): %s", error)
    return judges


def _median(values) -> float | None:
    return round(float(statistics.median(values)), 4) if values else None


def _failed_summary(reason: str, events) -> dict:
    return {"ok": False, "error": reason, "events": [e.model_dump(mode="json") for e in events],
            "syntheses_completed": 0, "watermarks_detected": 0, "audit_chain_valid": None}
