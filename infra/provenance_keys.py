"""The C2PA signing identity: the operator's certificate chain, or a development chain made once per data dir.

The development chain is an ES256 root and one signer certificate it issued, under data_dir/c2pa.
Only the signer's key is kept (owner-only); the root's key is thrown away once it has issued the
signer, so nobody can mint further certificates under it. Readers elsewhere report its files as
"untrusted" unless they configure its root (dev-root.pem) as a trust anchor.
"""

from __future__ import annotations

import datetime
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.errors import ProvenanceKeysError
from infra.settings import Settings
from processors.trust.provenance import ProvenanceSigner

DEVELOPMENT_CHAIN_DIR = "c2pa"
DEVELOPMENT_ROOT_FILE = "dev-root.pem"
DEVELOPMENT_CHAIN_FILE = "dev-chain.pem"
DEVELOPMENT_KEY_FILE = "dev-signer.key"
ROOT_VALIDITY_DAYS = 20 * 365
# Without a timestamp authority, readers check the signer certificate against today's date: a short-lived
# development certificate would turn every older output "invalid".
SIGNER_VALIDITY_DAYS = 10 * 365


@dataclass(frozen=True)
class ProvenanceKeys:
    signer: ProvenanceSigner
    trust_anchors_pem: bytes | None


def load_provenance_keys(settings: Settings) -> ProvenanceKeys:
    """The signer of every output's manifest and the roots readers trust; makes the development chain if needed."""
    if settings.c2pa_cert_chain or settings.c2pa_private_key:
        if not (settings.c2pa_cert_chain and settings.c2pa_private_key):
            raise ProvenanceKeysError("set both VOXFLOW_C2PA_CERT_CHAIN and VOXFLOW_C2PA_PRIVATE_KEY, or neither")
        signer = ProvenanceSigner(_read(settings.c2pa_cert_chain), _read(settings.c2pa_private_key))
    else:
        directory = settings.data_dir / DEVELOPMENT_CHAIN_DIR
        _ensure_development_chain(directory)
        signer = ProvenanceSigner(_read(directory / DEVELOPMENT_CHAIN_FILE), _read(directory / DEVELOPMENT_KEY_FILE))
    return ProvenanceKeys(signer, provenance_trust_anchors(settings))


def provenance_trust_anchors(settings: Settings) -> bytes | None:
    """Roots whose signers read as valid: the configured ones, else this data dir's development root (if made)."""
    if settings.c2pa_trust_anchors:
        return _read(settings.c2pa_trust_anchors)
    if settings.c2pa_cert_chain:
        # A production signer must not leave an old development key trusted beside it.
        return None
    root = settings.data_dir / DEVELOPMENT_CHAIN_DIR / DEVELOPMENT_ROOT_FILE
    return root.read_bytes() if root.exists() else None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ProvenanceKeysError(f"cannot read C2PA key material {path}: {error}") from error


def _ensure_development_chain(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    names = (DEVELOPMENT_ROOT_FILE, DEVELOPMENT_CHAIN_FILE, DEVELOPMENT_KEY_FILE)
    # Workers sharing a data dir start together: the lock keeps them from writing one chain's certificate
    # beside another's key.
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((directory / name).exists() for name in names):
            return
        root_pem, chain_pem, key_pem = _development_chain_pems()
        _write(directory / DEVELOPMENT_KEY_FILE, key_pem, 0o600)
        _write(directory / DEVELOPMENT_CHAIN_FILE, chain_pem, 0o644)
        _write(directory / DEVELOPMENT_ROOT_FILE, root_pem, 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    path.chmod(mode)


def _development_chain_pems() -> tuple[bytes, bytes, bytes]:
    """(root certificate, signer certificate + root, signer's PKCS#8 key), all PEM."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("voxflow development root")
    root = (
        _certificate_builder(root_name, root_name, root_key, now, ROOT_VALIDITY_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    # The C2PA certificate profile: an end entity that may sign (digitalSignature) with an EKU it allows
    # (emailProtection) and key ids that tie it to its issuer.
    signer = (
        _certificate_builder(_name("voxflow development signer"), root_name, signer_key, now, SIGNER_VALIDITY_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    root_pem = root.public_bytes(serialization.Encoding.PEM)
    key_pem = signer_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return root_pem, signer.public_bytes(serialization.Encoding.PEM) + root_pem, key_pem


def _certificate_builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
                         now: datetime.datetime, validity_days: int) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=validity_days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voxflow development"),
    ])


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=crl_sign,
        encipher_only=False, decipher_only=False,
    )
