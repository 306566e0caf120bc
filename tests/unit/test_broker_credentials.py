"""Broker logins: anonymous by default everywhere, SCRAM when configured, refusals named, SCRAM users made
with RFC 5802 salted passwords."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import stat
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.conn import ScramAuthenticator
from aiokafka.errors import SaslAuthenticationFailed
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from infra import broker_users
from infra.broker_users import add_tenant_broker_user, tenant_broker_password
from infra.embedded import check_broker_security
from infra.errors import BrokerUserRefused, StackConfigError
from infra.kafka import AlterUserScramCredentialsRequest, salted_password
from pydantic import ValidationError

from infra.settings import WORKER_BROKER_USER, Settings
from streams.topics import ALL_TOPICS
from streams.worker import faust_credentials
from voxflow import ClientConfig, ClientConfigError
from voxflow.broker_login import ANONYMOUS, BrokerSecurity
from voxflow.envelopes import DEAD_LETTER_TOPIC, RESULTS_TOPIC, TOPIC_OF

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kafka"

SCRAM_LOGIN = BrokerSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "voxflow-worker", "a-password")


def settings(tmp_path, **overrides) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **overrides)


def test_the_default_login_is_anonymous_and_adds_no_client_options(tmp_path):
    assert settings(tmp_path).broker_security() is ANONYMOUS
    assert ANONYMOUS.client_options() == {}
    assert faust_credentials(ANONYMOUS) is None


def test_a_sasl_setting_logs_in_as_the_worker(tmp_path):
    security = settings(tmp_path, kafka_security_protocol="SASL_PLAINTEXT", kafka_password="pw").broker_security()
    assert (security.protocol, security.mechanism, security.username, security.password) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-512", WORKER_BROKER_USER, "pw")
    assert "pw" not in repr(security)


def test_a_sasl_setting_without_a_password_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="needs VOXFLOW_KAFKA_PASSWORD"):
        settings(tmp_path, kafka_security_protocol="SASL_PLAINTEXT")


def test_a_configured_password_is_used_as_given(tmp_path):
    security = settings(tmp_path, kafka_security_protocol="SASL_PLAINTEXT", kafka_username="ops",
                        kafka_password="given", kafka_sasl_mechanism="SCRAM-SHA-256").broker_security()
    assert security.client_options() == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                                         "sasl_plain_username": "ops", "sasl_plain_password": "given"}


def test_aiokafka_takes_the_options_of_a_scram_login():
    async def construct() -> None:
        AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **SCRAM_LOGIN.client_options())

    asyncio.run(construct())


def test_a_sasl_ssl_login_carries_a_tls_context():
    options = BrokerSecurity("SASL_SSL", "SCRAM-SHA-512", "u", "p").client_options()
    assert options["security_protocol"] == "SASL_SSL" and options["ssl_context"] is not None


@pytest.mark.parametrize("login", [dict(protocol="SASL_PLAINTEXT"), dict(protocol="SASL_PLAINTEXT", username="u"),
                                   dict(protocol="SSL"), dict(mechanism="PLAIN")])
def test_a_login_that_cannot_work_is_refused_on_creation(login):
    with pytest.raises(ClientConfigError):
        BrokerSecurity(**login)


def test_faust_gets_the_same_login_as_the_other_clients():
    credentials = faust_credentials(SCRAM_LOGIN)
    app = faust.App("voxflow-test-credentials", broker="kafka://127.0.0.1:1", broker_credentials=credentials)
    assert dict(credentials_to_aiokafka_auth(app.conf.broker_credentials)) == {**SCRAM_LOGIN.client_options(),
                                                                               "ssl_context": None}


def test_the_embedded_stack_refuses_broker_logins(tmp_path):
    check_broker_security(settings(tmp_path))
    with pytest.raises(StackConfigError, match="cannot keep SCRAM users"):
        check_broker_security(settings(tmp_path, kafka_security_protocol="SASL_PLAINTEXT", kafka_password="pw"))


def test_a_scram_server_error_is_a_refused_login():
    authenticator = ScramAuthenticator(loop=None, sasl_plain_password="p", sasl_plain_username="u",
                                       sasl_mechanism="SCRAM-SHA-256")
    with pytest.raises(SaslAuthenticationFailed, match="unknown-user"):
        authenticator.process_server_final_message("e=unknown-user")


def test_salted_password_matches_rfc_7677():
    """RFC 7677's SCRAM-SHA-256 exchange: the client proof and server signature follow from the salted password."""
    client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    client_final_bare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = f"{client_first_bare},{server_first},{client_final_bare}".encode()
    salted = salted_password("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096, "SCRAM-SHA-256")

    client_key = hmac.digest(salted, b"Client Key", "sha256")
    client_signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, client_signature))
    server_signature = hmac.digest(hmac.digest(salted, b"Server Key", "sha256"), auth_message, "sha256")
    assert base64.b64encode(proof).decode() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_the_scram_user_request_encodes_as_alter_user_scram_credentials_v0():
    request = AlterUserScramCredentialsRequest([("tenant-a", 2, 8192, b"salt", b"salted", {})]).prepare({51: (0, 0)})
    assert (request.API_KEY, request.API_VERSION, request.FLEXIBLE_VERSION) == (51, 0, True)
    # compact arrays and strings carry length + 1: no deletions (1), one upsertion (2), "tenant-a" (9)
    assert request.encode() == (b"\x01" + b"\x02" + b"\x09tenant-a" + b"\x02" + (8192).to_bytes(4, "big")
                                + b"\x05salt" + b"\x07salted" + b"\x00" + b"\x00")


def test_a_tenant_broker_password_is_made_once_and_kept_private(tmp_path):
    path, password = tenant_broker_password(tmp_path, "acme")
    assert path == tmp_path / "acme.broker-password" and len(password) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tenant_broker_password(tmp_path, "acme") == (path, password)
    with pytest.raises(BrokerUserRefused):
        tenant_broker_password(tmp_path, "../acme")


def test_a_tenant_broker_user_is_set_with_the_operators_login(tmp_path, monkeypatch):
    calls = []

    async def record_upsert(bootstrap, username, password, *, mechanism, security):
        calls.append((bootstrap, username, password, mechanism, security))

    monkeypatch.setattr(broker_users, "upsert_scram_user", record_upsert)
    operator = settings(tmp_path, kafka_security_protocol="SASL_PLAINTEXT", kafka_username="admin",
                        kafka_password="admin-pw", kafka_sasl_mechanism="SCRAM-SHA-256", kafka_bootstrap="kafka:9092")
    user = asyncio.run(add_tenant_broker_user(operator, "acme"))
    assert user.username == "tenant-acme" and user.password_file == tmp_path / "tenants" / "acme.broker-password"
    assert calls == [("kafka:9092", "tenant-acme", user.password_file.read_text(), "SCRAM-SHA-256",
                      operator.broker_security())]


def test_the_client_reads_the_tenant_login_from_the_environment(tmp_path):
    (tmp_path / "acme.key").write_text("11" * 32)
    environment = {"VOXFLOW_TENANT_ID": "acme", "VOXFLOW_TENANT_KEYS_DIR": str(tmp_path)}
    assert ClientConfig.from_environment(environment).broker_security is ANONYMOUS

    environment["VOXFLOW_KAFKA_SECURITY_PROTOCOL"] = "SASL_PLAINTEXT"
    with pytest.raises(ClientConfigError, match="acme.broker-password"):
        ClientConfig.from_environment(environment)
    _path, password = tenant_broker_password(tmp_path, "acme")
    security = ClientConfig.from_environment(environment).broker_security
    assert (security.username, security.password) == ("tenant-acme", password)


def test_a_tenant_acl_allows_writing_its_request_topics_and_reading_its_result_topics():
    grants = (DEPLOY / "add-tenant.sh").read_text().split("kafka_acls --add")[1:]
    write, read = ({topic for topic in re.findall(r"--topic (\S+)", grant)} for grant in grants)
    assert "--operation Write" in grants[0] and "--operation Read" in grants[1]
    assert write == set(TOPIC_OF.values())
    assert read == {RESULTS_TOPIC, DEAD_LETTER_TOPIC}


def test_the_worker_acl_prefix_covers_every_topic():
    prefix = re.search(r"--resource-pattern-type prefixed --topic (\S+)", (DEPLOY / "init.sh").read_text()).group(1)
    assert all(topic.startswith(prefix) for topic in ALL_TOPICS)
