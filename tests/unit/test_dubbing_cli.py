"""`voxflow dub` refuses what it can tell is wrong before it contacts anything."""

from __future__ import annotations

from click.testing import CliRunner

from cli import main


def test_a_script_whose_format_cannot_be_told_is_refused_before_anything_is_sent(tmp_path):
    media, script = tmp_path / "clip.mp4", tmp_path / "lines.txt"
    media.write_bytes(b"not looked at")
    script.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello.\n")

    result = CliRunner().invoke(main, ["dub", str(media), "--voice", "narrator-1", "--script", str(script)])

    assert result.exit_code == 2
    assert "cannot tell the format of lines.txt" in result.output


def test_a_tenant_without_a_key_is_told_so(tmp_path, monkeypatch):
    media, script = tmp_path / "clip.mp4", tmp_path / "lines.srt"
    media.write_bytes(b"not looked at")
    script.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello.\n")
    monkeypatch.setenv("VOXFLOW_TENANT_KEYS_DIR", str(tmp_path / "no-keys"))

    result = CliRunner().invoke(main, ["dub", str(media), "--voice", "narrator-1", "--script", str(script),
                                       "--tenant", "acme"])

    assert result.exit_code == 1
    assert "acme.key" in result.output
