"""`voxflow produce` and `voxflow consume` as a user types them, up to the point where the broker would be needed."""

import json

import click
import pytest
from click.testing import CliRunner

from cli import main
from cli.events import event_matches, json_documents, topic_named

# nothing listens here: a command that got as far as the broker would fail with "cannot reach Kafka"
UNREACHABLE_BROKER = {"VOXFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
SYNTHESIS_BODY = {"voice_id": "narrator-1", "text": "Hello there.", "purpose": "narration"}


def produce(*arguments: str, body, tmp_path):
    text = body if isinstance(body, str) else json.dumps(body)
    return CliRunner().invoke(main, ["produce", *arguments, "--json", "-"], input=text,
                              env={**UNREACHABLE_BROKER, "VOXFLOW_DATA_DIR": str(tmp_path)})


def test_an_unknown_event_type_is_one_line_naming_the_close_ones(tmp_path):
    result = produce("synthesis.request", body=SYNTHESIS_BODY, tmp_path=tmp_path)

    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert "unknown event type 'synthesis.request'" in result.output and "synthesis.requested" in result.output


def test_an_invalid_body_names_the_field_and_the_problem(tmp_path):
    result = produce("synthesis.requested", body={**SYNTHESIS_BODY, "text": ""}, tmp_path=tmp_path)

    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "not produced" in result.output and "text: String should have at least 1 character" in result.output


def test_a_body_for_another_tenant_is_refused(tmp_path):
    result = produce("synthesis.requested", "--tenant", "acme", body={**SYNTHESIS_BODY, "tenant_id": "other"},
                     tmp_path=tmp_path)

    assert result.exit_code == 1 and "tenant_id is 'other', not 'acme'" in result.output


def test_a_tenant_without_a_signing_key_is_told_how_to_make_one_before_any_connection(tmp_path):
    result = produce("synthesis.requested", "--tenant", "acme", body=SYNTHESIS_BODY, tmp_path=tmp_path)

    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "no signing key for tenant 'acme'" in result.output and "voxflow tenant add acme" in result.output


def test_a_key_file_that_is_not_a_key_is_refused(tmp_path):
    key_file = tmp_path / "acme.key"
    key_file.write_text("not hex")

    result = produce("synthesis.requested", "--key", str(key_file), body=SYNTHESIS_BODY, tmp_path=tmp_path)

    assert result.exit_code == 1 and "does not hold a hex key" in result.output


def test_whole_events_are_checked_against_the_tenant_given(tmp_path):
    event = {"type": "adaptation.requested", "tenant_id": "other", "voice_id": "narrator-1"}

    result = produce("--tenant", "acme", body=event, tmp_path=tmp_path)

    assert result.exit_code == 1 and "is for tenant 'other', not 'acme'" in result.output


def test_empty_input_produces_nothing(tmp_path):
    result = produce("synthesis.requested", body="\n", tmp_path=tmp_path)

    assert result.exit_code == 1 and "nothing to produce" in result.output


def test_input_is_one_pretty_printed_document_or_json_lines():
    assert json_documents(json.dumps(SYNTHESIS_BODY, indent=2)) == [json.dumps(SYNTHESIS_BODY, indent=2)]
    assert json_documents('{"a": 1}\n\n{"b": 2}\n') == ['{"a": 1}', '{"b": 2}']


def test_a_filter_without_an_equals_sign_is_a_usage_error():
    result = CliRunner().invoke(main, ["consume", "--filter", "voice"], env=UNREACHABLE_BROKER)

    assert result.exit_code == 2 and "'voice' is not KEY=VALUE" in result.output


def test_consume_help_says_where_reading_starts():
    result = CliRunner().invoke(main, ["consume", "--help"])

    assert result.exit_code == 0
    assert "starts at the end of each partition" in result.output and "--from-beginning" in result.output


EVENT = {"type": "synthesis.chunk_ready", "voice_id": "narrator-1", "chunk_index": 0, "tenant_id": "acme"}


@pytest.mark.parametrize(("types", "filters", "expected"), [
    ((), (), True),
    (("synthesis.*",), (), True),
    (("adaptation.*", "synthesis.chunk_ready"), (), True),
    (("synthesis.completed",), (), False),
    ((), (("voice", "narrator-1"),), True),
    ((), (("voice_id", "narrator-1"),), True),
    ((), (("voice", "someone-else"),), False),
    ((), (("chunk_index", "0"),), True),
    ((), (("voice", "narrator-1"), ("tenant", "other")), False),
    ((), (("missing", "x"),), False),
])
def test_events_match_any_type_glob_and_every_field_filter(types, filters, expected):
    assert event_matches(EVENT, types, filters) is expected


def test_topics_go_by_their_full_or_their_short_name():
    existing = ["voxflow.results", "voxflow.deadletter", "mine"]

    assert topic_named("results", existing) == "voxflow.results"
    assert topic_named("voxflow.deadletter", existing) == "voxflow.deadletter"
    assert topic_named("mine", existing) == "mine"
    with pytest.raises(click.ClickException, match="no topic 'resluts'.*deadletter, results"):
        topic_named("resluts", existing)


def test_waiting_on_an_event_that_is_no_request_is_refused_before_any_connection(tmp_path):
    key_file = tmp_path / "acme.key"
    key_file.write_text("ab" * 32)
    body = {"voice_id": "narrator-1", "synthesis_id": "0b6f4b8e-9a7e-4c1f-8f4e-2f1c9d8a7b6c", "reason": "test"}

    result = produce("synthesis.failed", "--key", str(key_file), "--wait", body=body, tmp_path=tmp_path)

    assert result.exit_code == 1 and "--wait: synthesis.failed is not a request the client can wait on" in result.output


def test_of_several_bodies_the_invalid_one_is_named_and_none_is_produced(tmp_path):
    bodies = "\n".join(json.dumps(body) for body in (SYNTHESIS_BODY, {**SYNTHESIS_BODY, "purpose": ""}))

    result = produce("synthesis.requested", body=bodies, tmp_path=tmp_path)

    assert result.exit_code == 1 and "not produced (document 2 of 2): invalid event: purpose" in result.output
