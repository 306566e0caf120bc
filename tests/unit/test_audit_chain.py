"""The audit chain: any edit to the log is found, and pointed at the entry where it happened."""

from __future__ import annotations

import hashlib

import pytest

from processors.trust.audit_chain import (
    GENESIS_HASH,
    ChainEntry,
    audit_record_hash,
    verify_audit_chain,
)
from processors.errors import AuditChainError

KEY = b"audit key kept outside the database"


def build_chain(count: int, *, key: bytes | None = None, records=None) -> list[ChainEntry]:
    records = records or [{"event": "synthesis.completed", "n": index, "voice": "v-1"} for index in range(1, count + 1)]
    entries, previous = [], GENESIS_HASH
    for sequence, record in enumerate(records, start=1):
        record_hash = audit_record_hash(previous, sequence, record, key=key)
        entries.append(ChainEntry(sequence, previous, record_hash, record))
        previous = record_hash
    return entries


def test_an_untouched_chain_verifies():
    result = verify_audit_chain(build_chain(8))
    assert result.valid and result.checked == 8 and result.first_invalid_sequence is None


def test_an_empty_log_is_a_valid_chain():
    assert verify_audit_chain([]).valid


def test_the_hash_is_sha256_of_the_documented_canonical_json():
    record = {"voice": "hlas-č", "decision": "accepted"}
    canonical = ('{"previous_hash":"' + GENESIS_HASH + '","record":{"decision":"accepted","voice":"hlas-č"},'
                 '"sequence":1}').encode()
    assert audit_record_hash(GENESIS_HASH, 1, record) == hashlib.sha256(canonical).hexdigest()


def test_a_modified_record_is_found_at_its_sequence():
    chain = build_chain(8)
    chain[3] = chain[3]._replace(record={**chain[3].record, "voice": "v-2"})
    result = verify_audit_chain(chain)
    assert not result.valid and result.first_invalid_sequence == 4 and "record" in result.reason
    assert result.checked == 3


def test_a_deleted_entry_is_found_where_it_is_missing():
    chain = build_chain(8)
    del chain[2]
    result = verify_audit_chain(chain)
    assert not result.valid and result.first_invalid_sequence == 3 and "missing" in result.reason


def test_reordered_entries_are_found():
    chain = build_chain(8)
    chain[4], chain[5] = chain[5], chain[4]
    result = verify_audit_chain(chain)
    assert not result.valid and result.first_invalid_sequence == 5


def test_a_repeated_entry_is_found():
    chain = build_chain(5)
    result = verify_audit_chain([*chain[:3], chain[2], *chain[3:]])
    assert not result.valid and result.first_invalid_sequence == 4


def test_a_forged_hash_is_found_at_its_entry():
    chain = build_chain(8)
    chain[5] = chain[5]._replace(record_hash="f" * 64)
    result = verify_audit_chain(chain)
    assert not result.valid and result.first_invalid_sequence == 6


def test_a_record_altered_and_rehashed_breaks_the_next_link():
    chain = build_chain(8)
    altered = {**chain[4].record, "voice": "v-2"}
    chain[4] = chain[4]._replace(record=altered, record_hash=audit_record_hash(chain[4].previous_hash, 5, altered))
    result = verify_audit_chain(chain)
    assert not result.valid and result.first_invalid_sequence == 6 and "previous_hash" in result.reason


def test_with_a_key_a_rehashed_record_is_found_at_its_own_entry():
    chain = build_chain(8, key=KEY)
    altered = {**chain[4].record, "voice": "v-2"}
    chain[4] = chain[4]._replace(record=altered, record_hash=audit_record_hash(chain[4].previous_hash, 5, altered))
    assert verify_audit_chain(chain, key=KEY).first_invalid_sequence == 5


def test_a_whole_rewritten_log_passes_without_the_key_but_not_with_it():
    genuine = build_chain(6, key=KEY)
    rewritten = build_chain(6, records=[{**entry.record, "voice": "v-9"} for entry in genuine])
    assert verify_audit_chain(rewritten).valid
    result = verify_audit_chain(rewritten, key=KEY)
    assert not result.valid and result.first_invalid_sequence == 1
    assert verify_audit_chain(genuine, key=KEY).valid


def test_the_tail_of_a_log_verifies_from_a_trusted_checkpoint():
    chain = build_chain(10)
    checkpoint = (chain[5].sequence, chain[5].record_hash)
    assert verify_audit_chain(chain[6:], start_after=checkpoint).valid
    assert not verify_audit_chain(chain[7:], start_after=checkpoint).valid


def test_records_that_are_not_plain_json_are_refused():
    with pytest.raises(AuditChainError):
        audit_record_hash(GENESIS_HASH, 1, {"when": object()})
    with pytest.raises(AuditChainError):
        audit_record_hash(GENESIS_HASH, 1, {"score": float("nan")})
    with pytest.raises(AuditChainError):
        audit_record_hash("not a hash", 1, {})
    chain = build_chain(3)
    chain[1] = chain[1]._replace(record={"score": float("nan")})
    result = verify_audit_chain(chain)
    assert not result.valid and result.first_invalid_sequence == 2
