"""Tamper-evident hash chain for the audit log.

Each entry's hash is sha256 over the canonical JSON (sorted keys, no whitespace) of
{"previous_hash": ..., "record": ..., "sequence": ...}; the first entry's previous hash is GENESIS_HASH.
Changing, deleting, inserting or reordering any entry breaks every hash from that point on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, NamedTuple

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def audit_record_hash(previous_hash: str, sequence: int, record: Mapping[str, Any]) -> str:
    body = {"previous_hash": previous_hash, "record": record, "sequence": sequence}
    return hashlib.sha256(canonical_json(body)).hexdigest()


class ChainEntry(NamedTuple):
    sequence: int
    previous_hash: str
    record_hash: str
    record: Mapping[str, Any]


@dataclass(frozen=True)
class ChainVerification:
    valid: bool
    checked: int
    first_invalid_sequence: int | None = None
    reason: str | None = None


def verify_audit_chain(entries: Iterable[ChainEntry]) -> ChainVerification:
    """Walk the chain in order; report the first entry that does not follow from its predecessor."""
    expected_previous, expected_sequence, checked = GENESIS_HASH, 1, 0
    for entry in entries:
        problem = _problem(entry, expected_previous, expected_sequence)
        if problem:
            return ChainVerification(False, checked, entry.sequence, problem)
        expected_previous, expected_sequence, checked = entry.record_hash, entry.sequence + 1, checked + 1
    return ChainVerification(True, checked)


def _problem(entry: ChainEntry, expected_previous: str, expected_sequence: int) -> str | None:
    if entry.sequence != expected_sequence:
        return f"expected sequence {expected_sequence}, found {entry.sequence} (entries missing or reordered)"
    if entry.previous_hash != expected_previous:
        return "previous_hash does not match the hash of the entry before"
    if audit_record_hash(entry.previous_hash, entry.sequence, entry.record) != entry.record_hash:
        return "record_hash does not match the record (record altered)"
    return None
