"""One file's analysis: the ingest gate's figures (same VAD and DNSMOS), pitch and speaking rate, advice, its
voxflow watermark, how synthetic it sounds, its content credentials and, given another voice, whether it is the
same speaker; and the HTML report of all that."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from processors.audio.codec_quality import decode_audio, resample, to_mono
from processors.audio.vad import SpeechDetector
from processors.constants import ANALYSIS_SAMPLE_RATE_HZ, OUTPUT_SAMPLE_RATE_HZ
from processors.errors import ProcessorError
from processors.scoring.authenticity import BLIND_SPOT, SyntheticSpeechScorer
from processors.scoring.quality import DnsmosEstimator
from processors.scoring.report import VoicePoint, render_report
from processors.scoring.voice_analysis import F0Contour, compare_speakers, measure_voice, project_to_plane
from processors.trust.provenance import UNKNOWN_MIME_TYPE, read_provenance
from processors.trust.watermark import detect_watermark
from processors.voice.speaker import SpeakerEncoder

SUBJECT_LABEL = "this recording"
SPEAKING_RATE_METHOD = "syllable nuclei (intensity peaks in voiced stretches) per second of speech"


@dataclass(frozen=True)
class AnalysisModels:
    """What listens: ``vad`` and ``dnsmos`` as the ingest gate uses them (the energy detector and no DNSMOS
    without), ``encoder`` for comparisons, ``synthetic_speech`` (AASIST, loaded on use if not given)."""

    vad: SpeechDetector | None = None
    dnsmos: DnsmosEstimator | None = None
    encoder: SpeakerEncoder | None = None
    synthetic_speech: SyntheticSpeechScorer | None = None


@dataclass(frozen=True)
class ComparedVoice:
    """The voice to compare with: its Resemblyzer embedding and how the report names it."""

    label: str
    embedding: np.ndarray


@dataclass(frozen=True)
class RecordingAnalysis:
    """``findings`` are JSON-safe; ``report_html`` draws them with the recording's pictures."""

    findings: dict
    samples: np.ndarray
    contour: F0Contour
    voices: list[VoicePoint] = field(default_factory=list)

    def report_html(self, title: str) -> str:
        return render_report(title, self.samples, self.contour, self.findings, self.voices)


def analyze_recording(data: bytes, watermark_key: bytes, models: AnalysisModels = AnalysisModels(), *,
                      compared: ComparedVoice | None = None, neighbours: dict[str, np.ndarray] | None = None,
                      mime_type: str = UNKNOWN_MIME_TYPE, trust_anchors_pem: bytes | None = None) -> RecordingAnalysis:
    """Everything about one audio file. With ``compared`` (needs ``models.encoder``), a same-speaker verdict and
    both voices placed among ``neighbours`` (label → embedding) on a plane. ``ProcessorError`` if the file does
    not decode, or has too little speech to compare."""
    decoded = decode_audio(data)
    mono = to_mono(decoded.samples)
    samples = resample(mono, decoded.sample_rate_hz, ANALYSIS_SAMPLE_RATE_HZ)
    metrics, contour = measure_voice(samples, vad=models.vad, dnsmos=models.dnsmos)
    at_output_rate = resample(mono, decoded.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)
    synthetic_speech = _synthetic_speech(at_output_rate, models.synthetic_speech)
    findings = {
        **metrics.to_dict(),
        "f0_range_hz": list(metrics.f0_range_hz) if metrics.f0_range_hz else None,
        "speaking_rate_method": SPEAKING_RATE_METHOD,
        "original_sample_rate_hz": decoded.sample_rate_hz,
        "original_channels": decoded.channels,
        "quality": {"accepted": metrics.accepted, "reasons": metrics.reasons},
        "watermark": _watermark(at_output_rate, watermark_key),
        "synthetic_speech": synthetic_speech,
        "authenticity": {"synthetic_speech": synthetic_speech,
                         "content_credentials": read_provenance(data, mime_type, trust_anchors_pem).to_dict()},
    }
    voices = []
    if compared is not None:
        if models.encoder is None:
            raise ValueError("a comparison needs models.encoder")
        embedding = models.encoder.embed(samples, ANALYSIS_SAMPLE_RATE_HZ)
        findings["comparison"] = {**compare_speakers(embedding, compared.embedding).to_dict(),
                                  "compared": compared.label}
        voices = placed_voices(embedding, compared, neighbours or {})
    return RecordingAnalysis(findings=findings, samples=samples, contour=contour, voices=voices)


def analyze_audio(data: bytes, watermark_key: bytes, synthetic_speech: SyntheticSpeechScorer | None = None) -> dict:
    """The findings alone, for a file judged without VAD or DNSMOS models; ``{"decodable": False, "error"}`` for
    a file that does not decode."""
    try:
        return analyze_recording(data, watermark_key, AnalysisModels(synthetic_speech=synthetic_speech)).findings
    except ProcessorError as error:
        return {"decodable": False, "error": str(error)}


def embed_recording(data: bytes, encoder: SpeakerEncoder) -> np.ndarray:
    """The Resemblyzer embedding of an audio file's speech; ``ProcessorError`` if it does not decode or is too short."""
    decoded = decode_audio(data)
    return encoder.embed(to_mono(decoded.samples), decoded.sample_rate_hz)


def placed_voices(embedding: np.ndarray, compared: ComparedVoice, neighbours: dict[str, np.ndarray]
                  ) -> list[VoicePoint]:
    """The recording, the compared voice and the neighbours on the plane of their two main directions."""
    labels = [SUBJECT_LABEL, compared.label, *neighbours]
    roles = ["subject", "compared", *["neighbour"] * len(neighbours)]
    plane = project_to_plane(np.stack([embedding, compared.embedding, *neighbours.values()]))
    return [VoicePoint(label, float(x), float(y), role) for label, role, (x, y) in zip(labels, roles, plane)]


def _watermark(samples: np.ndarray, watermark_key: bytes) -> dict:
    try:
        detection = detect_watermark(samples, OUTPUT_SAMPLE_RATE_HZ, watermark_key)
    except ProcessorError as error:
        return {"detected": False, "confidence": 0.0, "payload": None, "reason": str(error)}
    return {"detected": detection.detected, "confidence": round(float(detection.confidence), 4),
            "payload": detection.payload.hex() if detection.payload else None}


def _synthetic_speech(samples: np.ndarray, scorer: SyntheticSpeechScorer | None) -> dict:
    """``probability`` (0 real .. 1 synthetic) with the model's name and its blind spot, or why there is none."""
    try:
        score = (scorer or SyntheticSpeechScorer()).score(samples, OUTPUT_SAMPLE_RATE_HZ)
    except ProcessorError as error:
        return {"probability": None, "reason": str(error), "blind_spot": BLIND_SPOT}
    return {"probability": score.synthetic_probability, "model": score.model, "blind_spot": BLIND_SPOT}
