"""The analysis stage ends every request, refusing what the tenant may not analyse with the reason, and its report
reaches only the tenant that asked."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.repositories import TenantKey
from processors.trust.signing import EventSigner
from schemas.events import AnalysisRequested
from streams.context import StageContext
from streams.delivery import DeliveryRefused, OutputDelivery
from streams.handlers.analysis import analysis_report_key, analyze_object, fail_analysis
from tests.unit.fakes import InMemoryStore

NOW = 1_800_000_000
ACME, EVIL = EventSigner(Ed25519PrivateKey.generate()), EventSigner(Ed25519PrivateKey.generate())


class ProfilesOfOneTenant:
    """Embeddings of acme's voices only, as the real repository answers a tenant-scoped lookup."""

    async def latest_embedding(self, *, voice_id, tenant_id):
        return [0.1] * 256 if (voice_id, tenant_id) == ("narrator", "acme") else None


class Keys:
    async def get(self, *, key_id):
        tenants = {ACME.key_id: (ACME, "acme"), EVIL.key_id: (EVIL, "evil")}
        signer, tenant = tenants[key_id]
        return TenantKey(key_id, tenant, signer.public_key, datetime.now(timezone.utc), None)


def context_with(store: InMemoryStore) -> StageContext:
    return StageContext(repos=SimpleNamespace(profiles=ProfilesOfOneTenant()), store=store, watermark_key=b"k" * 32)


def request(**fields) -> AnalysisRequested:
    return AnalysisRequested(tenant_id="evil", voice_id="snooper", object_key="checks/evil/take.wav", **fields)


async def test_a_missing_recording_ends_the_request_with_the_reason():
    [outcome] = await analyze_object(request(), context_with(InMemoryStore()))

    assert outcome.type == "analysis.failed" and "no object at key 'checks/evil/take.wav'" in outcome.reason


async def test_another_tenants_voice_is_refused_as_if_it_did_not_exist():
    store = InMemoryStore({"checks/evil/take.wav": b"RIFF"})

    [outcome] = await analyze_object(request(compare_voice_id="narrator"), context_with(store))

    assert outcome.type == "analysis.failed"
    assert outcome.reason.startswith("voice 'narrator' is not a voice of tenant 'evil' with a profile")


async def test_a_request_the_stage_gives_up_on_still_ends():
    event = request()

    [outcome] = await fail_analysis(event, context_with(InMemoryStore()), "worker crashed twice")

    assert (outcome.type, outcome.analysis_id, outcome.reason) == ("analysis.failed", event.analysis_id,
                                                                   "worker crashed twice")


def report_delivery(analysis_id) -> OutputDelivery:
    store = InMemoryStore({analysis_report_key("acme", analysis_id): b"<!DOCTYPE html>"})
    return OutputDelivery(None, Keys(), store, clock=lambda: NOW)


async def fetch_report(service: OutputDelivery, analysis_id, signer: EventSigner) -> bytes:
    path = f"/v1/analyses/{analysis_id}/report"
    return await service.analysis_report(str(analysis_id), path, signer.request_headers("GET", path, NOW))


async def test_the_tenant_that_asked_gets_its_report():
    analysis_id = uuid.uuid4()

    assert await fetch_report(report_delivery(analysis_id), analysis_id, ACME) == b"<!DOCTYPE html>"


async def test_another_tenant_finds_no_report_under_the_same_id():
    analysis_id = uuid.uuid4()

    with pytest.raises(DeliveryRefused, match="no report") as refused:
        await fetch_report(report_delivery(analysis_id), analysis_id, EVIL)

    assert refused.value.status == 404
