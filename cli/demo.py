"""`voxflow demo`: the main journey end to end on the embedded stack."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.app import main
from infra.settings import Settings


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--keep-stack", is_flag=True, help="Leave the embedded stack running afterwards.")
@click.pass_obj
def demo(settings: Settings, as_json: bool, out_dir: Path, keep_stack: bool) -> None:
    """End to end on the embedded stack: upload, consent, adapt, synthesise ×3, verify, tear down."""
    from demo.journey import run_demo

    summary = run_demo(settings, out_dir=out_dir, keep_stack=keep_stack)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        width = max(map(len, summary))
        for key, value in summary.items():
            click.echo(f"{key:>{width}}: {value}")
    if not summary["ok"]:
        sys.exit(1)
