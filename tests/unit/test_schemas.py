import json

import pytest
from pydantic import ValidationError

from schemas import EVENT_TYPES, export_json_schemas, parse_event
from schemas.errors import MalformedEvent, UnknownEventType, UnsupportedSchemaVersion
from schemas.events import SampleAccepted, SampleUploaded, SynthesisRequested, WatermarkDetectionRequested


def uploaded(**overrides) -> SampleUploaded:
    return SampleUploaded(tenant_id="t", voice_id="v1", object_key="uploads/t/v1/a.wav", size_bytes=10, **overrides)


def test_an_event_survives_the_wire_unchanged():
    event = uploaded()
    assert parse_event(event.to_bytes()) == event


@pytest.mark.parametrize("raw, error, words", [
    (b"{oops", MalformedEvent, "not valid JSON"),
    (b"[1, 2]", MalformedEvent, "JSON object"),
    (b'{"type": "sample.teleported"}', UnknownEventType, "sample.teleported"),
    (b'{"type": "sample.uploaded", "tenant_id": "t"}', MalformedEvent, "voice_id"),
])
def test_bad_bytes_are_refused_with_a_reason(raw, error, words):
    with pytest.raises(error, match=words):
        parse_event(raw)


def test_a_newer_schema_version_is_refused_not_misread():
    document = json.loads(uploaded().to_bytes())
    document["schema_version"] = 2
    with pytest.raises(UnsupportedSchemaVersion, match="version 2"):
        parse_event(json.dumps(document))


def test_unknown_fields_are_refused():
    document = json.loads(uploaded().to_bytes())
    document["surprise"] = True
    with pytest.raises(MalformedEvent, match="surprise"):
        parse_event(json.dumps(document))


def test_follow_ups_keep_the_journey_and_have_stable_ids():
    cause = uploaded()
    first = cause.follow_up(SampleAccepted, sample_id=cause.sample_id, normalised_key="samples/t/v1/k.wav", duration_s=1, speech_s=1,
                            snr_db=30, clipping_ratio=0, original_sample_rate_hz=16000, original_channels=1)
    again = cause.follow_up(SampleAccepted, sample_id=cause.sample_id, normalised_key="samples/t/v1/k.wav", duration_s=1, speech_s=1,
                            snr_db=30, clipping_ratio=0, original_sample_rate_hz=16000, original_channels=1)
    assert first.event_id == again.event_id != cause.event_id
    assert (first.correlation_id, first.causation_id, first.voice_id) == (cause.correlation_id, cause.event_id, "v1")


def test_synthesis_controls_are_range_checked():
    with pytest.raises(ValueError, match="speed"):
        SynthesisRequested(tenant_id="t", voice_id="v", text="hi", purpose="demo", controls={"speed": 9})


def test_every_event_type_exports_a_json_schema(tmp_path):
    written = export_json_schemas(tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())
    assert set(index) == set(EVENT_TYPES) and len(written) == len(EVENT_TYPES) + 1
    schema = json.loads((tmp_path / index["sample.uploaded"]["schema"]).read_text())
    assert {"object_key", "voice_id", "tenant_id"} <= set(schema["required"])


@pytest.mark.parametrize("key", [
    "uploads/victim/v1/a.wav",  # another tenant's upload
    "uploads/t/other-voice/a.wav",  # another voice of the same tenant
    "samples/t/v1/a.wav",  # the right tenant, the wrong part of the store
    "uploads/t/v1/../../victim/v1/a.wav",
    "a.wav",
])
def test_an_upload_naming_a_key_outside_its_tenant_and_voice_is_refused_with_the_reason(key):
    raw = json.dumps({**json.loads(uploaded().to_bytes()), "object_key": key})

    with pytest.raises(MalformedEvent, match="outside the event's tenant and voice"):
        parse_event(raw)


def test_a_detection_request_may_name_only_its_own_tenants_audio():
    own = WatermarkDetectionRequested(tenant_id="t", voice_id="any", object_key="syntheses/t/v9/x/output.wav")

    with pytest.raises(ValidationError, match="outside the event's tenant"):
        WatermarkDetectionRequested(tenant_id="t", voice_id="any", object_key="syntheses/victim/v9/x/output.wav")
    assert own.object_key.startswith("syntheses/t/")
