"""Tamper-evident hash chain for the audit log.

Entry ``n`` stores ``record_hash = H(canonical JSON of {"previous_hash", "record", "sequence"})``
where ``previous_hash`` is entry ``n - 1``'s record_hash (``GENESIS_HASH`` for sequence 1).
Canonical JSON: keys sorted, no whitespace (separators "," and ":"), UTF-8 with non-ASCII written as
itself, no NaN or infinity. ``H`` is SHA-256, or HMAC-SHA256 under a secret key when one is given;
both are written as 64 lowercase hex digits.

Changing, deleting, inserting or reordering an entry breaks the chain from that entry on. Without
a key, someone who can rewrite the whole log can also recompute every hash; with a key kept
outside the database they cannot. Entries cut off the end of the log leave a valid, shorter chain:
compare the head with a sequence and hash kept elsewhere to notice that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from processors.errors import AuditChainError

GENESIS_HASH = "0" * 64
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class ChainEntry(NamedTuple):
    sequence: int
    previous_hash: str
    record_hash: str
    record: Mapping[str, Any]


@dataclass(frozen=True)
class ChainVerification:
    """``first_invalid_sequence`` is the first sequence that cannot be trusted: the altered entry, the
    first missing one, or, when a record was altered and rehashed without the key, the entry after it."""

    valid: bool
    checked: int
    first_invalid_sequence: int | None = None
    reason: str | None = None
    checkpoints_checked: int = 0


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON bytes; ``AuditChainError`` if it is not plain JSON data."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise AuditChainError(f"audit record is not plain JSON data: {error}") from error


def audit_record_hash(previous_hash: str, sequence: int, record: Mapping[str, Any], *,
                      key: bytes | None = None) -> str:
    """Hex digest chaining ``record`` at ``sequence`` onto ``previous_hash`` (HMAC-SHA256 when ``key``)."""
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise AuditChainError(f"sequence must be a positive integer, got {sequence!r}")
    if not isinstance(previous_hash, str) or not _HEX_DIGEST.fullmatch(previous_hash):
        raise AuditChainError("previous_hash must be 64 lowercase hex digits")
    body = canonical_json({"previous_hash": previous_hash, "record": record, "sequence": sequence})
    if key is None:
        return hashlib.sha256(body).hexdigest()
    if not isinstance(key, bytes) or not key:
        raise AuditChainError("the audit chain key must be non-empty bytes")
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_audit_chain(entries: Iterable[ChainEntry], *, key: bytes | None = None,
                       start_after: tuple[int, str] = (0, GENESIS_HASH)) -> ChainVerification:
    """Walk ``entries`` in the order given; report the first one that does not follow from its predecessor.

    ``start_after`` is a trusted (sequence, record_hash) to continue from when checking only the tail
    of the log; ``key`` must be the one the chain was written with, if any.
    """
    expected_sequence, expected_previous = start_after[0] + 1, start_after[1]
    checked = 0
    for entry in entries:
        problem = _problem(entry, expected_sequence, expected_previous, key)
        if problem:
            return ChainVerification(False, checked, expected_sequence, problem)
        expected_sequence, expected_previous = entry.sequence + 1, entry.record_hash
        checked += 1
    return ChainVerification(True, checked)


def _problem(entry: ChainEntry, expected_sequence: int, expected_previous: str, key: bytes | None) -> str | None:
    if entry.sequence != expected_sequence:
        if isinstance(entry.sequence, int) and entry.sequence > expected_sequence:
            return f"entry {expected_sequence} is missing (found {entry.sequence} next)"
        return f"expected sequence {expected_sequence}, found {entry.sequence!r} (entries reordered or repeated)"
    if entry.previous_hash != expected_previous:
        return (f"previous_hash of entry {entry.sequence} does not match the hash of the entry before "
                "(that entry was altered and rehashed, or this link was forged)")
    try:
        recomputed = audit_record_hash(entry.previous_hash, entry.sequence, entry.record, key=key)
    except AuditChainError as error:
        return f"entry {entry.sequence} cannot be hashed: {error}"
    if not hmac.compare_digest(recomputed, str(entry.record_hash)):
        return f"record_hash of entry {entry.sequence} does not match its record (record or hash altered)"
    return None
