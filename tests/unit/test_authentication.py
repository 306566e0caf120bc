"""Who may produce what: tenants sign their upstream events, only workers sign the rest."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.repositories import TenantKey
from processors.trust.signing import EventSigner
from schemas.events import AuditRecorded, SampleUploaded, SynthesisFailed, SynthesisRequested
from streams.authentication import ProducerAuthenticator
from streams.errors import Unauthenticated
from streams.processing import MessageLocation, StageProcessor
from streams.stages import Stage
from tests.unit.test_processing import NO_WAITING, FakeInbox, RecordingPublisher

WORKER = EventSigner(Ed25519PrivateKey.generate())
ACME = EventSigner(Ed25519PrivateKey.generate())
STRANGER = EventSigner(Ed25519PrivateKey.generate())


class FakeTenantKeys:
    def __init__(self, *registered: TenantKey):
        self.keys = {key.key_id: key for key in registered}

    async def get(self, *, key_id):
        return self.keys.get(key_id)


def registered(signer: EventSigner, tenant_id: str, *, revoked: bool = False) -> TenantKey:
    now = datetime.now(timezone.utc)
    return TenantKey(signer.key_id, tenant_id, signer.public_key, now, now if revoked else None)


def authenticator(*registered_keys: TenantKey) -> ProducerAuthenticator:
    return ProducerAuthenticator(FakeTenantKeys(*registered_keys), WORKER.public_key)


def upload(tenant_id: str = "acme") -> SampleUploaded:
    return SampleUploaded(tenant_id=tenant_id, voice_id="v", object_key=f"uploads/{tenant_id}/v/a.wav", size_bytes=3)


def audit_record() -> AuditRecorded:
    return upload().follow_up(AuditRecorded, stage="ingest", action="sample.uploaded", decision="accepted",
                              subject_event_id=uuid.uuid4())


async def refusal(event, signer: EventSigner | None, *keys: TenantKey, value: bytes | None = None) -> str:
    raw = event.to_bytes()
    headers = signer.headers_for(raw) if signer else []
    with pytest.raises(Unauthenticated) as refused:
        await authenticator(*keys).authenticate(event, raw if value is None else value, headers)
    return str(refused.value)


async def test_a_tenants_upload_signed_with_its_registered_key_is_accepted():
    event = upload()
    await authenticator(registered(ACME, "acme")).authenticate(event, event.to_bytes(), ACME.headers_for(event.to_bytes()))


async def test_an_unsigned_event_is_refused():
    assert "unsigned" in await refusal(upload(), None, registered(ACME, "acme"))


async def test_a_key_nobody_registered_is_refused():
    assert "no operator registered" in await refusal(upload(), STRANGER, registered(ACME, "acme"))


async def test_one_tenant_cannot_sign_for_another():
    assert "signed by tenant 'evil' for tenant 'acme'" in await refusal(upload("acme"), STRANGER, registered(STRANGER, "evil"))


async def test_bytes_changed_after_signing_are_refused_as_forged():
    event = upload()
    altered = event.to_bytes().replace(b"a.wav", b"b.wav")
    assert "forged or altered" in await refusal(event, ACME, registered(ACME, "acme"), value=altered)


async def test_a_revoked_tenant_key_is_refused():
    assert "revoked" in await refusal(upload(), ACME, registered(ACME, "acme", revoked=True))


async def test_a_tenant_cannot_forge_an_audit_record():
    assert "may only be sent by a voxflow worker" in await refusal(audit_record(), ACME, registered(ACME, "acme"))


async def test_a_worker_signed_audit_record_is_accepted():
    record = audit_record()
    await authenticator().authenticate(record, record.to_bytes(), WORKER.headers_for(record.to_bytes()))


async def test_an_unauthenticated_request_is_dead_lettered_and_nobodys_request_is_ended():
    ended = []

    async def handler(event, context):
        raise AssertionError("an unauthenticated event reached its handler")

    async def end_request(event, context, reason):
        ended.append(event)
        return [event.follow_up(SynthesisFailed, synthesis_id=event.synthesis_id, reason=reason)]

    publisher = RecordingPublisher()
    context = type("Context", (), {"repos": type("Repos", (), {"inbox": FakeInbox()})()})()
    processor = StageProcessor(context, publisher, authenticator(registered(ACME, "acme")), policy=NO_WAITING)
    stage = Stage("synthesis", "voxflow.synthesis", {SynthesisRequested: handler}, {SynthesisRequested: end_request})
    request = SynthesisRequested(tenant_id="acme", voice_id="v", text="Hi.", purpose="narration")

    await processor.process(stage, request.to_bytes(), MessageLocation("voxflow.synthesis", 0, 1),
                            STRANGER.headers_for(request.to_bytes()))

    dead = [e for e in publisher.events if e.type == "dead_letter"]
    assert [d.reason for d in dead] == ["Unauthenticated"] and "no operator registered" in dead[0].error
    assert ended == [] and "synthesis.failed" not in publisher.types()
