"""Content credentials (C2PA): a signed manifest inside each output that says an algorithm made it.

The manifest is embedded in the file itself (a RIFF chunk in WAV, an ID3 frame in MP3, a metadata
block in FLAC, a `uuid` box in MP4/M4A) and binds to the file's bytes with a hash, so any change
to the audio after signing reads back as "altered"; re-encoding the audio drops it ("missing").
It states the IPTC digital source type trainedAlgorithmicMedia in a `c2pa.created` action, and an
`org.voxflow.synthesis` assertion names the voice, consent, synthesis, tenant and watermark payload.

Nothing here reads files or the network: reading never fetches remote manifests or OCSP responses,
and trust is decided only by the root certificates the caller passes in.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, fields
from typing import Literal

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from processors.errors import ProvenanceKeyError, ProvenanceSigningError

GENERATOR_NAME = "voxflow"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SYNTHESIS_ASSERTION_LABEL = "org.voxflow.synthesis"
UNKNOWN_MIME_TYPE = "application/octet-stream"
MIME_TYPE_BY_SUFFIX = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".mp4": "video/mp4",
}

# Codes (C2PA 2.1, section 15) that mean the asset's bytes no longer match the signed hash.
ASSET_HASH_MISMATCH_CODES = frozenset({
    "assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch",
    "assertion.collectionHash.mismatch",
})
UNTRUSTED_SIGNER_CODES = frozenset({"signingCredential.untrusted"})

_ALGORITHM_BY_CURVE = {
    ec.SECP256R1: c2pa.C2paSigningAlg.ES256,
    ec.SECP384R1: c2pa.C2paSigningAlg.ES384,
    ec.SECP521R1: c2pa.C2paSigningAlg.ES512,
}

_PUBLIC_KEY_DER = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

ProvenanceStatus = Literal["valid", "untrusted", "altered", "missing", "invalid"]


@dataclass(frozen=True)
class ProvenanceClaims:
    """What voxflow states about one output, signed into its manifest."""

    synthesis_id: str
    tenant_id: str
    voice_id: str
    consent_id: str
    watermark_payload_hex: str
    generator_version: str
    generator: str = GENERATOR_NAME


@dataclass(frozen=True)
class ProvenanceReport:
    """One file's content credentials as read back.

    status: "valid" (signed by a chain ending in a trust anchor, file unchanged), "untrusted" (intact,
    but the signer's chain ends in no trust anchor), "altered" (the file's bytes changed after signing),
    "missing" (no manifest: never signed, stripped, or a format that cannot carry one), "invalid" (a
    manifest that is broken or whose signature does not verify). A trusted signer vouches for the claims
    only when no failure code but a hash mismatch is present ("valid", or "altered" audio); with
    "untrusted" or "invalid", anyone could have written them.
    """

    status: ProvenanceStatus
    failure_codes: tuple[str, ...] = ()
    claims: ProvenanceClaims | None = None
    digital_source_type: str | None = None
    signer: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict:
        report = asdict(self)
        report["failure_codes"] = list(self.failure_codes)
        return report


class ProvenanceSigner:
    """A C2PA signing identity, loaded once: the PEM chain (signer certificate first) and its private key."""

    def __init__(self, cert_chain_pem: bytes, private_key_pem: bytes):
        algorithm = _signing_algorithm(cert_chain_pem, private_key_pem)
        try:
            self._signer = c2pa.Signer.from_info(
                c2pa.C2paSignerInfo(algorithm, cert_chain_pem, private_key_pem, None))
        except c2pa.C2paError as error:
            raise ProvenanceKeyError(f"c2pa refused the signing certificate or key: {error}") from error
        # verify_after_sign reads every signed file back (about 1 ms): a manifest that would not verify never ships.
        self._context = c2pa.Context.from_dict({"verify": {"verify_after_sign": True}})

    def sign(self, manifest: dict, data: bytes, mime_type: str) -> bytes:
        signed = io.BytesIO()
        try:
            c2pa.Builder(manifest, context=self._context).sign(self._signer, mime_type, io.BytesIO(data), signed)
        except c2pa.C2paError as error:
            raise ProvenanceSigningError(f"cannot sign {mime_type} content credentials: {error}") from error
        return signed.getvalue()


def sign_audio(data: bytes, mime_type: str, claims: ProvenanceClaims, signer: ProvenanceSigner) -> bytes:
    """The file `data` (of `mime_type`, e.g. "audio/wav") with a signed C2PA manifest embedded; samples unchanged."""
    return signer.sign(_manifest(claims), data, mime_type)


def read_provenance(data: bytes, mime_type: str, trust_anchors_pem: bytes | None) -> ProvenanceReport:
    """Read and validate the manifest in `data`; signers are trusted only if their chain ends in `trust_anchors_pem`.

    `mime_type` is a hint (c2pa detects the container from the bytes); "application/octet-stream" will do.
    Never raises on the file's content: whatever is wrong with it becomes the report's status.
    """
    try:
        reader = c2pa.Reader.try_create(mime_type, io.BytesIO(data), None, _reading_context(trust_anchors_pem))
    except c2pa.C2paError.NotSupported:
        return ProvenanceReport("missing", detail="the file's format cannot carry an embedded C2PA manifest")
    except c2pa.C2paError as error:
        return ProvenanceReport("invalid", detail=f"the file or its C2PA manifest cannot be parsed: {error}")
    if reader is None:
        return ProvenanceReport("missing", detail="no C2PA manifest in the file")
    with reader:
        store = json.loads(reader.json())
    return _report(store)


def _manifest(claims: ProvenanceClaims) -> dict:
    agent = {"name": claims.generator, "version": claims.generator_version}
    return {
        "claim_generator_info": [agent],
        "title": f"{claims.generator} synthesis {claims.synthesis_id}",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": agent},
            ]}},
            {"label": SYNTHESIS_ASSERTION_LABEL, "data": asdict(claims)},
        ],
    }


def _reading_context(trust_anchors_pem: bytes | None) -> c2pa.Context:
    # remote_manifest_fetch off: an uploaded file must not make the reader fetch a URL of the uploader's choosing.
    settings: dict = {"verify": {"verify_trust": True, "remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors_pem:
        settings["trust"] = {"trust_anchors": trust_anchors_pem.decode("ascii")}
    return c2pa.Context.from_dict(settings)


def _report(store: dict) -> ProvenanceReport:
    manifest = store.get("manifests", {}).get(store.get("active_manifest") or "")
    if manifest is None:
        return ProvenanceReport("invalid", detail="the manifest store has no active manifest")
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failure_codes = tuple(entry["code"] for entry in results.get("failure", []))
    return ProvenanceReport(
        status=_status(store.get("validation_state"), set(failure_codes)),
        failure_codes=failure_codes,
        claims=_claims(manifest),
        digital_source_type=_created_source_type(manifest),
        signer=_signer_name(manifest.get("signature_info") or {}),
    )


def _status(validation_state: str | None, failure_codes: set[str]) -> ProvenanceStatus:
    if failure_codes - ASSET_HASH_MISMATCH_CODES - UNTRUSTED_SIGNER_CODES:
        return "invalid"
    if failure_codes & ASSET_HASH_MISMATCH_CODES:
        return "altered"
    # "Valid" without a failure code still means the chain was not checked against an anchor.
    return "valid" if validation_state == "Trusted" else "untrusted"


def _claims(manifest: dict) -> ProvenanceClaims | None:
    names = {field.name for field in fields(ProvenanceClaims)}
    for assertion in manifest.get("assertions", []):
        data = assertion.get("data")
        if assertion.get("label") == SYNTHESIS_ASSERTION_LABEL and isinstance(data, dict) and names <= data.keys():
            return ProvenanceClaims(**{name: str(data[name]) for name in names})
    return None


def _created_source_type(manifest: dict) -> str | None:
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions", []):
                if action.get("action") == "c2pa.created":
                    return action.get("digitalSourceType")
    return None


def _signer_name(signature_info: dict) -> str | None:
    if not signature_info.get("common_name"):
        return None
    return f"{signature_info['common_name']} (issued by {signature_info.get('issuer')})"


def _signing_algorithm(cert_chain_pem: bytes, private_key_pem: bytes) -> c2pa.C2paSigningAlg:
    try:
        certificate = x509.load_pem_x509_certificates(cert_chain_pem)[0]
        private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    except ValueError as error:
        raise ProvenanceKeyError(f"the C2PA certificate chain or private key is not PEM: {error}") from error
    signer_public_key = certificate.public_key().public_bytes(*_PUBLIC_KEY_DER)
    if private_key.public_key().public_bytes(*_PUBLIC_KEY_DER) != signer_public_key:
        raise ProvenanceKeyError("the C2PA private key does not belong to the chain's first (signer) certificate")
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return c2pa.C2paSigningAlg.ED25519
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and type(private_key.curve) in _ALGORITHM_BY_CURVE:
        return _ALGORITHM_BY_CURVE[type(private_key.curve)]
    raise ProvenanceKeyError(f"C2PA signing needs an EC P-256/384/521 or Ed25519 key, not {type(private_key).__name__}")

