"""Topic names and which topic each event type travels on (all keyed by voice id)."""

from __future__ import annotations

from schemas import events
from schemas.envelope import Event

INGEST = "voxflow.ingest"
CONSENT = "voxflow.consent"
ADAPTATION = "voxflow.adaptation"
REFINEMENT = "voxflow.refinement"
SYNTHESIS = "voxflow.synthesis"
WATERMARK = "voxflow.watermark"
SCORING = "voxflow.scoring"
ERASURE = "voxflow.erasure"
DUBBING = "voxflow.dubbing"
ANALYSIS = "voxflow.analysis"
RESULTS = "voxflow.results"
ANOMALIES = "voxflow.anomalies"
AUDIT = "voxflow.audit"
DEAD_LETTER = "voxflow.deadletter"

ALL_TOPICS = (INGEST, CONSENT, ADAPTATION, REFINEMENT, SYNTHESIS, WATERMARK, ERASURE, RESULTS, ANOMALIES, AUDIT,
              DEAD_LETTER, DUBBING, ANALYSIS, SCORING)

TOPIC_OF: dict[type[Event], str] = {
    events.SampleUploaded: INGEST,
    events.ConsentGranted: CONSENT,
    events.ConsentRevoked: CONSENT,
    events.AdaptationRequested: ADAPTATION,
    events.AdaptationRefinementRequested: REFINEMENT,
    events.SynthesisRequested: SYNTHESIS,
    events.SynthesisChunkRequested: SYNTHESIS,
    events.SynthesisProduced: WATERMARK,
    events.WatermarkDetectionRequested: WATERMARK,
    events.SynthesisScoringRequested: SCORING,
    events.ErasureRequested: ERASURE,
    events.DubRequested: DUBBING,
    events.AnalysisRequested: ANALYSIS,
    events.SampleAccepted: RESULTS,
    events.SampleRejected: RESULTS,
    events.ConsentVerified: RESULTS,
    events.ConsentRejected: RESULTS,
    events.ConsentRevocationApplied: RESULTS,
    events.VoiceReady: RESULTS,
    events.AdaptationFailed: RESULTS,
    events.AdaptationProgress: RESULTS,
    events.SynthesisChunkReady: RESULTS,
    events.SynthesisCompleted: RESULTS,
    events.SynthesisScored: RESULTS,
    events.SynthesisFailed: RESULTS,
    events.WatermarkDetected: RESULTS,
    events.ErasureCompleted: RESULTS,
    events.ErasureFailed: RESULTS,
    events.DubProgress: RESULTS,
    events.DubCompleted: RESULTS,
    events.DubFailed: RESULTS,
    events.AnalysisCompleted: RESULTS,
    events.AnalysisFailed: RESULTS,
    events.AnomalyDetected: ANOMALIES,
    events.AuditRecorded: AUDIT,
    events.AuditCheckpointed: AUDIT,
    events.DeadLettered: DEAD_LETTER,
}


def topic_for(event: Event) -> str:
    return TOPIC_OF[type(event)]
