"""Signed checkpoints: a log cut back, emptied or rebuilt with the HMAC key fails against a kept checkpoint."""

from __future__ import annotations

from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.trust.audit_chain import GENESIS_HASH, audit_record_hash
from processors.trust.audit_checkpoints import first_checkpoint_problem, sign_checkpoint

KEY = b"k" * 32
WORKER = Ed25519PrivateKey.generate()
WORKER_PUBLIC = WORKER.public_key().public_bytes_raw()
SIGNED_AT = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def chain(records: list[dict]) -> dict[int, str]:
    hashes, previous = {}, GENESIS_HASH
    for sequence, record in enumerate(records, start=1):
        previous = hashes[sequence] = audit_record_hash(previous, sequence, record, key=KEY)
    return hashes


def checkpoint_of(hashes: dict[int, str], sequence: int, key=WORKER):
    return sign_checkpoint(sequence, hashes[sequence], SIGNED_AT, key)


RECORDS = [{"decision": "accepted", "n": n} for n in range(5)]


def test_an_intact_log_holds_its_checkpoints():
    hashes = chain(RECORDS)
    assert first_checkpoint_problem([checkpoint_of(hashes, 3), checkpoint_of(hashes, 5)], hashes, WORKER_PUBLIC) is None


def test_entries_cut_off_the_end_fail_at_the_first_missing_sequence():
    hashes = chain(RECORDS)
    kept = checkpoint_of(hashes, 5)
    truncated = {sequence: h for sequence, h in hashes.items() if sequence <= 3}

    sequence, reason = first_checkpoint_problem([kept], truncated, WORKER_PUBLIC)

    assert sequence == 4 and "cut off" in reason


def test_an_emptied_log_fails():
    kept = checkpoint_of(chain(RECORDS), 2)
    sequence, reason = first_checkpoint_problem([kept], {}, WORKER_PUBLIC)
    assert sequence == 1 and "ends at sequence 0" in reason


def test_a_log_rebuilt_with_the_hmac_key_fails_behind_the_checkpoint():
    kept = checkpoint_of(chain(RECORDS), 4)
    rewritten = chain([*RECORDS[:2], {"decision": "rejected", "n": 2}, *RECORDS[3:]])  # a valid chain, keyed

    sequence, reason = first_checkpoint_problem([kept], rewritten, WORKER_PUBLIC)

    assert sequence == 4 and "rewritten behind the checkpoint" in reason


def test_a_checkpoint_signed_by_another_key_is_not_trusted():
    hashes = chain(RECORDS)
    forged = checkpoint_of(hashes, 5, key=Ed25519PrivateKey.generate())
    sequence, reason = first_checkpoint_problem([forged], hashes, WORKER_PUBLIC)
    assert "not signed by key" in reason
