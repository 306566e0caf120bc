"""A finished dub goes to the tenant that asked for it, with its media type; to nobody else, and not before it is done."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.trust.signing import EventSigner
from streams.delivery import DeliveryRefused, OutputDelivery
from tests.unit.fakes import InMemoryStore, a_dub
from tests.unit.test_delivery import NOW, Keys, Syntheses

ACME, EVIL = EventSigner(Ed25519PrivateKey.generate()), EventSigner(Ed25519PrivateKey.generate())


class Dubs(Syntheses):
    async def get(self, *, dub_id):
        return self.rows.get(dub_id)


def delivery(rows, store):
    return OutputDelivery(Syntheses({}), Keys((ACME, "acme", None), (EVIL, "evil", None)), store,
                          clock=lambda: NOW, dubs=Dubs(rows))


async def fetch(service, dub_id, signer=ACME):
    path = f"/v1/dubs/{dub_id}/media"
    return await service.dub_media(str(dub_id), path, signer.request_headers("GET", path, NOW))


@pytest.fixture
def dub():
    dub_id = uuid.uuid4()
    key = f"syntheses/acme/v/{dub_id}/dub.mp4"
    return dub_id, a_dub(dub_id, tenant_id="acme", status="completed", output_key=key, media_type="video/mp4")


async def test_the_owning_tenant_gets_the_dubbed_video(dub):
    dub_id, row = dub

    media = await fetch(delivery({dub_id: row}, InMemoryStore({row.output_key: b"....ftypisom"})), dub_id)

    assert (media.data, media.media_type) == (b"....ftypisom", "video/mp4")


@pytest.mark.parametrize("case, status, words", [
    ("another tenant", 403, "belongs to another tenant"),
    ("not completed", 404, "is accepted, not completed"),
    ("unknown", 404, "no dub"),
])
async def test_every_other_request_is_refused_saying_why(dub, case, status, words):
    dub_id, row = dub
    rows = {} if case == "unknown" else {dub_id: replace(row, status="accepted") if case == "not completed" else row}

    with pytest.raises(DeliveryRefused) as refused:
        await fetch(delivery(rows, InMemoryStore()), dub_id, EVIL if case == "another tenant" else ACME)

    assert refused.value.status == status and words in str(refused.value)
