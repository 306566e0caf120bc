"""How a client logs in to Kafka: anonymously, or as a SCRAM user over SASL; and telling a refused login
from an unreachable broker.

Shared by the client package and the worker (``infra.settings`` builds the worker's from its settings).
Importing this module also makes aiokafka report a SCRAM server error as the refused login it is (below).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from aiokafka.conn import ScramAuthenticator, collect_hosts, create_conn
from aiokafka.errors import (AuthenticationFailedError, IllegalSaslStateError, KafkaError, SaslAuthenticationFailed,
                             UnsupportedSaslMechanismError)

from voxflow.errors import ClientConfigError

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"]
ScramMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512"]
# A tenant's broker principal is this prefix and its id, so no tenant can be named like the worker.
TENANT_BROKER_USER_PREFIX = "tenant-"
LOGIN_TIMEOUT_MS = 15000
LOGIN_REFUSALS = (SaslAuthenticationFailed, UnsupportedSaslMechanismError, IllegalSaslStateError,
                  AuthenticationFailedError)


def tenant_broker_user(tenant_id: str) -> str:
    return f"{TENANT_BROKER_USER_PREFIX}{tenant_id}"


def tenant_broker_password_file(tenant_key_directory: Path, tenant_id: str) -> Path:
    """Beside the tenant's signing key: what `voxflow tenant add` writes and the client reads."""
    return tenant_key_directory / f"{tenant_id}.broker-password"


@dataclass(frozen=True)
class BrokerSecurity:
    """A broker login: anonymous (PLAINTEXT), or a SCRAM user over SASL_PLAINTEXT or SASL_SSL.

    ``ssl_cafile`` (SASL_SSL only) is the CA bundle that signs the broker's certificate; the system's if None.
    """

    protocol: SecurityProtocol = "PLAINTEXT"
    mechanism: ScramMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol not in get_args(SecurityProtocol):
            raise ClientConfigError(f"security protocol {self.protocol!r} is none of {get_args(SecurityProtocol)}")
        if self.mechanism not in get_args(ScramMechanism):
            raise ClientConfigError(f"SASL mechanism {self.mechanism!r} is none of {get_args(ScramMechanism)}")
        if self.authenticates and not (self.username and self.password):
            raise ClientConfigError(f"{self.protocol} needs a username and a password")

    @property
    def authenticates(self) -> bool:
        return self.protocol != "PLAINTEXT"

    def client_options(self) -> dict[str, object]:
        """Keyword arguments for aiokafka's producer, consumer, admin and client; none for an anonymous login."""
        if not self.authenticates:
            return {}
        options: dict[str, object] = {"security_protocol": self.protocol, "sasl_mechanism": self.mechanism,
                                      "sasl_plain_username": self.username, "sasl_plain_password": self.password}
        if self.protocol == "SASL_SSL":
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self):
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)


ANONYMOUS = BrokerSecurity()


async def login_refusal(bootstrap: str, security: BrokerSecurity) -> KafkaError | None:
    """The error the first bootstrap broker answers ``security``'s login with; None when it accepts it or
    cannot be reached. aiokafka's clients report a refused login as a failed bootstrap, like an
    unreachable broker: one more login tells the two apart."""
    if not security.authenticates:
        return None
    host, port, _ = collect_hosts(bootstrap, randomize=False)[0]
    try:
        connection = await create_conn(host, port, request_timeout_ms=LOGIN_TIMEOUT_MS, **security.client_options())
    except LOGIN_REFUSALS as error:
        return error
    except (OSError, KafkaError, asyncio.TimeoutError):
        return None
    connection.close()
    return None


def _refuse_on_scram_server_error(authenticator: ScramAuthenticator, server_final: str) -> None:
    """RFC 5802 lets the server's last SCRAM message be an error (``e=unknown-user`` is Tansu's answer to a
    refused login). aiokafka reads it as a verifier and fails with a KeyError no caller expects; here it is
    the login refusal it is."""
    if server_final.startswith("e="):
        raise SaslAuthenticationFailed(f"SCRAM login refused: {server_final[2:]}")
    _process_scram_verifier(authenticator, server_final)


_process_scram_verifier = ScramAuthenticator.process_server_final_message
ScramAuthenticator.process_server_final_message = _refuse_on_scram_server_error
