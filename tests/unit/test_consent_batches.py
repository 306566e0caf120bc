"""Grants taken as a batch: each ends as it would have alone, after the ones before it, in a few queries."""

from __future__ import annotations

import collections
import json
import uuid
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.envelope import utc_now
from schemas.events import AdaptationRequested, ConsentGranted
from streams.handlers.consent import grant_consent, grant_consents
from streams.stages import stages_named
from tests.unit.fakes import fake_context
from tests.unit.test_batching import consent_processor, messages
from voxflow.envelopes import signed_consent

OWNER = Ed25519PrivateKey.generate()
REVOKED_AT = utc_now() - timedelta(hours=1)


def grant(voice_id: str, tenant_id: str = "t", **overrides) -> ConsentGranted:
    return signed_consent(OWNER, tenant_id=tenant_id, voice_id=voice_id, owner_id="o", purposes=["narration"],
                          languages=["en"], statement_text="I consent.", **overrides)


def copy_of(event: ConsentGranted) -> ConsentGranted:
    """The same signed grant under a fresh event id, as a replaying producer sends it."""
    return event.model_copy(update={"event_id": uuid.uuid4()})


def forged(voice_id: str, n: int = 0) -> ConsentGranted:
    return grant(voice_id).model_copy(update={"owner_id": f"mallory-{n}"})


class Mixed:
    """A batch of every kind of grant, and a context where a voice is another tenant's and a consent was revoked."""

    def __init__(self):
        self.revoked, self.good = grant("revoked-voice"), grant("v1")
        self.batch = [self.good, forged("v2"), copy_of(self.good), copy_of(self.revoked), grant("taken", "intruder"),
                      grant("v3"), grant("v4", issued_at=utc_now() - timedelta(days=10), valid_for=timedelta(days=1))]

    async def context(self):
        context = fake_context()
        await context.repos.voices.ensure_voice(voice_id="taken", tenant_id="owner-tenant")
        await grant_consent(self.revoked, context)
        await context.repos.consents.revoke(consent_id=self.revoked.consent_id, revoked_at=REVOKED_AT)
        return context


def summary(outcomes) -> list[tuple]:
    return [(e.event_id, e.type, tuple(getattr(e, "reasons", ()))) for e in outcomes]


async def test_each_grant_of_a_batch_ends_as_it_would_have_alone():
    mixed = Mixed()
    batched = await grant_consents(mixed.batch, await mixed.context())
    alone_context = await mixed.context()
    alone = [await grant_consent(event, alone_context) for event in mixed.batch]

    assert [summary(o) for o in batched] == [summary(o) for o in alone]
    answers = [outcomes[0] for outcomes in batched]
    assert [a.type for a in answers] == ["consent.verified", "consent.rejected", "consent.rejected",
                                         "consent.rejected", "consent.rejected", "consent.verified",
                                         "consent.rejected"]
    assert answers[1].reasons[0].startswith("signature:")
    assert answers[2].reasons[0].startswith("duplicate grant") and "already verified" in answers[2].reasons[0]
    assert answers[3].reasons[0].startswith("replayed grant") and "stays revoked" in answers[3].reasons[0]
    assert answers[4].reasons == ["voice 'taken' belongs to another tenant"]
    assert any("expired" in reason for reason in answers[6].reasons)


async def test_only_the_decided_grants_are_recorded_each_consent_once():
    mixed = Mixed()
    context = await mixed.context()
    await grant_consents(mixed.batch, context)

    recorded = [(d.voice_id, d.status) for d in context.repos.consents.decisions[1:]]  # after the revoked one
    assert recorded == [("v1", "verified"), ("v2", "rejected"), ("v3", "verified"), ("v4", "rejected")]


async def test_the_same_event_twice_in_a_batch_is_a_retry_not_a_duplicate():
    event = grant("v1")

    first, again = await grant_consents([event, event], fake_context())

    assert [e.type for e in first] == [e.type for e in again] == ["consent.verified"]


async def test_rejections_in_one_batch_raise_the_failure_alert_as_they_would_one_by_one():
    outcomes = await grant_consents([forged("v1", n) for n in range(3)] + [forged("v2")], fake_context())

    assert [len(o) for o in outcomes] == [1, 1, 2, 1]
    assert outcomes[2][1].type == "anomaly.detected" and outcomes[2][1].detail.startswith("3 rejected consents")


async def test_a_retried_rejection_is_not_counted_twice_towards_the_alert():
    context, first = fake_context(), forged("v1", 0)
    await grant_consent(first, context)

    outcomes = await grant_consents([first, forged("v1", 1)], context)

    assert [len(o) for o in outcomes] == [1, 1]  # two rejections stored, under the limit of three


async def test_a_verified_grant_re_sends_the_adaptations_waiting_for_its_own_voice():
    waiting = json.loads(AdaptationRequested(tenant_id="t", voice_id="v1").model_dump_json())

    v1, v2 = await grant_consents([grant("v1"), grant("v2")], fake_context(waiting=[waiting]))

    assert [e.type for e in v1] == ["consent.verified", "adaptation.requested"]
    assert str(v1[1].adaptation_id) == waiting["adaptation_id"]
    assert [e.type for e in v2] == ["consent.verified"]


class CountedCalls:
    """A repository whose every call is counted, by method name."""

    def __init__(self, repository, calls: collections.Counter):
        self._repository, self._calls = repository, calls

    def __getattr__(self, name):
        method = getattr(self._repository, name)

        async def counted(*args, **kwargs):
            self._calls[name] += 1
            return await method(*args, **kwargs)

        return counted


def counted_context(calls: collections.Counter):
    context = fake_context(waiting=[json.loads(AdaptationRequested(tenant_id="t", voice_id="v0").model_dump_json())])
    repos = context.repos
    repos.voices, repos.consents, repos.adaptations = (CountedCalls(r, calls) for r in
                                                       (repos.voices, repos.consents, repos.adaptations))
    return context


async def test_a_batch_costs_the_same_few_queries_whatever_its_size():
    def batch(size: int) -> list[ConsentGranted]:
        return [grant(f"v{n}") if n % 2 else forged(f"v{n}") for n in range(size)]

    small, large = collections.Counter(), collections.Counter()
    await grant_consents(batch(2), counted_context(small))
    await grant_consents(batch(30), counted_context(large))

    assert small == large == {"ensure_voices": 1, "get_many": 1, "rejections_since_by_voice": 1,
                              "record_decisions": 1, "waiting_requests_by_voice": 1}


async def test_a_stage_batch_with_a_forged_grant_a_copy_and_good_grants_gives_each_its_answer():
    processor, publisher, repos = consent_processor()
    good = grant("v1")
    batch = [good, forged("v2"), copy_of(good), grant("v3")]

    await processor.process_batch(stages_named(["consent"])[0], messages("voxflow.consent", batch))

    answers = {e.causation_id: e for e in publisher.events if e.type.startswith("consent.")}
    assert [answers[e.event_id].type for e in batch] == ["consent.verified", "consent.rejected", "consent.rejected",
                                                         "consent.verified"]
    assert answers[batch[2].event_id].reasons[0].startswith("duplicate grant")
    assert not publisher.dead_letters() and len(repos.consents.decisions) == 3
    assert {event_id for _, event_id in repos.inbox.done} == {e.event_id for e in batch}
