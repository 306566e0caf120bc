"""One example of every event type, built from its model: what `voxflow schemas export --examples DIR` writes.

A field gets its default, or a value made from its type; ``EXAMPLE_FIELDS`` holds what a type's
validators need (object keys inside the tenant's own area, hashes, signatures) or what reads better
written by hand. A new event type gets an example from its field types alone; when its validators
refuse that, the export names the type and the problem, and the type's values belong in
``EXAMPLE_FIELDS``. Every id and time is fixed, so an export is the same on every machine; ids are
shared by field name, so the examples read as one journey (one correlation id, one synthesis id).
"""

from __future__ import annotations

import json
import types
import typing
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ValidationError

from schemas.envelope import Event
from schemas.registry import EVENT_TYPES

EXAMPLE_TENANT = "acme"
EXAMPLE_VOICE = "narrator-1"
EXAMPLE_TIME = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
_EXAMPLE_IDS = uuid.UUID("6f1c2b8e-0c4e-4d7a-9a57-3a0f2f0d1c9b")


class ExampleRefused(ValueError):
    """An event type's validators refuse the example built from its field types."""


def example_id(name: str) -> uuid.UUID:
    return uuid.uuid5(_EXAMPLE_IDS, name)


def _object_key(area: str, *parts: object) -> str:
    return "/".join((area, EXAMPLE_TENANT, EXAMPLE_VOICE, *map(str, parts)))


_SYNTHESIS = example_id("synthesis_id")
_SIGNATURE = "c2lnbmF0dXJlIG92ZXIgdGhlIGNhbm9uaWNhbCBkb2N1bWVudCwgNjQgYnl0ZXMgb2YgRWQyNTUxOSBoZXJlLi4="
EXAMPLE_FIELDS: dict[str, dict[str, object]] = {
    "sample.uploaded": {"object_key": _object_key("uploads", f"{example_id('sample_id')}.wav"),
                        "filename": "take-1.wav", "size_bytes": 1_411_244},
    "sample.accepted": {"normalised_key": _object_key("samples", f"{example_id('sample_id')}.wav"),
                        "duration_s": 12.4, "speech_s": 10.9, "snr_db": 31.5, "clipping_ratio": 0.0,
                        "original_sample_rate_hz": 48_000, "original_channels": 1},
    "consent.granted": {"owner_id": "owner-1", "owner_public_key": "q7tcyYxBbIV0HyKwqf2Hn9sG/3uRUUFnbTmf4fp3B6U=",
                        "purposes": ["narration"], "languages": ["en"], "issued_at": EXAMPLE_TIME,
                        "expires_at": EXAMPLE_TIME + timedelta(days=365),
                        "statement_text": "I agree that Acme may build a synthetic copy of my voice for narration.",
                        "signature": _SIGNATURE},
    "consent.revoked": {"signature": _SIGNATURE},
    "adaptation.progress": {"tier": "refined", "percent": 50.0, "step": 12, "steps": 24,
                            "similarity_objective": 0.71},
    "adaptation.refinement_requested": {"steps": 24},
    "synthesis.requested": {"text": "Welcome back. Today's episode starts with the news.", "purpose": "narration"},
    "synthesis.chunk_requested": {"chunk_count": 2, "text": "Welcome back."},
    "synthesis.produced": {"chunk_count": 2, "raw_key": _object_key("syntheses", _SYNTHESIS, "raw-0.wav"),
                           "sample_rate_hz": 24_000, "duration_s": 1.4, "rtf": 0.3},
    "synthesis.chunk_ready": {"chunk_count": 2, "object_key": _object_key("syntheses", _SYNTHESIS, "0.wav"),
                              "sample_rate_hz": 24_000, "duration_s": 1.4, "latency_s": 0.9},
    "synthesis.completed": {"object_key": _object_key("syntheses", _SYNTHESIS, "full.wav"), "sample_rate_hz": 24_000,
                            "duration_s": 3.8, "chunk_count": 2, "rtf": 0.3, "latency_s": 2.1,
                            "watermark_payload": "5f3a9c01d2e4b7a8", "speaker_similarity": 0.82,
                            "word_error_rate": 0.0, "dnsmos": 3.4},
    "watermark.detection_requested": {"object_key": f"checks/{EXAMPLE_TENANT}/clip-to-check.wav"},
    "audit.checkpoint": {"sequence": 1024, "head_hash": "9e" * 32, "key_id": "3b1f0a7c9d2e4f60",
                         "signature": _SIGNATURE},
    "erasure.requested": {"owner_signature": _SIGNATURE},
    "analysis.requested": {"object_key": f"checks/{EXAMPLE_TENANT}/interview.wav"},
    "analysis.completed": {"duration_s": 12.4, "speech_s": 10.9, "snr_db": 31.5, "clipping_ratio": 0.0,
                           "vad": "silero-vad", "f0_range_hz": [96.0, 182.0], "f0_median_hz": 131.0,
                           "speaking_rate": 4.2,
                           "report_key": f"checks/{EXAMPLE_TENANT}/reports/{example_id('analysis_id')}.html"},
    "dub.requested": {"media_key": _object_key("uploads", "trailer.mp4"), "script_format": "srt",
                      "script_text": "1\n00:00:01,000 --> 00:00:03,500\nWelcome back.\n"},
    "dub.progress": {"percent": 50.0, "segments_done": 6, "segment_count": 12},
    "dub.completed": {"output_key": _object_key("syntheses", example_id("dub_id"), "dubbed.mp4"),
                      "media_type": "video/mp4", "duration_s": 95.0, "watermark_payload": "5f3a9c01d2e4b7a8",
                      "latency_s": 41.0},
}


def example_event(event_class: type[Event]) -> Event:
    """The example of ``event_class``; ``ExampleRefused`` when its validators refuse it."""
    event_type = event_class.model_fields["type"].default
    fields = {**_made_fields(event_class), "tenant_id": EXAMPLE_TENANT, "voice_id": EXAMPLE_VOICE,
              "event_id": example_id(f"{event_type}:event_id"), **EXAMPLE_FIELDS.get(event_type, {})}
    try:
        return event_class.model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<event>'}: {e['msg']}" for e in error.errors())
        raise ExampleRefused(f"the example of {event_type} is refused ({problems}): give its values in "
                             "EXAMPLE_FIELDS in schemas/examples.py") from error


def _made_fields(model: type[BaseModel]) -> dict[str, object]:
    """A value for every field without a plain default (required, or made by a factory such as uuid4)."""
    return {name: _example_value(field.annotation, name) for name, field in model.model_fields.items()
            if field.is_required() or field.default_factory is not None}


def _example_value(annotation, name: str):
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _example_value(next(arg for arg in args if arg is not type(None)), name)
    if origin is typing.Literal:
        return args[0]
    if origin is list:
        return [_example_value(args[0], name)]
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _made_fields(annotation)
    return _SCALAR_EXAMPLES.get(annotation, lambda field: f"example {field}")(name)


_SCALAR_EXAMPLES = {
    uuid.UUID: example_id,
    AwareDatetime: lambda name: EXAMPLE_TIME,
    datetime: lambda name: EXAMPLE_TIME,
    bool: lambda name: True,
    int: lambda name: 1,
    float: lambda name: 0.5,
}


def export_examples(directory: Path) -> list[Path]:
    """Write ``<type>.json`` for every event type: an event that validates against its model."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, event_class in sorted(EVENT_TYPES.items()):
        path = directory / f"{event_type}.json"
        path.write_text(json.dumps(example_event(event_class).model_dump(mode="json"), indent=2) + "\n")
        written.append(path)
    return written
