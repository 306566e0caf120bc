"""Compare the audit topic with the Postgres copy of the log: what one holds and the other does not, or holds otherwise.

The topic is the record of what stages decided; Postgres is the chain the audit stage built from it.
Both are keyed by the audit record's ``event_id``. A record on the topic that the audit stage has not
appended yet (it lags the topic by moments) reads as missing: replay again to tell lag from loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from processors.trust.audit_chain import canonical_json

DifferenceKind = Literal["missing_in_postgres", "not_on_topic", "content_differs"]


@dataclass(frozen=True)
class StoredRecord:
    sequence: int
    record: Mapping[str, Any]


@dataclass(frozen=True)
class ReplayDifference:
    kind: DifferenceKind
    event_id: str
    sequence: int | None  # the Postgres entry's, when there is one
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def compare_audit_copies(on_topic: Mapping[str, Mapping[str, Any]],
                         in_postgres: Mapping[str, StoredRecord]) -> list[ReplayDifference]:
    """Differences between the records on the topic and in Postgres, both by event id, in Postgres order
    then topic order."""
    differences = []
    for event_id, stored in sorted(in_postgres.items(), key=lambda item: item[1].sequence):
        if event_id not in on_topic:
            differences.append(ReplayDifference("not_on_topic", event_id, stored.sequence,
                                                f"entry {stored.sequence} ({_summary(stored.record)}) is in Postgres "
                                                "but on no message of the audit topic"))
        elif canonical_json(on_topic[event_id]) != canonical_json(stored.record):
            differences.append(ReplayDifference("content_differs", event_id, stored.sequence,
                                                f"entry {stored.sequence} differs from its message in "
                                                f"{', '.join(_differing_fields(on_topic[event_id], stored.record))}"))
    for event_id, record in on_topic.items():
        if event_id not in in_postgres:
            differences.append(ReplayDifference("missing_in_postgres", event_id, None,
                                                f"{_summary(record)} is on the audit topic but not in Postgres"))
    return differences


def _summary(record: Mapping[str, Any]) -> str:
    return (f"{record.get('stage')} {record.get('action')} {record.get('decision')} of voice {record.get('voice_id')}"
            f" at {record.get('occurred_at')}")


def _differing_fields(published: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    names = sorted(set(published) | set(stored))
    return [name for name in names if canonical_json(published.get(name)) != canonical_json(stored.get(name))]
