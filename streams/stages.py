"""Which handler serves which event type on which stage topic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping

from schemas import events
from schemas.envelope import Event
from streams import topics
from streams.context import StageContext
from streams.handlers.adaptation import adapt_voice, fail_adaptation
from streams.handlers.analysis import analyze_object, fail_analysis
from streams.handlers.consent import grant_consent, grant_consents, revoke_consent
from streams.handlers.dubbing import dub_media, fail_dub
from streams.handlers.erasure import erase_voice
from streams.handlers.ingest import ingest_sample
from streams.handlers.refinement import fail_refinement, refine_voice
from streams.handlers.records import (
    append_audit_record,
    append_audit_records,
    record_anomalies,
    record_anomaly,
    record_checkpoint,
)
from streams.handlers.synthesis import accept_synthesis, fail_synthesis, synthesize_chunk
from streams.handlers.watermark import detect_output, release_output, score_output

Handler = Callable[[Event, StageContext], Awaitable[list[Event]]]
# Ends the request an event belongs to when the stage gives up on the event: (event, context, reason) → outcomes.
FailureHandler = Callable[[Event, StageContext, str], Awaitable[list[Event]]]
# Handles consecutive events of one type in one go: (events, context) → each event's outcomes, in order.
BatchHandler = Callable[[list[Event], StageContext], Awaitable[list[list[Event]]]]
# Control events come by the thousand and cost a database write each: taken from the stream this many at a
# time (or what came within ``BATCH_WITHIN_S``), their writes commit together.
CONTROL_BATCH_SIZE = 500
# a consent's spoken statement takes a second of model time to check, inside its batch's transaction
CONSENT_BATCH_SIZE = 32
BATCH_WITHIN_S = 0.05


@dataclass(frozen=True)
class Stage:
    """``batch_size`` above 1: up to that many messages are processed as one step (``StageProcessor.process_batch``),
    consecutive events of a type in ``batch_handlers`` by that handler, the others each by its own."""

    name: str
    topic: str
    handlers: Mapping[type[Event], Handler]
    failure_handlers: Mapping[type[Event], FailureHandler] = field(default_factory=dict)
    batch_size: int = 1
    batch_handlers: Mapping[type[Event], BatchHandler] = field(default_factory=dict)


STAGES: tuple[Stage, ...] = (
    Stage("ingest", topics.INGEST, {events.SampleUploaded: ingest_sample}),
    Stage("consent", topics.CONSENT, {events.ConsentGranted: grant_consent, events.ConsentRevoked: revoke_consent},
          batch_size=CONSENT_BATCH_SIZE, batch_handlers={events.ConsentGranted: grant_consents}),
    Stage("adaptation", topics.ADAPTATION, {events.AdaptationRequested: adapt_voice},
          {events.AdaptationRequested: fail_adaptation}),
    # minutes of fitting per voice: its own topic, so instant voices never queue behind a fit
    Stage("refinement", topics.REFINEMENT, {events.AdaptationRefinementRequested: refine_voice},
          {events.AdaptationRefinementRequested: fail_refinement}),
    Stage("synthesis", topics.SYNTHESIS, {
        events.SynthesisRequested: accept_synthesis,
        events.SynthesisChunkRequested: synthesize_chunk,
    }, {events.SynthesisRequested: fail_synthesis, events.SynthesisChunkRequested: fail_synthesis}),
    Stage("watermark", topics.WATERMARK, {
        events.SynthesisProduced: release_output,
        events.WatermarkDetectionRequested: detect_output,
    }, {events.SynthesisProduced: fail_synthesis}),
    # seconds of models per output, after its completion: its own topic, so no chunk is released behind a scoring
    Stage("scoring", topics.SCORING, {events.SynthesisScoringRequested: score_output}),
    Stage("erasure", topics.ERASURE, {events.ErasureRequested: erase_voice}),
    # seconds to minutes of speaking, mixing and muxing per request: its own topic, so syntheses never queue behind it
    Stage("dubbing", topics.DUBBING, {events.DubRequested: dub_media}, {events.DubRequested: fail_dub}),
    # seconds of models per recording (VAD, DNSMOS, AASIST, pitch): kept off the watermark stage's detection path
    Stage("analysis", topics.ANALYSIS, {events.AnalysisRequested: analyze_object},
          {events.AnalysisRequested: fail_analysis}),
    Stage("audit", topics.AUDIT, {events.AuditRecorded: append_audit_record,
                                  events.AuditCheckpointed: record_checkpoint},
          batch_size=CONTROL_BATCH_SIZE, batch_handlers={events.AuditRecorded: append_audit_records}),
    Stage("anomaly", topics.ANOMALIES, {events.AnomalyDetected: record_anomaly},
          batch_size=CONTROL_BATCH_SIZE, batch_handlers={events.AnomalyDetected: record_anomalies}),
)

# The decision each outcome event records in the audit log.
AUDITED_DECISIONS: dict[type[Event], str] = {
    events.SampleAccepted: "accepted",
    events.SampleRejected: "rejected",
    events.ConsentVerified: "accepted",
    events.ConsentRejected: "rejected",
    events.ConsentRevocationApplied: "revoked",
    events.VoiceReady: "completed",
    events.AdaptationFailed: "failed",
    events.SynthesisProduced: "accepted",
    events.SynthesisChunkReady: "completed",
    events.SynthesisCompleted: "completed",
    events.SynthesisFailed: "failed",
    events.WatermarkDetected: "completed",
    events.ErasureCompleted: "completed",
    events.ErasureFailed: "failed",
    events.DubCompleted: "completed",
    events.DubFailed: "failed",
    events.AnalysisCompleted: "completed",
    events.AnalysisFailed: "failed",
    events.DeadLettered: "rejected",
}


def stages_named(names: list[str] | None) -> tuple[Stage, ...]:
    """The stages called ``names`` (all of them for ``None``); ValueError naming any unknown one."""
    if not names:
        return STAGES
    unknown = sorted(set(names) - {stage.name for stage in STAGES})
    if unknown:
        raise ValueError(f"unknown stages {', '.join(unknown)}; known: {', '.join(stage.name for stage in STAGES)}")
    return tuple(stage for stage in STAGES if stage.name in names)


def audit_decision(event: Event) -> str | None:
    if isinstance(event, events.AnomalyDetected):
        return "blocked" if event.action == "blocked" else "alerted"
    return AUDITED_DECISIONS.get(type(event))
