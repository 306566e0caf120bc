"""The `voxflow` command group, and what its commands share."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import click

from infra.settings import Settings


def run_async(coroutine):
    return asyncio.run(coroutine)


def echo_json(document) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """voxflow: consent-gated, watermarked, audited voice cloning on Kafka."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = Settings()
