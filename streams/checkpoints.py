"""Periodic signed checkpoints of the audit chain's head, published on the audit topic.

Each round reads the head, and when the chain grew since the last checkpoint, signs a new one with
the worker key and publishes it; the audit stage stores it (`record_checkpoint`). Anyone may keep
the events: `voxflow audit verify --checkpoint FILE` checks the log against one kept elsewhere.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.trust.audit_checkpoints import SignedCheckpoint, sign_checkpoint
from schemas.envelope import Event, utc_now
from schemas.events import AuditCheckpointed

log = logging.getLogger("voxflow.audit")

# Checkpoints are about the whole log, not one voice or tenant; they travel under these envelope values.
CHECKPOINT_TENANT = CHECKPOINT_VOICE = "voxflow"
_CHECKPOINT_NAMESPACE = uuid.UUID("6f1b1c1e-7a0e-4c57-9d8e-6a75646974cb")


class ChainHeads(Protocol):
    async def head(self) -> tuple[int, str] | None: ...
    async def latest(self) -> SignedCheckpoint | None: ...


def checkpoint_event(checkpoint: SignedCheckpoint) -> AuditCheckpointed:
    """The event of a checkpoint; its id follows from the sequence, so two workers' checkpoints of one head collapse."""
    return AuditCheckpointed(
        event_id=uuid.uuid5(_CHECKPOINT_NAMESPACE, str(checkpoint.sequence)), tenant_id=CHECKPOINT_TENANT,
        voice_id=CHECKPOINT_VOICE, sequence=checkpoint.sequence, head_hash=checkpoint.head_hash,
        signed_at=checkpoint.signed_at, key_id=checkpoint.key_id,
        signature=base64.b64encode(checkpoint.signature).decode(),
    )


def checkpoint_of(event: AuditCheckpointed) -> SignedCheckpoint:
    return SignedCheckpoint(event.sequence, event.head_hash, event.signed_at, event.key_id,
                            base64.b64decode(event.signature))


class AuditCheckpointer:
    def __init__(self, heads: ChainHeads, private_key: Ed25519PrivateKey,
                 publish: Callable[[list[Event]], Awaitable[None]]):
        self._heads = heads
        self._private_key = private_key
        self._publish = publish

    async def checkpoint(self) -> AuditCheckpointed | None:
        """Sign and publish the head when it moved past the last checkpoint; None when there is nothing new."""
        head = await self._heads.head()
        latest = await self._heads.latest()
        if head is None or (latest is not None and head[0] <= latest.sequence):
            return None
        event = checkpoint_event(sign_checkpoint(head[0], head[1], utc_now(), self._private_key))
        await self._publish([event])
        log.info("audit checkpoint at sequence %d signed by key %s", event.sequence, event.key_id)
        return event
