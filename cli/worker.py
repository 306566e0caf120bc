"""`voxflow topics` and `voxflow worker`."""

from __future__ import annotations


import click

from cli.app import main, run_async
from infra.errors import InfraError
from infra.settings import Settings


@main.command()
@click.option("--create", is_flag=True, help="Create missing topics.")
@click.pass_obj
def topics(settings: Settings, create: bool) -> None:
    """List voxflow's topics (and create missing ones with --create)."""
    from infra.kafka import ensure_topics, list_topics
    from streams.topics import ALL_TOPICS

    if create:
        created = run_async(ensure_topics(settings.kafka_bootstrap, ALL_TOPICS, partitions=settings.topic_partitions,
                                     replication=settings.topic_replication))
        click.echo(f"created: {', '.join(created) or 'none (all exist)'}")
    existing = set(run_async(list_topics(settings.kafka_bootstrap)))
    for name in ALL_TOPICS:
        click.echo(f"{'✓' if name in existing else '✗'} {name}")


@main.command()
@click.option("--stages", default=None, metavar="NAMES",
              help="comma-separated stages to run (ingest, consent, adaptation, refinement, synthesis, watermark, "
                   "audit, anomaly); default: all")
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
