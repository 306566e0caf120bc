"""`voxflow verify FILE`: the chain of custody of an output file (a synthesis or a dub), link by link."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.app import echo_json, main, run_async
from infra.settings import Settings


@main.command()
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_obj
def verify(settings: Settings, audio: Path, as_json: bool) -> None:
    """Check an output file's chain of custody; exit 1 if any link fails.

    Made by voxflow (C2PA manifest, watermark with the manifest's payload), for which synthesis or dub and voice,
    under which owner-signed consent (Ed25519 signature and scope), and which signed audit checkpoint covers it.
    """
    from processors.trust.provenance import MIME_TYPE_BY_SUFFIX, UNKNOWN_MIME_TYPE
    from streams.custody import verify_custody

    mime_type = MIME_TYPE_BY_SUFFIX.get(audio.suffix.lower(), UNKNOWN_MIME_TYPE)
    report = run_async(verify_custody(settings, audio.read_bytes(), mime_type))
    if as_json:
        echo_json(report.to_dict())
    else:
        for link in report.links:
            click.echo(f"{'ok    ' if link.ok else 'FAILED'} {link.name}: {link.detail}")
        click.echo(f"chain of custody {'holds' if report.ok else 'is broken'}")
    if not report.ok:
        sys.exit(1)
