"""`voxflow stack`: the embedded S3 server, broker and PostgreSQL."""

from __future__ import annotations


import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings


@main.group()
def stack() -> None:
    """The embedded stack: S3 server (rclone), Tansu broker on it, PostgreSQL 18 (no Docker)."""


def _embedded(settings: Settings):
    """The stack on the ports of VOXFLOW_KAFKA_BOOTSTRAP, VOXFLOW_POSTGRES_DSN and VOXFLOW_S3_ENDPOINT."""
    from infra.embedded import EmbeddedStack

    return EmbeddedStack.from_settings(settings)


@stack.command("up")
@click.pass_obj
def stack_up(settings: Settings) -> None:
    """Start the embedded services, create the topics, the bucket and apply migrations."""
    from infra.embedded import check_broker_security
    from streams.session import prepare_stack

    check_broker_security(settings)
    status = _embedded(settings).up()
    run_async(prepare_stack(settings))
    echo_json(status.as_dict())


@stack.command("down")
@click.argument("services", nargs=-1, type=click.Choice(["s3", "broker", "postgres"]))
@click.pass_obj
def stack_down(settings: Settings, services: tuple[str, ...]) -> None:
    """Stop the embedded services, or only the named ones (their data stays in the data dir)."""
    _embedded(settings).down(*services)
    click.echo(f"stopped: {', '.join(services) or 'stack'}")


@stack.command("status")
@click.pass_obj
def stack_status(settings: Settings) -> None:
    echo_json(_embedded(settings).status().as_dict())
