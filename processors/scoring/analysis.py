"""One file's report: quality gate figures and whether it carries a voxflow watermark."""

from __future__ import annotations

from processors.audio.codec_quality import decode_audio, prepare_sample, resample, to_mono
from processors.constants import ANALYSIS_SAMPLE_RATE_HZ, OUTPUT_SAMPLE_RATE_HZ
from processors.errors import ProcessorError
from processors.trust.watermark import detect_watermark


def analyze_audio(data: bytes, watermark_key: bytes) -> dict:
    """Quality report (as ingest would judge it) and watermark detection, as a JSON-safe dict."""
    try:
        prepared = prepare_sample(data, ANALYSIS_SAMPLE_RATE_HZ)
    except ProcessorError as error:
        return {"decodable": False, "error": str(error)}
    decoded = decode_audio(data)
    at_output_rate = resample(to_mono(decoded.samples), decoded.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)
    try:
        detection = detect_watermark(at_output_rate, OUTPUT_SAMPLE_RATE_HZ, watermark_key)
        watermark = {"detected": detection.detected, "confidence": round(float(detection.confidence), 4),
                     "payload": detection.payload.hex() if detection.payload else None}
    except ProcessorError as error:
        watermark = {"detected": False, "reason": str(error)}
    return {
        "decodable": True,
        "original_sample_rate_hz": prepared.original_rate_hz,
        "original_channels": prepared.original_channels,
        "duration_s": round(prepared.original_duration_s, 3),
        "quality": prepared.report.to_dict(),
        "watermark": watermark,
    }
