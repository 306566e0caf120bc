"""One file's report: quality gate figures, whether it carries a voxflow watermark, and how synthetic it sounds."""

from __future__ import annotations

import numpy as np

from processors.audio.codec_quality import decode_audio, prepare_sample, resample, to_mono
from processors.constants import ANALYSIS_SAMPLE_RATE_HZ, OUTPUT_SAMPLE_RATE_HZ
from processors.errors import ProcessorError
from processors.scoring.authenticity import BLIND_SPOT, SyntheticSpeechScorer
from processors.trust.watermark import detect_watermark


def analyze_audio(data: bytes, watermark_key: bytes, synthetic_speech: SyntheticSpeechScorer | None = None) -> dict:
    """Quality report (as ingest would judge it), watermark detection and the synthetic-speech score (AASIST,
    ``synthetic_speech`` or one loaded here), as a JSON-safe dict."""
    try:
        prepared = prepare_sample(data, ANALYSIS_SAMPLE_RATE_HZ)
    except ProcessorError as error:
        return {"decodable": False, "error": str(error)}
    decoded = decode_audio(data)
    at_output_rate = resample(to_mono(decoded.samples), decoded.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)
    return {
        "decodable": True,
        "original_sample_rate_hz": prepared.original_rate_hz,
        "original_channels": prepared.original_channels,
        "duration_s": round(prepared.original_duration_s, 3),
        "quality": prepared.report.to_dict(),
        "watermark": _watermark(at_output_rate, watermark_key),
        "synthetic_speech": _synthetic_speech(at_output_rate, synthetic_speech),
    }


def _watermark(samples: np.ndarray, watermark_key: bytes) -> dict:
    try:
        detection = detect_watermark(samples, OUTPUT_SAMPLE_RATE_HZ, watermark_key)
    except ProcessorError as error:
        return {"detected": False, "reason": str(error)}
    return {"detected": detection.detected, "confidence": round(float(detection.confidence), 4),
            "payload": detection.payload.hex() if detection.payload else None}


def _synthetic_speech(samples: np.ndarray, scorer: SyntheticSpeechScorer | None) -> dict:
    """``probability`` (0 real .. 1 synthetic) with the model's name and its blind spot, or why there is none."""
    try:
        score = (scorer or SyntheticSpeechScorer()).score(samples, OUTPUT_SAMPLE_RATE_HZ)
    except ProcessorError as error:
        return {"probability": None, "reason": str(error), "blind_spot": BLIND_SPOT}
    return {"probability": score.synthetic_probability, "model": score.model, "blind_spot": BLIND_SPOT}
