"""Content credentials: every signed output says who made it and for which voice, and anyone holding the
root can tell an intact file from one that was altered, stripped, forged or signed by someone else."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from infra.errors import ProvenanceKeysError
from infra.provenance_keys import ProvenanceKeys, load_provenance_keys
from infra.settings import Settings
from processors.audio.codec_quality import decode_audio, encode_wav
from processors.errors import ProvenanceKeyError, ProvenanceSigningError
from processors.trust.provenance import (
    TRAINED_ALGORITHMIC_MEDIA,
    ProvenanceClaims,
    ProvenanceSigner,
    read_provenance,
    sign_audio,
)

RATE_HZ = 24000
CLAIMS = ProvenanceClaims(
    synthesis_id="syn-0001", tenant_id="tenant-a", voice_id="voice-alice", consent_id="consent-42",
    watermark_payload_hex="0123456789abcdef", generator_version="0.1.0",
)


def settings_in(directory: Path, **fields) -> Settings:
    return Settings(_env_file=None, data_dir=directory, **fields)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> ProvenanceKeys:
    """This data dir's development chain, with its root as the trust anchor."""
    return load_provenance_keys(settings_in(tmp_path_factory.mktemp("voxflow")))


@pytest.fixture(scope="module")
def tone_wav() -> bytes:
    seconds = np.arange(5 * RATE_HZ) / RATE_HZ
    return encode_wav((0.3 * np.sin(2 * np.pi * 220 * seconds)).astype(np.float32), RATE_HZ)


@pytest.fixture(scope="module")
def signed_tone(tone_wav, keys) -> bytes:
    return sign_audio(tone_wav, "audio/wav", CLAIMS, keys.signer)


def flipped_in_the_middle(data: bytes) -> bytes:
    """One bit changed in the middle of the file, where the audio frames are for every format here."""
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x01
    return bytes(damaged)


def encoded_with_ffmpeg(wav: bytes, suffix: str, tmp_path: Path) -> bytes:
    source, target = tmp_path / "source.wav", tmp_path / f"encoded{suffix}"
    source.write_bytes(wav)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), str(target)], check=True)
    return target.read_bytes()


def test_a_signed_output_reads_valid_and_names_its_voice_consent_and_watermark(signed_tone, keys):
    report = read_provenance(signed_tone, "audio/wav", keys.trust_anchors_pem)

    assert report.status == "valid" and report.failure_codes == ()
    assert report.claims == CLAIMS
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert "voxflow development signer" in report.signer


def test_signing_leaves_every_sample_as_it_was(tone_wav, signed_tone):
    original, signed = decode_audio(tone_wav), decode_audio(signed_tone)

    assert signed.sample_rate_hz == original.sample_rate_hz
    np.testing.assert_array_equal(signed.samples, original.samples)


def test_without_the_root_as_trust_anchor_the_signer_is_untrusted(signed_tone):
    report = read_provenance(signed_tone, "audio/wav", None)

    assert report.status == "untrusted" and "signingCredential.untrusted" in report.failure_codes
    assert report.claims == CLAIMS


def test_another_deployments_development_root_does_not_vouch_for_this_one(signed_tone, tmp_path):
    other_keys = load_provenance_keys(settings_in(tmp_path))

    assert read_provenance(signed_tone, "audio/wav", other_keys.trust_anchors_pem).status == "untrusted"


def test_one_flipped_bit_in_the_audio_reads_as_altered(signed_tone, keys):
    report = read_provenance(flipped_in_the_middle(signed_tone), "audio/wav", keys.trust_anchors_pem)

    assert report.status == "altered" and "assertion.dataHash.mismatch" in report.failure_codes
    assert report.claims == CLAIMS


def test_a_forged_voice_id_in_the_manifest_reads_as_invalid(signed_tone, keys):
    forged = signed_tone.replace(b"voice-alice", b"voice-mallo")

    report = read_provenance(forged, "audio/wav", keys.trust_anchors_pem)

    assert forged != signed_tone
    assert report.status == "invalid" and "assertion.hashedURI.mismatch" in report.failure_codes


def test_a_file_never_signed_reads_as_missing(tone_wav, keys):
    assert read_provenance(tone_wav, "audio/wav", keys.trust_anchors_pem).status == "missing"


def test_re_encoding_a_signed_file_strips_the_manifest_and_reads_as_missing(signed_tone, keys):
    decoded = decode_audio(signed_tone)

    re_encoded = encode_wav(decoded.samples, decoded.sample_rate_hz)

    assert read_provenance(re_encoded, "audio/wav", keys.trust_anchors_pem).status == "missing"


def test_real_speech_signs_and_reads_back_valid(english_speech_8s, keys):
    speech = encode_wav(english_speech_8s, 16000)

    signed = sign_audio(speech, "audio/wav", CLAIMS, keys.signer)

    report = read_provenance(signed, "audio/wav", keys.trust_anchors_pem)
    assert (report.status, report.claims) == ("valid", CLAIMS)
    assert read_provenance(flipped_in_the_middle(signed), "audio/wav", keys.trust_anchors_pem).status == "altered"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to encode MP3, FLAC and M4A")
@pytest.mark.parametrize(("suffix", "mime_type", "hash_code"), [
    (".mp3", "audio/mpeg", "assertion.dataHash.mismatch"),
    (".flac", "audio/flac", "assertion.dataHash.mismatch"),
    (".m4a", "audio/mp4", "assertion.bmffHash.mismatch"),
])
def test_compressed_formats_carry_credentials_too(tone_wav, keys, tmp_path, suffix, mime_type, hash_code):
    encoded = encoded_with_ffmpeg(tone_wav, suffix, tmp_path)

    signed = sign_audio(encoded, mime_type, CLAIMS, keys.signer)

    intact = read_provenance(signed, mime_type, keys.trust_anchors_pem)
    altered = read_provenance(flipped_in_the_middle(signed), mime_type, keys.trust_anchors_pem)
    assert (intact.status, intact.claims) == ("valid", CLAIMS)
    assert altered.status == "altered" and hash_code in altered.failure_codes


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to encode Ogg Vorbis")
def test_a_format_that_cannot_carry_a_manifest_is_refused_when_signing_and_missing_when_read(
        tone_wav, keys, tmp_path):
    ogg = encoded_with_ffmpeg(tone_wav, ".ogg", tmp_path)

    with pytest.raises(ProvenanceSigningError):
        sign_audio(ogg, "audio/ogg", CLAIMS, keys.signer)
    report = read_provenance(ogg, "audio/ogg", keys.trust_anchors_pem)
    assert report.status == "missing" and "cannot carry" in report.detail


def test_bytes_that_are_not_audio_read_as_invalid_without_raising(keys):
    assert read_provenance(b"RIFF\x00\x00", "audio/wav", keys.trust_anchors_pem).status == "invalid"


def test_the_development_chain_is_made_once_and_its_key_is_owner_only(tmp_path):
    first = load_provenance_keys(settings_in(tmp_path))
    second = load_provenance_keys(settings_in(tmp_path))

    assert first.trust_anchors_pem == second.trust_anchors_pem
    assert (tmp_path / "c2pa" / "dev-signer.key").stat().st_mode & 0o777 == 0o600


def test_a_configured_chain_signs_and_its_configured_anchor_vouches_for_it(tone_wav, tmp_path):
    load_provenance_keys(settings_in(tmp_path / "issuer"))
    issued = tmp_path / "issuer" / "c2pa"
    configured = settings_in(tmp_path / "worker", c2pa_cert_chain=issued / "dev-chain.pem",
                             c2pa_private_key=issued / "dev-signer.key", c2pa_trust_anchors=issued / "dev-root.pem")

    keys = load_provenance_keys(configured)

    signed = sign_audio(tone_wav, "audio/wav", CLAIMS, keys.signer)
    assert read_provenance(signed, "audio/wav", keys.trust_anchors_pem).status == "valid"
    assert not (tmp_path / "worker" / "c2pa").exists()


def test_a_chain_without_its_key_is_a_configuration_error(tmp_path):
    with pytest.raises(ProvenanceKeysError):
        load_provenance_keys(settings_in(tmp_path, c2pa_cert_chain=tmp_path / "chain.pem"))


def test_a_private_key_that_is_not_the_signer_certificates_is_refused(tmp_path):
    for name in ("first", "second"):
        load_provenance_keys(settings_in(tmp_path / name))
    chain = (tmp_path / "first" / "c2pa" / "dev-chain.pem").read_bytes()
    other_key = (tmp_path / "second" / "c2pa" / "dev-signer.key").read_bytes()

    with pytest.raises(ProvenanceKeyError):
        ProvenanceSigner(chain, other_key)


def test_analyze_reports_the_provenance_of_a_signed_file_and_of_an_altered_copy(tone_wav, tmp_path):
    from cli import main

    keys = load_provenance_keys(settings_in(tmp_path))
    signed = sign_audio(tone_wav, "audio/wav", CLAIMS, keys.signer)
    (tmp_path / "signed.wav").write_bytes(signed)
    (tmp_path / "altered.wav").write_bytes(flipped_in_the_middle(signed))

    reports = {}
    for name in ("signed.wav", "altered.wav"):
        result = CliRunner().invoke(main, ["analyze", str(tmp_path / name)], env={"VOXFLOW_DATA_DIR": str(tmp_path)})
        assert result.exit_code == 0, result.output
        reports[name] = json.loads(result.output)

    assert reports["signed.wav"]["provenance"]["status"] == "valid"
    assert reports["signed.wav"]["provenance"]["claims"]["voice_id"] == "voice-alice"
    assert reports["altered.wav"]["provenance"]["status"] == "altered"
    assert "watermark" in reports["signed.wav"] and "quality" in reports["signed.wav"]
