"""The CLI commands that need no running stack."""

import base64
import json
from pathlib import Path

from click.testing import CliRunner

from infra.cli import main

SCHEMA_DOCS = Path(__file__).parents[2] / "docs" / "schemas"


def test_committed_json_schemas_match_the_event_models(tmp_path):
    result = CliRunner().invoke(main, ["schemas", "export", str(tmp_path)])

    assert result.exit_code == 0, result.output
    exported = {p.name: p.read_text() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_text() for p in SCHEMA_DOCS.iterdir()}
    assert exported == committed, "run `make schemas` and commit docs/schemas"


def test_keygen_writes_a_private_key_and_refuses_to_overwrite_it(tmp_path):
    key_file = tmp_path / "owner.key"
    first = CliRunner().invoke(main, ["consent", "keygen", str(key_file)])
    again = CliRunner().invoke(main, ["consent", "keygen", str(key_file)])

    assert first.exit_code == 0 and len(base64.b64decode(first.output.strip())) == 32
    assert len(base64.b64decode(key_file.read_text())) == 32
    assert again.exit_code != 0 and "not overwriting" in again.output


def test_produce_refuses_an_invalid_event_without_contacting_the_broker(tmp_path):
    bad = tmp_path / "event.json"
    bad.write_text(json.dumps({"type": "synthesis.requested", "tenant_id": "t"}))

    result = CliRunner().invoke(main, ["produce", str(bad)])

    assert result.exit_code != 0 and "not produced" in result.output and "voice_id" in result.output


def test_analyze_reports_quality_of_a_file(tmp_path, english_reference_speech):
    from processors.audio import encode_wav

    samples, rate = english_reference_speech
    audio = tmp_path / "speech.wav"
    audio.write_bytes(encode_wav(samples[: rate * 5], rate))

    result = CliRunner().invoke(main, ["analyze", str(audio)], env={"VOXFLOW_DATA_DIR": str(tmp_path)})

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["quality"]["accepted"] and report["watermark"]["detected"] is False
