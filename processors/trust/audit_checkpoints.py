"""Signed checkpoints of the audit chain: a head someone kept, that the log must still contain.

The HMAC key stops whoever can write the database from rewriting entries, but cutting entries off
the end, or emptying the log, leaves a valid shorter chain, and whoever holds the HMAC key could
rebuild the chain outright. A checkpoint is an Ed25519 signature, by a worker key kept apart from
both, over the canonical JSON (see ``audit_chain.canonical_json``) of::

    {"head_hash": <record_hash of entry `sequence`>, "sequence": <n>, "signed_at": "YYYY-MM-DDTHH:MM:SSZ"}

A log is consistent with a checkpoint when its entry ``sequence`` exists and hashes to ``head_hash``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from processors.errors import AuditChainError
from processors.trust.audit_chain import canonical_json
from processors.trust.consent import utc_timestamp
from processors.trust.signing import key_id_of


@dataclass(frozen=True)
class SignedCheckpoint:
    sequence: int
    head_hash: str
    signed_at: datetime
    key_id: str
    signature: bytes


def checkpoint_bytes(sequence: int, head_hash: str, signed_at: datetime) -> bytes:
    return canonical_json({"head_hash": head_hash, "sequence": sequence, "signed_at": utc_timestamp(signed_at)})


def sign_checkpoint(sequence: int, head_hash: str, signed_at: datetime, private_key: Ed25519PrivateKey) -> SignedCheckpoint:
    """A checkpoint of the chain's head; ``signed_at`` keeps whole seconds, as its signed form does."""
    signed_at = signed_at.replace(microsecond=0)
    public_key = private_key.public_key().public_bytes_raw()
    return SignedCheckpoint(sequence, head_hash, signed_at, key_id_of(public_key),
                            private_key.sign(checkpoint_bytes(sequence, head_hash, signed_at)))


def checkpoint_problem(checkpoint: SignedCheckpoint, record_hashes: Mapping[int, str], public_key: bytes,
                       last_sequence: int) -> str | None:
    """Why the log (``record_hashes`` by sequence, ending at ``last_sequence``) breaks ``checkpoint``; None if it holds."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            checkpoint.signature, checkpoint_bytes(checkpoint.sequence, checkpoint.head_hash, checkpoint.signed_at))
    except (InvalidSignature, ValueError):
        return f"checkpoint at sequence {checkpoint.sequence} is not signed by key {key_id_of(public_key)}"
    when = utc_timestamp(checkpoint.signed_at)
    if checkpoint.sequence > last_sequence:
        return (f"the log ends at sequence {last_sequence}, but a checkpoint signed {when} saw {checkpoint.sequence} "
                "entries: entries were cut off the log")
    if record_hashes.get(checkpoint.sequence) != checkpoint.head_hash:
        return (f"entry {checkpoint.sequence} does not hash to the head a checkpoint signed {when} saw: "
                "the log was rewritten behind the checkpoint")
    return None


def first_checkpoint_problem(checkpoints: Iterable[SignedCheckpoint], record_hashes: Mapping[int, str],
                             public_key: bytes) -> tuple[int, str] | None:
    """(sequence, reason) of the first checkpoint the log breaks, by sequence; None when all hold."""
    last_sequence = max(record_hashes, default=0)
    for checkpoint in sorted(checkpoints, key=lambda c: c.sequence):
        if checkpoint.sequence < 1:
            raise AuditChainError(f"a checkpoint's sequence is at least 1, got {checkpoint.sequence}")
        problem = checkpoint_problem(checkpoint, record_hashes, public_key, last_sequence)
        if problem:
            return min(checkpoint.sequence, last_sequence + 1), problem
    return None
