"""The CLI commands that need no running stack."""

import base64
import json
from pathlib import Path

from click.testing import CliRunner

from cli import main

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

    result = CliRunner().invoke(main, ["produce", "--json", str(bad)])

    assert result.exit_code != 0 and "not produced" in result.output and "voice_id" in result.output


def test_analyze_reports_quality_of_a_file(tmp_path, english_reference_speech):
    from processors.audio.codec_quality import encode_wav

    samples, rate = english_reference_speech
    audio = tmp_path / "speech.wav"
    audio.write_bytes(encode_wav(samples[: rate * 5], rate))

    result = CliRunner().invoke(main, ["analyze", str(audio)], env={"VOXFLOW_DATA_DIR": str(tmp_path)})

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["quality"]["accepted"] and report["watermark"]["detected"] is False


def reference_file(tmp_path, english_reference_speech, seconds: int = 10):
    from processors.audio.codec_quality import encode_wav

    samples, rate = english_reference_speech
    path = tmp_path / "reference.wav"
    path.write_bytes(encode_wav(samples[: rate * seconds], rate))
    return path


def test_clone_fits_once_and_speaks_every_text_in_order(tmp_path, english_reference_speech):
    texts = ["Good morning, and welcome to the show.", "Please leave a message after the tone."]
    out_dir = tmp_path / "clips"

    result = CliRunner().invoke(main, [
        "clone", "--reference", str(reference_file(tmp_path, english_reference_speech)), "--text", texts[0],
        "--text", texts[1], "--out-dir", str(out_dir), "--tier", "instant", "--json",
    ])

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [entry["text"] for entry in report["outputs"]] == texts
    assert [entry["out"] for entry in report["outputs"]] == [str(out_dir / "01.wav"), str(out_dir / "02.wav")]
    assert all((out_dir / name).stat().st_size > 20_000 for name in ("01.wav", "02.wav"))
    assert report["engine"] == "kokoro" and report["tier"] == "instant" and report["profile"]["kokoro_voice"]
    assert all(entry["scores"]["wer"] <= 0.3 for entry in report["outputs"])


def test_clone_refuses_several_texts_for_one_output_file(tmp_path, english_reference_speech):
    result = CliRunner().invoke(main, [
        "clone", "--reference", str(reference_file(tmp_path, english_reference_speech)), "--text", "One.",
        "--text", "Two.", "--out", str(tmp_path / "one.wav"),
    ])

    assert result.exit_code == 2 and "--out-dir" in result.output


def test_clone_says_why_a_reference_is_refused(tmp_path):
    import numpy as np

    from processors.audio.codec_quality import encode_wav

    noise = tmp_path / "noise.wav"
    noise.write_bytes(encode_wav(np.random.default_rng(0).normal(0, 0.1, 16000 * 6).astype(np.float32), 16000))

    result = CliRunner().invoke(main, ["clone", "--reference", str(noise), "--text", "Hi there.", "--out",
                                       str(tmp_path / "x.wav"), "--tier", "instant"])

    assert result.exit_code == 1 and "reference 1" in result.output and "Traceback" not in result.output
