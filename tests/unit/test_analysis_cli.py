"""`voxflow analyze FILE --compare FILE --json`: one JSON object with the analysis keys, and the report on disk."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
from infra.speech_assets import heldout_utterance
from processors.audio.codec_quality import encode_wav

pytest_plugins = ["tests.conftest_speech"]

ANALYSIS_KEYS = {"speech_s", "snr_db", "clipping_ratio", "dnsmos", "f0_range_hz", "speaking_rate", "suggestions",
                 "watermark", "authenticity", "report"}


def test_analyze_compares_two_recordings_and_writes_the_report(tmp_path, english_reference_speech):
    samples, rate = english_reference_speech
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    first.write_bytes(encode_wav(samples[: 8 * rate], rate))
    second.write_bytes(encode_wav(*heldout_utterance(8.0)))
    report = tmp_path / "report.html"

    result = CliRunner().invoke(main, ["analyze", str(first), "--compare", str(second), "--report", str(report),
                                       "--json"], env={"VOXFLOW_DATA_DIR": str(tmp_path)})

    assert result.exit_code == 0, result.output
    findings = json.loads(result.output)
    assert ANALYSIS_KEYS <= set(findings) and findings["dnsmos"] is not None and findings["vad"] == "silero-vad"
    assert findings["comparison"]["verdict"] == "same"
    assert findings["report"] == str(report.resolve()) and 'id="figure-projection"' in report.read_text()


def test_analyze_refuses_both_a_file_and_a_voice_to_compare_with(tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")

    result = CliRunner().invoke(main, ["analyze", str(audio), "--compare", str(audio), "--voice", "v"],
                                env={"VOXFLOW_DATA_DIR": str(tmp_path)})

    assert result.exit_code == 2 and "not both" in result.output
