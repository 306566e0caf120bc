"""Reading and verifying the hash-chained audit log against its signed checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from infra.repositories import AuditCheckpointRepository, AuditEntry, AuditRepository
from infra.settings import Settings
from infra.signing_keys import worker_signer
from processors.trust.audit_chain import ChainEntry, ChainVerification, verify_audit_chain
from processors.trust.audit_checkpoints import SignedCheckpoint, first_checkpoint_problem
from schemas.events import AuditCheckpointed
from streams.checkpoints import checkpoint_event
from streams.session import database


async def read_audit_log(settings: Settings, *, after_sequence: int = 0) -> list[AuditEntry]:
    async with database(settings) as pool:
        return await AuditRepository(pool, settings.audit_key()).entries(after_sequence=after_sequence)


async def latest_checkpoint(settings: Settings) -> AuditCheckpointed | None:
    async with database(settings) as pool:
        checkpoint = await AuditCheckpointRepository(pool).latest()
    return None if checkpoint is None else checkpoint_event(checkpoint)


async def verify_audit_log(settings: Settings, *, kept_checkpoints: Sequence[SignedCheckpoint] = (),
                           checkpoint_public_key: bytes | None = None) -> ChainVerification:
    """The chain from its first entry, then every stored checkpoint and each one kept elsewhere.

    Checkpoints are checked with ``checkpoint_public_key``, by default this deployment's worker key.
    """
    async with database(settings) as pool:
        entries = await AuditRepository(pool, settings.audit_key()).entries()
        checkpoints = [*await AuditCheckpointRepository(pool).all(), *kept_checkpoints]
    chain = verify_audit_chain(
        (ChainEntry(e.sequence, e.previous_hash, e.record_hash, e.record) for e in entries), key=settings.audit_key()
    )
    if not chain.valid:
        return chain
    public_key = checkpoint_public_key or worker_signer(settings).public_key
    broken = first_checkpoint_problem(checkpoints, {e.sequence: e.record_hash for e in entries}, public_key)
    if broken is not None:
        return ChainVerification(False, chain.checked, broken[0], broken[1], checkpoints_checked=len(checkpoints))
    return dataclasses.replace(chain, checkpoints_checked=len(checkpoints))
