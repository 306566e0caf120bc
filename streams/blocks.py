"""Blocks on a tenant or a voice (`voxflow block`), honoured by every stage.

The stage processor asks the gate about every event before its handler runs. An upstream request of
a blocked tenant or voice (a voice in a synthesis blend included) ends with its stage's refusal —
``sample.rejected``, ``consent.rejected``, ``adaptation.failed``, ``synthesis.failed``, a detection
answer — naming the block and its reason; work already under way stops: chunks not yet released are
not released, a refinement is not fitted. A consent revocation still goes through (it only takes
permission away), and audit records and anomalies are never refused: they are how a block is seen.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from infra.repositories import Block
from schemas import events
from schemas.envelope import Event
from streams.context import StageContext
from streams.handlers.adaptation import fail_adaptation
from streams.handlers.common import stopped_synthesis_failure
from streams.handlers.dubbing import fail_dub
from streams.handlers.refinement import fail_refinement
from streams.handlers.synthesis import fail_synthesis

# Workers re-read the blocks in force this often: a block or an unblock takes effect within this long.
BLOCKS_CACHE_S = 2.0
BLOCKED = "blocked"

Refusal = Callable[[Event, StageContext, str], Awaitable[list[Event]]]


class BlocksInForce(Protocol):
    async def in_force(self) -> list[Block]: ...


class BlockGate:
    """Which block, if any, stops an event; the blocks in force are read at most every ``cache_s``."""

    def __init__(self, blocks: BlocksInForce, *, cache_s: float = BLOCKS_CACHE_S, clock=time.monotonic):
        self.blocks = blocks
        self.cache_s = cache_s
        self._clock = clock
        self._read_at: float | None = None
        self._in_force: dict[tuple[str, str], Block] = {}

    async def block_on(self, event: Event) -> Block | None:
        if type(event) not in _REFUSALS:
            return None
        in_force = await self._blocks_in_force()
        return next((in_force[subject] for subject in _subjects(event) if subject in in_force), None)

    async def _blocks_in_force(self) -> dict[tuple[str, str], Block]:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self.cache_s:
            self._in_force = {(block.subject_kind, block.subject_id): block for block in await self.blocks.in_force()}
            self._read_at = now
        return self._in_force


async def refusal_of(event: Event, context: StageContext, block: Block) -> list[Event]:
    """The outcomes that end ``event``'s request because of ``block`` (recorded as its stage records an ending)."""
    return await _REFUSALS[type(event)](event, context, refusal_reason(block))


def refusal_reason(block: Block) -> str:
    return (f"{BLOCKED}: {block.subject_kind} {block.subject_id!r} is blocked since "
            f"{block.blocked_at.isoformat(timespec='seconds')} by {block.blocked_by}: {block.reason}")


def block_audit_detail(block: Block) -> dict:
    return {"reason": refusal_reason(block), "block_id": block.block_id, "subject_kind": block.subject_kind,
            "subject_id": block.subject_id, "blocked_by": block.blocked_by}


def _subjects(event: Event) -> list[tuple[str, str]]:
    voices = [event.voice_id]
    if isinstance(event, events.SynthesisRequested):
        voices += [weight.voice_id for weight in event.voice_mix]
    return [("tenant", event.tenant_id), *(("voice", voice_id) for voice_id in voices)]


async def _refuse_upload(event: events.SampleUploaded, context: StageContext, reason: str) -> list[Event]:
    return [event.follow_up(events.SampleRejected, sample_id=event.sample_id, reasons=[reason])]


async def _refuse_grant(event: events.ConsentGranted, context: StageContext, reason: str) -> list[Event]:
    # not stored as the consent's decision: once the block is lifted the owner's grant can be sent again
    return [event.follow_up(events.ConsentRejected, consent_id=event.consent_id, reasons=[reason])]


async def _refuse_adaptation(event: events.AdaptationRequested, context: StageContext, reason: str) -> list[Event]:
    if not await _voice_of_the_tenant(event, context):  # nothing to record against a voice the tenant has not got
        return [event.follow_up(events.AdaptationFailed, adaptation_id=event.adaptation_id, reason=reason)]
    return await fail_adaptation(event, context, reason)


async def _refuse_synthesis(event: events.SynthesisRequested, context: StageContext, reason: str) -> list[Event]:
    if not await _voice_of_the_tenant(event, context):
        return [event.follow_up(events.SynthesisFailed, synthesis_id=event.synthesis_id, reason=reason)]
    return await fail_synthesis(event, context, reason)


async def _stop_synthesis(event: events.SynthesisChunkRequested | events.SynthesisProduced, context: StageContext,
                          reason: str) -> list[Event]:
    """An accepted synthesis of a subject blocked since: no further chunk is released, and it fails once.

    Both the synthesis and the watermark stage may notice first; the failure keeps one event id per request.
    """
    synthesis = await context.repos.syntheses.get(synthesis_id=event.synthesis_id)
    if synthesis is None or synthesis.status == "completed":
        return []
    if synthesis.status == "accepted":
        reason = f"{reason} (chunks not released by then were stopped)"
        await context.repos.syntheses.mark_failed(synthesis_id=event.synthesis_id, reason=reason)
    elif (synthesis.reason or "").startswith(BLOCKED):
        reason = synthesis.reason  # a redelivery re-sends the same failure
    else:
        return []  # it already ended for another reason
    return [stopped_synthesis_failure(event, event.synthesis_id, BLOCKED, reason)]


async def _refuse_detection(event: events.WatermarkDetectionRequested, context: StageContext,
                            reason: str) -> list[Event]:
    return [event.follow_up(events.WatermarkDetected, detection_id=event.detection_id, detected=False,
                            examined=False, confidence=0.0, reason=reason)]


async def _voice_of_the_tenant(event: Event, context: StageContext) -> bool:
    voice = await context.repos.voices.get_voice(voice_id=event.voice_id)
    return voice is not None and voice.tenant_id == event.tenant_id


# How a stage ends each request a block stops; events not named here (revocations, audit records,
# anomalies, checkpoints) are never refused.
_REFUSALS: dict[type[Event], Refusal] = {
    events.SampleUploaded: _refuse_upload,
    events.ConsentGranted: _refuse_grant,
    events.AdaptationRequested: _refuse_adaptation,
    events.AdaptationRefinementRequested: fail_refinement,
    events.SynthesisRequested: _refuse_synthesis,
    events.SynthesisChunkRequested: _stop_synthesis,
    events.SynthesisProduced: _stop_synthesis,
    events.WatermarkDetectionRequested: _refuse_detection,
    events.DubRequested: fail_dub,
}
