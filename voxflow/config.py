"""The client's configuration: where the broker, object store and delivery endpoint are, and whose key signs."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from processors.trust.consent import ED25519_PRIVATE_KEY_BYTES, ED25519_PUBLIC_KEY_BYTES
from voxflow.broker_login import ANONYMOUS, BrokerSecurity, tenant_broker_password_file, tenant_broker_user
from voxflow.errors import ClientConfigError

# The embedded stack's defaults (`voxflow stack up`), as the CLI's settings have them.
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_S3_ENDPOINT = "127.0.0.1:19000"
DEFAULT_S3_ACCESS_KEY = "voxflow"
DEFAULT_S3_SECRET_KEY = "voxflow-secret"
DEFAULT_S3_BUCKET = "voxflow"
DEFAULT_S3_REGION = "us-east-1"
DEFAULT_TENANT_ID = "default"
DEFAULT_DATA_DIR = ".voxflow"
DEFAULT_WEB_HOST = "127.0.0.1"
DEFAULT_WEB_PORT = 6066
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_BROKER_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ClientConfig:
    """``tenant_key`` is the tenant's raw 32-byte Ed25519 seed (``read_key_file`` reads the hex files
    `voxflow tenant add` writes); its public key must be registered with the deployment. When
    ``worker_public_key`` (raw 32 bytes) is given, result events not signed by it are ignored.
    ``default_timeout_s`` bounds each wait and download unless the call says otherwise;
    ``broker_timeout_s`` bounds connecting to Kafka and each send's acknowledgement; ``broker_security`` is
    the tenant's broker login (anonymous by default)."""

    tenant_id: str
    tenant_key: bytes = field(repr=False)
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    s3_endpoint: str = DEFAULT_S3_ENDPOINT
    s3_access_key: str = DEFAULT_S3_ACCESS_KEY
    s3_secret_key: str = field(default=DEFAULT_S3_SECRET_KEY, repr=False)
    s3_bucket: str = DEFAULT_S3_BUCKET
    s3_secure: bool = False
    s3_region: str = DEFAULT_S3_REGION
    delivery_url: str = f"http://{DEFAULT_WEB_HOST}:{DEFAULT_WEB_PORT}"
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    broker_timeout_s: float = DEFAULT_BROKER_TIMEOUT_S
    worker_public_key: bytes | None = None
    broker_security: BrokerSecurity = ANONYMOUS

    def __post_init__(self) -> None:
        if not self.tenant_id:
            raise ClientConfigError("tenant_id is empty")
        if not isinstance(self.tenant_key, bytes) or len(self.tenant_key) != ED25519_PRIVATE_KEY_BYTES:
            raise ClientConfigError(f"tenant_key must be the {ED25519_PRIVATE_KEY_BYTES}-byte Ed25519 seed")
        if self.worker_public_key is not None and len(self.worker_public_key) != ED25519_PUBLIC_KEY_BYTES:
            raise ClientConfigError(f"worker_public_key must be the raw {ED25519_PUBLIC_KEY_BYTES}-byte Ed25519 key")
        if self.default_timeout_s <= 0 or self.broker_timeout_s <= 0:
            raise ClientConfigError("timeouts must be positive")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "ClientConfig":
        """From the ``VOXFLOW_*`` variables the CLI reads (no ``.env`` file), plus the client's own:
        ``VOXFLOW_TENANT_ID``, ``VOXFLOW_TENANT_KEY_FILE`` (default ``<tenant keys dir>/<tenant>.key``),
        ``VOXFLOW_DELIVERY_URL`` (default ``http://<web host>:<web port>``), ``VOXFLOW_WORKER_PUBLIC_KEY``
        (base64), ``VOXFLOW_CLIENT_TIMEOUT_S``, and the broker login: ``VOXFLOW_KAFKA_SECURITY_PROTOCOL``,
        ``VOXFLOW_KAFKA_SASL_MECHANISM``, ``VOXFLOW_KAFKA_USERNAME`` (default ``tenant-<tenant>``),
        ``VOXFLOW_KAFKA_PASSWORD`` (default: the ``<tenant keys dir>/<tenant>.broker-password`` file that
        `voxflow tenant add` writes) and ``VOXFLOW_KAFKA_SSL_CAFILE``."""
        env = os.environ if environ is None else environ
        tenant_id = env.get("VOXFLOW_TENANT_ID", DEFAULT_TENANT_ID)
        key_directory = Path(env.get("VOXFLOW_TENANT_KEYS_DIR")
                             or Path(env.get("VOXFLOW_DATA_DIR", DEFAULT_DATA_DIR)) / "tenants")
        web_address = f"{env.get('VOXFLOW_WEB_HOST', DEFAULT_WEB_HOST)}:{env.get('VOXFLOW_WEB_PORT', DEFAULT_WEB_PORT)}"
        worker_key = env.get("VOXFLOW_WORKER_PUBLIC_KEY")
        return cls(
            tenant_id=tenant_id,
            tenant_key=read_key_file(Path(env.get("VOXFLOW_TENANT_KEY_FILE") or key_directory / f"{tenant_id}.key")),
            kafka_bootstrap=env.get("VOXFLOW_KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP),
            s3_endpoint=env.get("VOXFLOW_S3_ENDPOINT", DEFAULT_S3_ENDPOINT),
            s3_access_key=env.get("VOXFLOW_S3_ACCESS_KEY", DEFAULT_S3_ACCESS_KEY),
            s3_secret_key=env.get("VOXFLOW_S3_SECRET_KEY", DEFAULT_S3_SECRET_KEY),
            s3_bucket=env.get("VOXFLOW_S3_BUCKET", DEFAULT_S3_BUCKET),
            s3_secure=_parsed(bool, env, "VOXFLOW_S3_SECURE", False),
            s3_region=env.get("VOXFLOW_S3_REGION", DEFAULT_S3_REGION),
            delivery_url=env.get("VOXFLOW_DELIVERY_URL", f"http://{web_address}"),
            default_timeout_s=_parsed(float, env, "VOXFLOW_CLIENT_TIMEOUT_S", DEFAULT_TIMEOUT_S),
            worker_public_key=_base64_key(worker_key, "VOXFLOW_WORKER_PUBLIC_KEY") if worker_key else None,
            broker_security=_broker_security(env, tenant_id, key_directory),
        )


def read_key_file(path: Path) -> bytes:
    """The 32-byte seed in a key file of 64 hex digits (what `voxflow tenant add` writes)."""
    try:
        text = path.read_text().strip()
    except OSError as error:
        raise ClientConfigError(f"cannot read the tenant key {path}: {error.strerror or error}") from error
    try:
        seed = bytes.fromhex(text)
    except ValueError as error:
        raise ClientConfigError(f"{path} does not hold a hex key") from error
    if len(seed) != ED25519_PRIVATE_KEY_BYTES:
        raise ClientConfigError(f"{path} holds {len(seed)} bytes, not a {ED25519_PRIVATE_KEY_BYTES}-byte Ed25519 seed")
    return seed


def _broker_security(env: Mapping[str, str], tenant_id: str, key_directory: Path) -> BrokerSecurity:
    protocol = env.get("VOXFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return ANONYMOUS
    password = (env.get("VOXFLOW_KAFKA_PASSWORD")
                or _read_password(tenant_broker_password_file(key_directory, tenant_id)))
    cafile = env.get("VOXFLOW_KAFKA_SSL_CAFILE")
    return BrokerSecurity(protocol, env.get("VOXFLOW_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                          env.get("VOXFLOW_KAFKA_USERNAME") or tenant_broker_user(tenant_id), password,
                          Path(cafile) if cafile else None)


def _read_password(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as error:
        raise ClientConfigError(f"no VOXFLOW_KAFKA_PASSWORD, and cannot read the broker password {path}: "
                                f"{error.strerror or error}") from error


def _parsed(kind: type, env: Mapping[str, str], name: str, default):
    if name not in env:
        return default
    try:
        return TypeAdapter(kind).validate_python(env[name])
    except ValidationError as error:
        raise ClientConfigError(f"{name}={env[name]!r} is not a {kind.__name__}") from error


def _base64_key(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ClientConfigError(f"{name} is not base64") from error
