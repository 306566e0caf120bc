"""`voxflow produce`, `consume` and `topics` against the real embedded broker, as a user runs them."""

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from click.testing import CliRunner

from cli import main
from infra.settings import Settings
from tests.journeys import TENANT

pytestmark = pytest.mark.integration


def cli_environment(settings: Settings) -> dict[str, str]:
    return {"VOXFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "VOXFLOW_DATA_DIR": str(settings.data_dir),
            "VOXFLOW_CONSUMER_GROUP": settings.consumer_group,
            "VOXFLOW_TOPIC_PARTITIONS": str(settings.topic_partitions)}


@pytest.fixture(scope="module")
def voxflow(stack_settings):
    """Runs `voxflow ARGS…` on the embedded stack (its topics created first, as `topics --create` does)."""
    environment = cli_environment(stack_settings)

    def run(*arguments: str, input: str | None = None):
        return CliRunner().invoke(main, list(arguments), input=input, env=environment)

    created = run("topics", "--create", "--json")
    assert created.exit_code == 0, created.output
    return run


def synthesis_body(voice_id: str) -> str:
    return json.dumps({"voice_id": voice_id, "text": "Good morning.", "purpose": "narration"})


def end_offsets(report: dict, topic: str) -> dict[int, int]:
    (entry,) = [entry for entry in report["topics"] if entry["topic"] == topic]
    return {row["partition"]: row["end_offset"] for row in entry["partitions"]}


def test_a_produced_body_is_consumed_back_as_exactly_that_event(voxflow):
    voice_id = f"cli-{uuid.uuid4().hex[:8]}"

    produced = voxflow("produce", "synthesis.requested", "--tenant", TENANT, "--json", "-",
                       input=synthesis_body(voice_id))
    consumed = voxflow("consume", "synthesis", "--from-beginning", "--type", "synthesis.req*",
                       "--filter", f"voice={voice_id}")

    assert produced.exit_code == 0, produced.output
    event = json.loads(produced.stdout)
    assert event["type"] == "synthesis.requested" and event["tenant_id"] == TENANT and event["voice_id"] == voice_id
    assert consumed.exit_code == 0, consumed.output
    assert [json.loads(line) for line in consumed.stdout.splitlines()] == [event]


def test_an_invalid_body_is_one_line_and_exit_1(voxflow):
    result = voxflow("produce", "synthesis.requested", "--tenant", TENANT, "--json", "-",
                     input=json.dumps({"voice_id": "cli-bad", "text": "Hi."}))

    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "purpose: Field required" in result.output


def test_consume_stops_after_max_events(voxflow):
    voice_id = f"cli-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        produced = voxflow("produce", "synthesis.requested", "--tenant", TENANT, input=synthesis_body(voice_id))
        assert produced.exit_code == 0, produced.output

    consumed = voxflow("consume", "voxflow.synthesis", "--from-beginning", "--filter", f"voice={voice_id}",
                       "--max", "2")

    assert consumed.exit_code == 0 and len(consumed.stdout.splitlines()) == 2


def test_an_unknown_topic_is_one_line_naming_voxflows(voxflow):
    result = voxflow("consume", "resluts")

    assert result.exit_code == 1 and "no topic 'resluts'" in result.output and "results" in result.output


def test_topics_show_partitions_end_offsets_and_a_groups_lag(voxflow, stack_settings):
    group = f"cli-lag-{uuid.uuid4().hex[:8]}"
    before = json.loads(voxflow("topics", "--json", "--group", group).stdout)
    assert voxflow("produce", "synthesis.requested", "--tenant", TENANT,
                   input=synthesis_body(f"cli-{uuid.uuid4().hex[:8]}")).exit_code == 0
    asyncio.run(commit_end_offsets(stack_settings.kafka_bootstrap, group, "voxflow.synthesis"))

    result = voxflow("topics", "--json", "--group", group)

    assert result.exit_code == 0, result.output
    after = json.loads(result.stdout)
    assert all(entry["exists"] for entry in after["topics"])
    assert all(len(entry["partitions"]) == stack_settings.topic_partitions for entry in after["topics"])
    grown = end_offsets(after, "voxflow.synthesis")
    assert sum(grown.values()) == sum(end_offsets(before, "voxflow.synthesis").values()) + 1
    (synthesis,) = [entry for entry in after["topics"] if entry["topic"] == "voxflow.synthesis"]
    assert [(row["committed"], row["lag"]) for row in synthesis["partitions"]] == [(grown[p], 0) for p in sorted(grown)]
    (results,) = [entry for entry in after["topics"] if entry["topic"] == "voxflow.results"]
    assert all(row["committed"] is None and row["lag"] is None for row in results["partitions"])


async def commit_end_offsets(bootstrap: str, group: str, topic: str) -> None:
    """What a consumer group that has read ``topic`` to its end leaves committed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        await consumer.commit(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


def test_the_table_lists_every_topic(voxflow):
    result = voxflow("topics")

    assert result.exit_code == 0, result.output
    assert "voxflow.results" in result.output and "voxflow.deadletter" in result.output and "lag" in result.output
