"""The audit topic set beside the Postgres copy: every difference named, none when they agree."""

from processors.trust.audit_replay import StoredRecord, compare_audit_copies


def record(event_id: str, **fields) -> dict:
    return {"event_id": event_id, "stage": "synthesis", "action": "synthesis.completed", "decision": "completed",
            "voice_id": "v-1", "occurred_at": "2026-12-01T18:00:00Z", "detail": {}, **fields}


TOPIC = {name: record(name) for name in ("a", "b", "c")}
STORED = {name: StoredRecord(sequence, record(name)) for sequence, name in enumerate(("a", "b", "c"), start=1)}


def test_identical_copies_have_no_difference():
    assert compare_audit_copies(TOPIC, STORED) == []


def test_a_row_deleted_from_postgres_is_named_as_missing_there():
    without_b = {name: stored for name, stored in STORED.items() if name != "b"}

    [difference] = compare_audit_copies(TOPIC, without_b)

    assert (difference.kind, difference.event_id, difference.sequence) == ("missing_in_postgres", "b", None)
    assert "synthesis.completed" in difference.detail and "not in Postgres" in difference.detail


def test_a_row_no_message_carried_is_named_with_its_sequence():
    inserted = {**STORED, "x": StoredRecord(4, record("x", action="consent.granted"))}

    [difference] = compare_audit_copies(TOPIC, inserted)

    assert (difference.kind, difference.event_id, difference.sequence) == ("not_on_topic", "x", 4)
    assert "entry 4" in difference.detail and "consent.granted" in difference.detail


def test_a_record_edited_in_postgres_names_the_fields_that_differ():
    edited = {**STORED, "c": StoredRecord(3, record("c", decision="failed", detail={"reason": "edited"}))}

    [difference] = compare_audit_copies(TOPIC, edited)

    assert (difference.kind, difference.sequence) == ("content_differs", 3)
    assert difference.detail.endswith("decision, detail")


def test_key_order_does_not_count_as_a_difference():
    reordered = {name: StoredRecord(s.sequence, dict(reversed(list(s.record.items())))) for name, s in STORED.items()}

    assert compare_audit_copies(TOPIC, reordered) == []
