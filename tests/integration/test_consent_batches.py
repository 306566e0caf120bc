"""A batch of grants judged on the real Postgres: the batch queries give each grant the answer it would get alone."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.data_keys import SealedDocuments, data_keys_for
from infra.db import apply_migrations, create_pool
from infra.repositories import Repositories, VoiceErased, VoiceOwnedByAnotherTenant
from schemas.envelope import utc_now
from schemas.events import AdaptationRequested
from streams.context import Limits, StageContext
from streams.handlers.consent import grant_consent, grant_consents
from voxflow.envelopes import signed_consent

pytestmark = pytest.mark.integration

OWNER = Ed25519PrivateKey.generate()


@pytest.fixture
async def repos(stack_settings):
    pool = await create_pool(stack_settings.postgres_dsn)
    await apply_migrations(pool)
    yield Repositories.over(pool, audit_key=b"k" * 32, sealer=SealedDocuments(data_keys_for(stack_settings, pool)))
    await pool.close()


def voice(name: str) -> str:
    return f"batch-{name}-{uuid.uuid4().hex[:6]}"


def grant(voice_id: str, tenant_id: str = "t", **overrides):
    return signed_consent(OWNER, tenant_id=tenant_id, voice_id=voice_id, owner_id="o", purposes=["narration"],
                          languages=["en"], statement_text="I consent.", **overrides)


def forged(voice_id: str, n: int = 0):
    return grant(voice_id).model_copy(update={"owner_id": f"mallory-{n}"})


async def judged_in_one_unit_of_work(repos: Repositories, batch) -> list[list]:
    """As the consent stage judges a take from the stream: in one transaction, its writes committed together."""
    async with repos.transaction() as unit:
        context = StageContext(repos=unit, store=None, watermark_key=b"k" * 32,
                               limits=Limits(require_spoken_consent=False))
        return await grant_consents(batch, context)


async def test_voices_are_claimed_together_as_if_one_after_the_other(repos):
    new, others, erased = voice("new"), voice("others"), voice("erased")
    await repos.voices.ensure_voice(voice_id=others, tenant_id="other-tenant")
    await repos.voices.ensure_voice(voice_id=erased, tenant_id="t")
    await repos.erasures.mark_erased(voice_id=erased)

    refusals = await repos.voices.ensure_voices(claims=[(new, "t"), (new, "intruder"), (others, "t"), (erased, "t"),
                                                        (new, "t")])

    assert [type(r) for r in refusals] == [type(None), VoiceOwnedByAnotherTenant, VoiceOwnedByAnotherTenant,
                                           VoiceErased, type(None)]
    assert (await repos.voices.get_voice(voice_id=new)).tenant_id == "t"


async def test_a_batch_of_forged_copied_replayed_and_good_grants_gives_each_its_answer(repos):
    revoked, taken, erased = grant(voice("revoked")), voice("taken"), voice("erased")
    context = StageContext(repos=repos, store=None, watermark_key=b"k" * 32, limits=Limits(require_spoken_consent=False))
    await grant_consent(revoked, context)
    await repos.consents.revoke(consent_id=revoked.consent_id, revoked_at=utc_now())
    await repos.voices.ensure_voice(voice_id=taken, tenant_id="owner-tenant")
    await repos.voices.ensure_voice(voice_id=erased, tenant_id="t")
    await repos.erasures.mark_erased(voice_id=erased)
    good = grant(voice("good"))
    batch = [good, forged(voice("forged")), good.model_copy(update={"event_id": uuid.uuid4()}),
             revoked.model_copy(update={"event_id": uuid.uuid4()}), grant(taken, "intruder"), grant(erased),
             grant(voice("expired"), issued_at=utc_now() - timedelta(days=10), valid_for=timedelta(days=1)),
             grant(voice("good"))]

    answers = [outcomes[0] for outcomes in await judged_in_one_unit_of_work(repos, batch)]

    assert [a.type for a in answers] == ["consent.verified", *["consent.rejected"] * 6, "consent.verified"]
    reasons = [a.reasons[0] if a.type == "consent.rejected" else "" for a in answers]
    assert reasons[1].startswith("signature:") and reasons[2].startswith("duplicate grant")
    assert reasons[3].startswith("replayed grant") and "belongs to another tenant" in reasons[4]
    assert "was erased" in reasons[5] and "expired" in reasons[6]
    stored = await repos.consents.get_many(consent_ids=[e.consent_id for e in batch])
    assert {e.voice_id: stored[e.consent_id].status for e in batch if e.consent_id in stored} == {
        batch[0].voice_id: "verified", batch[1].voice_id: "rejected", revoked.voice_id: "revoked",
        batch[6].voice_id: "rejected", batch[7].voice_id: "verified"}


async def test_rejections_stored_and_in_the_batch_add_up_to_the_failure_alert(repos):
    target = voice("burst")
    context = StageContext(repos=repos, store=None, watermark_key=b"k" * 32, limits=Limits(require_spoken_consent=False))
    await grant_consent(forged(target, 0), context)

    outcomes = await judged_in_one_unit_of_work(repos, [forged(target, n) for n in (1, 2, 3)])

    assert [[e.type for e in o] for o in outcomes] == [
        ["consent.rejected"], ["consent.rejected", "anomaly.detected"], ["consent.rejected", "anomaly.detected"]]
    assert outcomes[1][1].detail.startswith("3 rejected consents")


async def test_verified_grants_re_send_the_adaptations_waiting_for_their_voice(repos):
    waiting_voice, other = voice("waiting"), voice("other")
    await repos.voices.ensure_voice(voice_id=waiting_voice, tenant_id="t")
    request = AdaptationRequested(tenant_id="t", voice_id=waiting_voice)
    await repos.adaptations.record(adaptation_id=request.adaptation_id, voice_id=waiting_voice, tenant_id="t",
                                   status="waiting", request=request.model_dump(mode="json"))

    first, second = await judged_in_one_unit_of_work(repos, [grant(waiting_voice), grant(other)])

    assert [e.type for e in first] == ["consent.verified", "adaptation.requested"]
    assert first[1].adaptation_id == request.adaptation_id and first[1].event_id == request.event_id
    assert [e.type for e in second] == ["consent.verified"]


async def test_a_batch_and_the_same_grants_one_by_one_store_the_same_decisions(repos):
    def scenario():
        shared = voice("shared")
        first = grant(shared)
        return [first, forged(shared), first.model_copy(update={"event_id": uuid.uuid4()}), grant(voice("solo"))]

    batch, alone = scenario(), scenario()
    batched = await judged_in_one_unit_of_work(repos, batch)
    context = StageContext(repos=repos, store=None, watermark_key=b"k" * 32, limits=Limits(require_spoken_consent=False))
    one_by_one = [await grant_consent(event, context) for event in alone]

    def shape(outcomes):
        return [[(e.type, len(getattr(e, "reasons", ()))) for e in o] for o in outcomes]

    assert shape(batched) == shape(one_by_one)
    for events in (batch, alone):
        stored = await repos.consents.get_many(consent_ids=[e.consent_id for e in events])
        assert sorted((consent.status, len(consent.reasons)) for consent in stored.values()) == [
            ("rejected", 1), ("verified", 0), ("verified", 0)]
