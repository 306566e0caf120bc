"""`voxflow topics` and `voxflow worker`."""

from __future__ import annotations

import click

from cli.app import echo_json, main, run_async
from infra.errors import InfraError
from infra.settings import Settings


@main.command()
@click.option("--create", is_flag=True, help="Create missing topics first.")
@click.option("--group", default=None, help="The consumer group whose lag to show.  [default: the workers' "
                                            "(VOXFLOW_CONSUMER_GROUP)]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
@click.pass_obj
def topics(settings: Settings, create: bool, group: str | None, as_json: bool) -> None:
    """voxflow's topics: each partition's start and end offsets, and how far the workers have read it.

    `committed` is the consumer group's next offset to read and `lag` what is left (end - committed);
    both are "-" (null in --json) where the group never committed: no worker has read the partition yet.
    """
    from infra.kafka import ensure_topics, list_topics, partition_offsets
    from streams.topics import ALL_TOPICS

    group = group or settings.consumer_group
    if create:
        created = run_async(ensure_topics(settings.kafka_bootstrap, ALL_TOPICS, partitions=settings.topic_partitions,
                                          replication=settings.topic_replication,
                                          security=settings.broker_security()))
        click.echo(f"created: {', '.join(created) or 'none (all exist)'}", err=True)
    existing = set(run_async(list_topics(settings.kafka_bootstrap, security=settings.broker_security())))
    offsets = run_async(partition_offsets(settings.kafka_bootstrap, [t for t in ALL_TOPICS if t in existing],
                                          group_id=group, security=settings.broker_security()))
    report = topic_report(ALL_TOPICS, existing, offsets, group)
    if as_json:
        echo_json(report)
    else:
        from rich.console import Console

        Console(soft_wrap=True).print(topic_table(report))


def topic_report(names, existing: set[str], offsets, group: str) -> dict:
    """``topics --json``: every topic in ``names``, whether it exists, and its partitions' offsets and lag."""
    by_topic: dict[str, list[dict]] = {name: [] for name in names}
    for partition in offsets:
        by_topic[partition.topic].append({
            "partition": partition.partition, "start_offset": partition.start_offset,
            "end_offset": partition.end_offset, "committed": partition.committed, "lag": partition.lag})
    return {"consumer_group": group,
            "topics": [{"topic": name, "exists": name in existing, "partitions": by_topic[name]} for name in names]}


def topic_table(report: dict):
    from rich.table import Table

    table = Table(title=f"lag of consumer group {report['consumer_group']}", title_justify="left")
    for heading in ("topic", "partition", "start", "end", "committed", "lag"):
        table.add_column(heading, justify="left" if heading == "topic" else "right")
    for topic in report["topics"]:
        if not topic["exists"]:
            table.add_row(topic["topic"], "missing", "", "", "", "")
            table.caption = "`voxflow topics --create` makes the missing topics"
        for row in topic["partitions"]:
            table.add_row(topic["topic"], *(_cell(row[key]) for key in
                                            ("partition", "start_offset", "end_offset", "committed", "lag")))
    return table


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


@main.command()
@click.option("--stages", default=None, metavar="NAMES",
              help="comma-separated stages to run (ingest, consent, adaptation, refinement, synthesis, watermark, "
                   "scoring, erasure, dubbing, analysis, audit, anomaly); default: all")
@click.pass_obj
def worker(settings: Settings, stages: str | None) -> None:
    """Run the Faust worker: the stage agents, until interrupted."""
    from streams.stages import stages_named
    from streams.worker import run_worker_forever

    if stages:
        names = [name.strip() for name in stages.split(",") if name.strip()]
        try:
            stages_named(names)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--stages") from error
        settings = settings.model_copy(update={"stages": names})
    try:
        run_worker_forever(settings)
    except InfraError as error:  # an unreachable broker, database or store at start: one line, not a traceback
        raise click.ClickException(str(error)) from error
