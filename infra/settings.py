"""Runtime settings: environment variables with the `VOXFLOW_` prefix (or a `.env` file)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from processors.constants import REFINEMENT_STEPS
from processors.trust.spoken_phrase import DEFAULT_OPERATOR_NAME, DEFAULT_PHRASE_TEMPLATE, consent_phrase
from processors.trust.text_policy import (DEFAULT_DENY_PATTERNS, DenyPattern, InvalidDenyPatternError,
                                          deny_patterns_from_json)
from voxflow.broker_login import ANONYMOUS, BrokerSecurity, ScramMechanism, SecurityProtocol

EMBEDDED_BROKER_PORT = 19092
EMBEDDED_POSTGRES_PORT = 15432
EMBEDDED_S3_PORT = 19000
# The embedded S3 server (rclone) is started with these keys unless VOXFLOW_S3_ACCESS_KEY/_SECRET_KEY say others.
EMBEDDED_S3_ACCESS_KEY = "voxflow"
EMBEDDED_S3_SECRET_KEY = "voxflow-secret"

WORKER_BROKER_USER = "voxflow-worker"


class Settings(BaseSettings):
    """Defaults point at the embedded stack (`voxflow stack up`); override them for a real cluster."""

    model_config = SettingsConfigDict(env_prefix="VOXFLOW_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".voxflow")
    kafka_bootstrap: str = f"127.0.0.1:{EMBEDDED_BROKER_PORT}"
    postgres_dsn: str = f"postgresql://postgres@127.0.0.1:{EMBEDDED_POSTGRES_PORT}/voxflow"
    faust_transport: Literal["voxflow", "kafka"] = Field(
        default="voxflow", description="voxflow: Faust's Kafka transport with a 100 ms fetch wait; kafka: stock (1.5 s)")
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    consumer_group: str = "voxflow-worker"
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT: anonymous (the embedded broker's only kind); SASL_PLAINTEXT or "
                                         "SASL_SSL: a SCRAM login as kafka_username")
    kafka_sasl_mechanism: ScramMechanism = "SCRAM-SHA-512"
    kafka_username: str = Field(default=WORKER_BROKER_USER, min_length=1)
    kafka_password: SecretStr | None = Field(default=None, description="the SCRAM password (required with SASL)")
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle of the broker's certificate (SASL_SSL)")

    s3_endpoint: str = f"127.0.0.1:{EMBEDDED_S3_PORT}"
    s3_access_key: str = EMBEDDED_S3_ACCESS_KEY
    s3_secret_key: str = EMBEDDED_S3_SECRET_KEY
    s3_bucket: str = "voxflow"
    s3_secure: bool = False
    s3_region: str = "us-east-1"

    piper_voice: Path | None = Field(default=None, description="any Piper voice .onnx file for English (with base_voice piper/auto)")
    audit_key_hex: str | None = Field(default=None, description="32-byte audit-chain HMAC key, hex; generated under data_dir if unset")
    engine: Literal["kokoro", "espeak", "piper"] = Field(
        default="kokoro", description="default synthesis engine: Kokoro-82M (neural), or WORLD conversion of espeak-ng "
                                      "(fastest) or Piper; a request's `engine` overrides it")
    kokoro_threads: int = Field(default=2, ge=1, description="onnxruntime threads of the Kokoro engine")
    refinement_steps: int = Field(
        default=REFINEMENT_STEPS, ge=0, le=200, description="gradient steps of the refined voice's style fit; 0: instant voices only")
    stages: list[str] | None = Field(
        default=None, description="stages this worker runs (e.g. synthesis,watermark); all when unset")
    base_voice: Literal["espeak", "piper", "auto"] = Field(
        default="espeak", description="base TTS of WORLD conversion: espeak-ng, or Piper for English (GPL, optional extra)")
    watermark_key_hex: str | None = Field(default=None, description="32-byte key, hex; generated under data_dir if unset")
    c2pa_cert_chain: Path | None = Field(
        default=None, description="PEM certificate chain (signer first, then intermediates) that signs the C2PA "
                                  "manifest of every output; a development chain is generated under data_dir/c2pa if unset")
    c2pa_private_key: Path | None = Field(
        default=None, description="PEM private key of c2pa_cert_chain's signer certificate (EC P-256/384/521 or Ed25519)")
    c2pa_trust_anchors: Path | None = Field(
        default=None, description="PEM root certificates whose chains `voxflow analyze` and detection report as valid "
                                  "C2PA signers (e.g. the C2PA trust list); the development root if unset")
    worker_key_hex: str | None = Field(
        default=None, description="Ed25519 seed (32 bytes, hex) every worker signs its events with; the same on every "
                                  "worker of a deployment; generated under data_dir if unset")
    master_keys_dir: Path | None = Field(
        default=None, description="the master keys that wrap every voice's data key (one hex file each, `active` "
                                  "names the current one; `voxflow keys rotate` adds one); default data_dir/master-keys")
    tenant_keys_dir: Path | None = Field(
        default=None, description="where this machine keeps the signing keys of the tenants it produces events for "
                                  "(default data_dir/tenants)")
    synthesis_rate_limit: int = Field(default=30, ge=1, description="synthesis requests per tenant per window")
    synthesis_rate_window_s: float = Field(default=60.0, gt=0)
    voice_synthesis_rate_limit: int = Field(default=20, ge=1, description="synthesis requests per voice per window")
    voice_synthesis_rate_window_s: float = Field(default=60.0, gt=0)
    text_deny_patterns: list[DenyPattern] | None = Field(
        default=None, description='named patterns a synthesis text may not match, JSON [{"name": …, "regex": …}]; '
                                  "unset: the shipped defaults (one-time codes, officials asking for money or "
                                  "credentials); []: none")
    text_deny_patterns_file: Path | None = Field(
        default=None, description="a JSON file of such patterns, used instead of text_deny_patterns")
    consent_failure_limit: int = Field(default=3, ge=1, description="consent rejections per voice per window")
    require_spoken_consent: bool = Field(
        default=True, description="a consent must carry a recording of the owner speaking the consent phrase; "
                                  "false is for development only (the worker warns at start)")
    operator_name: str = Field(
        default=DEFAULT_OPERATOR_NAME, min_length=1,
        description="who runs this deployment: the operator the owner's spoken consent phrase allows")
    spoken_consent_phrase_template: str = Field(
        default=DEFAULT_PHRASE_TEMPLATE, description="the statement the owner signs and speaks; {operator} is "
                                                     "replaced by operator_name")
    spoken_consent_language: str = Field(
        default="en", description="the phrase's language: English is checked on Whisper's words, any other on "
                                  "hama's phonemes")
    transient_retry_s: float = Field(
        default=120.0, gt=0, description="how long a stage retries a message while Postgres, the object store or the "
                                         "broker is unavailable, before dead-lettering it (and failing its request)")
    request_deadline_s: float = Field(
        default=3600.0, gt=0, description="a synthesis with no result this long after its request is failed with the "
                                          "reason (checked every deadline_sweep_s by workers running the synthesis stage)")
    deadline_sweep_s: float = Field(default=30.0, gt=0)
    audit_checkpoint_interval_s: float = Field(
        default=60.0, gt=0, description="how often a worker running the audit stage signs a checkpoint of the chain's "
                                        "head, when it grew")
    web_enabled: bool = Field(default=True, description="serve /metrics (Prometheus) and /health from the worker")
    web_host: str = Field(default="127.0.0.1", description="address the worker's web server binds")
    web_port: int = Field(default=6066, ge=0, le=65535, description="port of the worker's web server; 0: an ephemeral one (logged)")

    def watermark_key(self) -> bytes:
        """The key that marks and detects voxflow output; generated once per data dir if not set."""
        return self._secret(self.watermark_key_hex, "watermark.key")

    def worker_key(self) -> bytes:
        return self._secret(self.worker_key_hex, "worker.key")

    @model_validator(mode="after")
    def _sasl_has_a_password(self) -> "Settings":
        if self.kafka_security_protocol != "PLAINTEXT" and not self.kafka_password:
            raise ValueError(f"VOXFLOW_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                             f"VOXFLOW_KAFKA_PASSWORD (the password of {self.kafka_username!r})")
        return self

    def broker_security(self) -> BrokerSecurity:
        """The login every broker client of this process uses (worker, CLI)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return ANONYMOUS
        return BrokerSecurity(self.kafka_security_protocol, self.kafka_sasl_mechanism, self.kafka_username,
                              self.kafka_password.get_secret_value(), self.kafka_ssl_cafile)

    def tenant_key_directory(self) -> Path:
        return self.tenant_keys_dir or self.data_dir / "tenants"

    def master_key_directory(self) -> Path:
        return self.master_keys_dir or self.data_dir / "master-keys"

    def deny_patterns(self) -> list[DenyPattern]:
        """The deny patterns synthesis texts are checked against: the file's, the setting's, or the defaults."""
        if self.text_deny_patterns_file is not None:
            try:
                document = self.text_deny_patterns_file.read_text()
            except OSError as error:
                raise InvalidDenyPatternError(f"cannot read deny patterns from {self.text_deny_patterns_file}: "
                                              f"{error}") from error
            return deny_patterns_from_json(document)
        if self.text_deny_patterns is not None:
            return list(self.text_deny_patterns)
        return list(DEFAULT_DENY_PATTERNS)

    def spoken_consent_phrase(self) -> str:
        """The phrase a statement must be (and its recording must say); ``InvalidConsentError`` for a bad template."""
        return consent_phrase(self.spoken_consent_phrase_template, self.operator_name)

    def audit_key(self) -> bytes:
        """HMAC key of the audit chain: without it, whoever can write the database cannot rewrite the log."""
        return self._secret(self.audit_key_hex, "audit.key")

    def _secret(self, configured_hex: str | None, filename: str) -> bytes:
        if configured_hex:
            return bytes.fromhex(configured_hex)
        key_file = self.data_dir / filename
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        return bytes.fromhex(key_file.read_text().strip())
