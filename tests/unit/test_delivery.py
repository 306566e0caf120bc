"""Output delivery refuses every request but the owning tenant's, signed just now, for a completed output."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.records import ErasedOutput
from infra.repositories import TenantKey
from processors.trust.signing import EventSigner
from streams.delivery import DeliveryRefused, OutputDelivery
from tests.unit.fakes import InMemoryStore, a_synthesis

NOW = 1_800_000_000
ACME, EVIL = EventSigner(Ed25519PrivateKey.generate()), EventSigner(Ed25519PrivateKey.generate())


class Keys:
    def __init__(self, *registered: tuple[EventSigner, str, datetime | None]):
        self.keys = {signer.key_id: TenantKey(signer.key_id, tenant, signer.public_key, datetime.now(timezone.utc),
                                              revoked) for signer, tenant, revoked in registered}

    async def get(self, *, key_id):
        return self.keys.get(key_id)


class Syntheses:
    def __init__(self, rows):
        self.rows = rows

    async def get(self, *, synthesis_id):
        return self.rows.get(synthesis_id)


@pytest.fixture
def output():
    synthesis_id = uuid.uuid4()
    return synthesis_id, a_synthesis(synthesis_id, tenant_id="acme", status="completed",
                                      object_key=f"syntheses/acme/v/{synthesis_id}/output.wav")


def delivery(rows, keys=None, store=None):
    keys = keys or Keys((ACME, "acme", None), (EVIL, "evil", None))
    return OutputDelivery(Syntheses(rows), keys, store or InMemoryStore(), clock=lambda: NOW)


def path_of(synthesis_id) -> str:
    return f"/v1/syntheses/{synthesis_id}/audio"


async def fetch(service, synthesis_id, signer=ACME, *, timestamp=NOW, path=None):
    headers = signer.request_headers("GET", path or path_of(synthesis_id), timestamp)
    return await service.synthesis_audio(str(synthesis_id), path_of(synthesis_id), headers)


async def test_the_owning_tenant_gets_its_audio(output):
    synthesis_id, row = output
    store = InMemoryStore({row.object_key: b"RIFF..."})

    assert await fetch(delivery({synthesis_id: row}, store=store), synthesis_id) == b"RIFF..."


@pytest.mark.parametrize(("case", "status", "words"), [
    ("another tenant", 403, "another tenant"),
    ("stale", 401, "300 s"),
    ("other path", 401, "does not match"),
    ("unsigned", 401, "unsigned"),
    ("revoked key", 401, "unrevoked"),
    ("not completed", 404, "accepted"),
    ("unknown", 404, "no synthesis"),
])
async def test_every_other_request_is_refused_saying_why(output, case, status, words):
    synthesis_id, row = output
    rows = {synthesis_id: replace(row, status="accepted") if case == "not completed" else row}
    keys = Keys((ACME, "acme", datetime.now(timezone.utc))) if case == "revoked key" else None
    service = delivery({} if case == "unknown" else rows, keys)

    with pytest.raises(DeliveryRefused) as refused:
        if case == "unsigned":
            await service.synthesis_audio(str(synthesis_id), path_of(synthesis_id), {})
        else:
            await fetch(service, synthesis_id, EVIL if case == "another tenant" else ACME,
                        timestamp=NOW - 301 if case == "stale" else NOW,
                        path=path_of(uuid.uuid4()) if case == "other path" else None)

    assert refused.value.status == status and words in str(refused.value)


class Erasures:
    def __init__(self, *erased: ErasedOutput):
        self.erased = {output.output_id: output for output in erased}

    async def erased_output(self, *, output_id):
        return self.erased.get(output_id)


async def test_an_output_erased_with_its_voice_is_gone_for_its_tenant_and_unknown_to_others():
    synthesis_id = uuid.uuid4()
    erasures = Erasures(ErasedOutput(synthesis_id, "synthesis", "acme", datetime(2026, 12, 1, tzinfo=timezone.utc)))
    service = OutputDelivery(Syntheses({}), Keys((ACME, "acme", None), (EVIL, "evil", None)), InMemoryStore(),
                             clock=lambda: NOW, erased=erasures)

    with pytest.raises(DeliveryRefused) as owner:
        await fetch(service, synthesis_id, ACME)
    with pytest.raises(DeliveryRefused) as stranger:
        await fetch(service, synthesis_id, EVIL)

    assert owner.value.status == 410 and "erased with its voice at 2026-12-01" in str(owner.value)
    assert stranger.value.status == 404 and "erased" not in str(stranger.value)


async def test_over_http_the_owner_gets_the_wav_and_another_tenant_a_json_refusal(output):
    from aiohttp.test_utils import TestClient, TestServer

    from streams.metrics import WorkerMetrics
    from streams.web import create_web_app

    synthesis_id, row = output
    service = OutputDelivery(Syntheses({synthesis_id: row}), Keys((ACME, "acme", None), (EVIL, "evil", None)),
                             InMemoryStore({row.object_key: b"RIFF..."}))
    path = path_of(synthesis_id)
    async with TestClient(TestServer(create_web_app(WorkerMetrics(), {}, delivery=service))) as client:
        now = int(datetime.now(timezone.utc).timestamp())
        owned = await client.get(path, headers=ACME.request_headers("GET", path, now))
        refused = await client.get(path, headers=EVIL.request_headers("GET", path, now))

        assert (owned.status, owned.content_type, await owned.read()) == (200, "audio/wav", b"RIFF...")
        assert refused.status == 403 and "another tenant" in (await refused.json())["error"]
