"""Reading and verifying the hash-chained audit log."""

from __future__ import annotations

from infra.repositories import AuditEntry, AuditRepository
from infra.settings import Settings
from processors.trust.audit_chain import ChainEntry, ChainVerification, verify_audit_chain
from streams.session import database


async def read_audit_log(settings: Settings, *, after_sequence: int = 0) -> list[AuditEntry]:
    async with database(settings) as pool:
        return await AuditRepository(pool, settings.audit_key()).entries(after_sequence=after_sequence)


async def verify_audit_log(settings: Settings) -> ChainVerification:
    entries = await read_audit_log(settings)
    return verify_audit_chain(
        (ChainEntry(e.sequence, e.previous_hash, e.record_hash, e.record) for e in entries), key=settings.audit_key()
    )
