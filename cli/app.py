"""The `voxflow` command group, and what its commands share."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import click

from infra.errors import InfraError
from infra.settings import Settings
from processors.errors import ProcessorError
from schemas.errors import SchemaError
from streams.errors import StreamError

# What a command can fail with that the user can act on: said in one line, never a traceback.
USER_FACING_ERRORS = (InfraError, StreamError, ProcessorError, SchemaError)


def run_async(coroutine):
    return asyncio.run(coroutine)


def echo_json(document) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


class VoxflowGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_FACING_ERRORS as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=VoxflowGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """voxflow: consent-gated, watermarked, audited voice cloning on Kafka."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = Settings()
