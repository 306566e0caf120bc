"""`voxflow topics`: what it reports for each topic, partition and consumer group, without a broker."""

from cli.worker import topic_report, topic_table
from infra.kafka import PartitionOffsets


def report():
    offsets = [PartitionOffsets("voxflow.ingest", 0, 0, 12, 12), PartitionOffsets("voxflow.ingest", 1, 3, 7, 5),
               PartitionOffsets("voxflow.results", 0, 0, 40, None)]
    return topic_report(["voxflow.ingest", "voxflow.results", "voxflow.dubbing"],
                        {"voxflow.ingest", "voxflow.results"}, offsets, "voxflow-worker")


def test_each_partition_has_its_offsets_and_the_groups_lag():
    ingest, results, dubbing = report()["topics"]

    assert ingest == {"topic": "voxflow.ingest", "exists": True, "partitions": [
        {"partition": 0, "start_offset": 0, "end_offset": 12, "committed": 12, "lag": 0},
        {"partition": 1, "start_offset": 3, "end_offset": 7, "committed": 5, "lag": 2}]}
    assert results["partitions"][0]["committed"] is None and results["partitions"][0]["lag"] is None
    assert dubbing == {"topic": "voxflow.dubbing", "exists": False, "partitions": []}


def test_the_table_says_how_to_make_a_missing_topic():
    table = topic_table(report())

    assert table.caption == "`voxflow topics --create` makes the missing topics"
    assert table.row_count == 4
