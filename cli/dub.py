"""`voxflow dub`: dub a video or audio file in a consented voice from a timed script, through the client package."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cli.app import echo_json, main, run_async

SCRIPT_FORMATS = {".srt": "srt", ".vtt": "vtt", ".json": "json"}
OUTPUT_SUFFIXES = {"video/mp4": ".mp4", "audio/wav": ".wav"}
DEFAULT_DUB_TIMEOUT_S = 900.0


@main.command()
@click.argument("media", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--voice", "voice_id", required=True, help="A voice whose consent covers the purpose 'dubbing'.")
@click.option("--script", "script_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The timed lines: SRT, WebVTT (.vtt) or JSON ([{start, end, text, language?}], in seconds).")
@click.option("--format", "script_format", type=click.Choice(sorted(set(SCRIPT_FORMATS.values()))), default=None,
              help="The script's format.  [default: from its suffix]")
@click.option("--background", type=click.Choice(["duck", "replace"]), default="duck", show_default=True,
              help="duck: the original sound stays, quieter under each line; replace: only the new speech.")
@click.option("--language", default="en", show_default=True, help="The lines' language where the script names none.")
@click.option("--engine", type=click.Choice(["kokoro", "espeak", "piper"]), default=None,
              help="The synthesis engine.  [default: the worker's]")
@click.option("--tenant", "tenant_id", default=None, help="The tenant whose key signs the request.  "
              "[default: VOXFLOW_TENANT_ID]")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the dubbed file.  [default: MEDIA's name + .dubbed.mp4 (video) or .dubbed.wav]")
@click.option("--timeout", "timeout_s", type=float, default=DEFAULT_DUB_TIMEOUT_S, show_default=True,
              help="Seconds to wait for the dub.")
def dub(media: Path, voice_id: str, script_file: Path, script_format: str | None, background: str, language: str,
        engine: str | None, tenant_id: str | None, out_file: Path | None, timeout_s: float) -> None:
    """Dub MEDIA in the voice, line by line from a timed script, and write the result (lip-sync is not attempted).

    Each line is spoken in its slot (sped up to 1.35x where it must; what still runs over is cut and listed
    under `overflows`), mixed over the original sound and put back into the video. Prints dub.completed as JSON.
    Reads the client settings from the environment (ClientConfig.from_environment)."""
    from cli.progress import ProgressDisplay
    from voxflow import AsyncClient, ClientConfig, VoxflowClientError
    from voxflow.client import succeeded

    script_format = script_format or _script_format(script_file)
    overrides = {} if tenant_id is None else {"VOXFLOW_TENANT_ID": tenant_id}

    async def go():
        config = ClientConfig.from_environment({**os.environ, **overrides})
        async with AsyncClient(config) as client:
            request = await client.dub(voice_id, path=media, script=script_file.read_text(encoding="utf-8"),
                                       script_format=script_format, background=background, language=language,
                                       engine=engine)
            with ProgressDisplay("dubbing") as progress:
                completed = succeeded(await client.wait_for(request, timeout_s=timeout_s,
                                                            on_progress=progress.on_event))
            return completed, await client.download_dub(request.dub_id)

    try:
        completed, data = run_async(go())
    except VoxflowClientError as error:
        raise click.ClickException(str(error)) from error
    target = out_file or media.with_name(f"{media.stem}.dubbed{OUTPUT_SUFFIXES[completed.media_type]}")
    target.write_bytes(data)
    echo_json({**completed.model_dump(mode="json"), "written_to": str(target)})


def _script_format(script_file: Path) -> str:
    script_format = SCRIPT_FORMATS.get(script_file.suffix.lower())
    if script_format is None:
        raise click.BadParameter(f"cannot tell the format of {script_file.name}: name it .srt, .vtt or .json, "
                                 "or pass --format", param_hint="--script")
    return script_format
