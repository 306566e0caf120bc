"""The `voxflow` command line."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import click

from infra.errors import InfraError
from infra.settings import Settings
from processors.constants import REFINEMENT_STEPS


def _run(coroutine):
    return asyncio.run(coroutine)


def _echo_json(document) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """voxflow: consent-gated, watermarked, audited voice cloning on Kafka."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = Settings()


# --- stack ----------------------------------------------------------------------------------

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
    from streams.session import prepare_stack

    status = _embedded(settings).up()
    _run(prepare_stack(settings))
    _echo_json(status.as_dict())


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
    _echo_json(_embedded(settings).status().as_dict())


# --- topics, worker ---------------------------------------------------------------------------

@main.command()
@click.option("--create", is_flag=True, help="Create missing topics.")
@click.pass_obj
def topics(settings: Settings, create: bool) -> None:
    """List voxflow's topics (and create missing ones with --create)."""
    from infra.kafka import ensure_topics, list_topics
    from streams.topics import ALL_TOPICS

    if create:
        created = _run(ensure_topics(settings.kafka_bootstrap, ALL_TOPICS, partitions=settings.topic_partitions,
                                     replication=settings.topic_replication))
        click.echo(f"created: {', '.join(created) or 'none (all exist)'}")
    existing = set(_run(list_topics(settings.kafka_bootstrap)))
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


# --- producing and consuming ------------------------------------------------------------------

@main.command()
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--voice", "voice_id", required=True)
@click.option("--tenant", "tenant_id", default="default", show_default=True)
@click.pass_obj
def upload(settings: Settings, audio: Path, voice_id: str, tenant_id: str) -> None:
    """Put a voice sample in the object store, then produce sample.uploaded."""
    from streams.session import client_session
    from streams.client import upload_sample

    async def go():
        async with client_session(settings) as session:
            return await upload_sample(session.store, session.publisher, data=audio.read_bytes(),
                                       filename=audio.name, tenant_id=tenant_id, voice_id=voice_id)

    _echo_json(_run(go()).model_dump(mode="json"))


@main.command()
@click.argument("source", type=click.File("rb"), default="-")
@click.pass_obj
def produce(settings: Settings, source) -> None:
    """Validate JSON events (one per line, or one document) and produce each to its topic."""
    from schemas import parse_event
    from schemas.errors import SchemaError
    from streams.session import client_session

    text = source.read().decode()
    lines = [text] if text.lstrip().startswith("{") and "\n{" not in text.strip() else text.splitlines()
    try:
        parsed = [parse_event(line) for line in lines if line.strip()]
    except SchemaError as error:
        raise click.ClickException(f"not produced: {error}") from error

    async def go():
        async with client_session(settings, with_store=False) as session:
            for event in parsed:
                await session.publisher.publish(event)

    _run(go())
    for event in parsed:
        click.echo(f"produced {event.type} {event.event_id}")


@main.command()
@click.argument("topic_names", nargs=-1)
@click.option("--follow", is_flag=True, help="Keep waiting for new events.")
@click.option("--idle-timeout", default=2.0, show_default=True, help="Seconds without events before stopping.")
@click.pass_obj
def consume(settings: Settings, topic_names: tuple[str, ...], follow: bool, idle_timeout: float) -> None:
    """Print events from topics (default: voxflow.results) as JSON lines, from the beginning."""
    from infra.kafka import consume as consume_topics
    from streams.topics import RESULTS

    async def go():
        async for topic, partition, offset, _key, value in consume_topics(
            settings.kafka_bootstrap, list(topic_names) or [RESULTS], idle_timeout_s=None if follow else idle_timeout
        ):
            click.echo(json.dumps({"topic": topic, "partition": partition, "offset": offset,
                                   "event": _json_or_text(value)}))

    _run(go())


def _json_or_text(value: bytes):
    try:
        return json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return value.decode("utf-8", errors="replace")


# --- consent ----------------------------------------------------------------------------------

@main.group()
def consent() -> None:
    """Owner keys, signed consent and revocation."""


@consent.command("keygen")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
def consent_keygen(key_file: Path) -> None:
    """Create an Ed25519 owner key (raw private key, base64) and print its public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from streams.client import public_key_base64

    if key_file.exists():
        raise click.ClickException(f"{key_file} exists; not overwriting an owner key")
    private_key = Ed25519PrivateKey.generate()
    raw = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    key_file.write_text(base64.b64encode(raw).decode() + "\n")
    key_file.chmod(0o600)
    click.echo(public_key_base64(private_key))


def _load_owner_key(key_file: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(key_file.read_text().strip()))
    except ValueError as error:
        raise click.ClickException(f"{key_file} is not an owner key made by `voxflow consent keygen`") from error


@consent.command("grant")
@click.option("--voice", "voice_id", required=True)
@click.option("--tenant", "tenant_id", default="default", show_default=True)
@click.option("--owner", "owner_id", required=True)
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--purpose", "purposes", multiple=True, required=True)
@click.option("--language", "languages", multiple=True, default=("en",), show_default=True)
@click.option("--days", default=365, show_default=True, help="Valid for this many days.")
@click.option("--max-uses", type=int, default=None)
@click.option("--statement", required=True, help="The consent statement the owner agreed to (and spoke).")
@click.option("--statement-audio", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A recording of the owner speaking the statement; its voice must match the samples.")
@click.pass_obj
def consent_grant(settings: Settings, voice_id, tenant_id, owner_id, key_file, purposes, languages, days, max_uses,
                  statement, statement_audio) -> None:
    """Sign a consent document with the owner's key and produce consent.granted."""
    from streams.client import signed_consent
    from streams.session import client_session

    audio = statement_audio.read_bytes() if statement_audio else None
    audio_key = f"consents/{tenant_id}/{voice_id}/{uuid.uuid4()}{statement_audio.suffix}" if audio else None
    event = signed_consent(_load_owner_key(key_file), tenant_id=tenant_id, voice_id=voice_id, owner_id=owner_id,
                           purposes=list(purposes), languages=list(languages), statement_text=statement,
                           valid_for=timedelta(days=days), max_uses=max_uses, statement_audio_key=audio_key,
                           statement_audio=audio)

    async def go():
        async with client_session(settings, with_store=audio is not None) as session:
            if audio is not None:
                await session.store.put(audio_key, audio)
            await session.publisher.publish(event)

    _run(go())
    _echo_json(event.model_dump(mode="json"))


@consent.command("revoke")
@click.option("--voice", "voice_id", required=True)
@click.option("--tenant", "tenant_id", default="default", show_default=True)
@click.option("--consent-id", required=True, type=click.UUID)
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def consent_revoke(settings: Settings, voice_id, tenant_id, consent_id: uuid.UUID, key_file: Path) -> None:
    """Sign a revocation with the owner's key and produce consent.revoked."""
    from streams.client import signed_revocation
    from streams.session import client_session

    event = signed_revocation(_load_owner_key(key_file), tenant_id=tenant_id, voice_id=voice_id,
                              consent_id=consent_id)

    async def go():
        async with client_session(settings, with_store=False) as session:
            await session.publisher.publish(event)

    _run(go())
    _echo_json(event.model_dump(mode="json"))


# --- voices -----------------------------------------------------------------------------------

@main.group()
def voice() -> None:
    """Voice administration."""


@voice.command("protect")
@click.argument("voice_id")
@click.option("--unprotect", is_flag=True, help="Lift the protection.")
@click.pass_obj
def voice_protect(settings: Settings, voice_id: str, unprotect: bool) -> None:
    """Protect a voice: it is never synthesised, and samples that sound like it are blocked as impersonation."""
    from infra.repositories import VoiceRepository
    from streams.session import database

    async def go():
        async with database(settings) as pool:
            return await VoiceRepository(pool).set_protected(voice_id=voice_id, protected=not unprotect)

    if not _run(go()):
        raise click.ClickException(f"no voice {voice_id!r}")
    click.echo(f"voice {voice_id} is {'no longer ' if unprotect else ''}protected")


# --- audit, schemas, analyze, demo ------------------------------------------------------------

@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@click.pass_obj
def audit_verify(settings: Settings) -> None:
    """Recompute the whole chain; exit 1 and name the first bad entry if it was tampered with."""
    from streams.auditing import verify_audit_log

    verification = _run(verify_audit_log(settings))
    _echo_json(verification._asdict() if hasattr(verification, "_asdict") else vars(verification))
    if not verification.valid:
        sys.exit(1)


@audit.command("replay")
@click.option("--after", default=0, show_default=True, help="Start after this sequence number.")
@click.option("--voice", "voice_id", default=None, help="Only records about this voice.")
@click.pass_obj
def audit_replay(settings: Settings, after: int, voice_id: str | None) -> None:
    """Print audit records in chain order as JSON lines."""
    from streams.auditing import read_audit_log

    for entry in _run(read_audit_log(settings, after_sequence=after)):
        if voice_id is None or entry.record.get("voice_id") == voice_id:
            click.echo(json.dumps({"sequence": entry.sequence, "hash": entry.record_hash, "record": entry.record}))


@main.group()
def schemas() -> None:
    """Event schemas."""


@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    """Write JSON Schema for every event type (for producers in other languages)."""
    from schemas import export_json_schemas

    for path in export_json_schemas(directory):
        click.echo(str(path))


@main.command()
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def analyze(settings: Settings, audio: Path) -> None:
    """Quality-gate a file locally and check it for a voxflow watermark."""
    from processors.scoring.analysis import analyze_audio

    _echo_json(analyze_audio(audio.read_bytes(), settings.watermark_key()))


@main.command()
@click.option("--reference", "references", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A recording of the target voice (repeat: ~30 s in all clones best, one 5-10 s clip works).")
@click.option("--text", "texts", multiple=True, required=True,
              help="Text to speak (repeat for several: the voice is fitted once).")
@click.option("--language", default="en", show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Output WAV for a single --text.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for DIR/01.wav, DIR/02.wav, … in the order of the texts.")
@click.option("--engine", type=click.Choice(["kokoro", "espeak", "piper"]), default="kokoro", show_default=True,
              help="kokoro: neural voice fitted to the references; espeak/piper: that base voice converted with WORLD.")
@click.option("--tier", type=click.Choice(["instant", "refined"]), default="refined", show_default=True,
              help="Kokoro only: instant (nearest stock voices, seconds) or refined (style fitted, minutes on a CPU).")
@click.option("--steps", default=REFINEMENT_STEPS, show_default=True, help="Gradient steps of the refined tier's fit.")
@click.option("--speed", default=1.0, show_default=True)
@click.option("--pitch", "pitch_semitones", default=0.0, show_default=True, help="Semitones.")
@click.option("--energy", "energy_db", default=0.0, show_default=True, help="dB.")
@click.option("--emotion", type=click.Choice(["neutral", "happy", "sad", "angry"]), default="neutral")
@click.option("--piper-voice", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Any Piper voice .onnx file (needs the piper extra).")
@click.option("--json", "as_json", is_flag=True, help="Also score the outputs and print a JSON report.")
def clone(references, texts, language, out_file, out_dir, engine, tier, steps, speed, pitch_semitones, energy_db,
          emotion, piper_voice, as_json) -> None:
    """Clone a voice locally, without the stack (no consent gate: only for voices you may use)."""
    from infra.cloning import clone_locally
    from processors.errors import ProcessorError
    from processors.synthesis.engine import SynthesisControls

    outputs = _clone_outputs(texts, out_file, out_dir)
    try:
        controls = SynthesisControls(speed=speed, pitch_semitones=pitch_semitones, energy_db=energy_db, emotion=emotion)
        report = clone_locally(
            [path.read_bytes() for path in references], list(texts), outputs, engine=engine, tier=tier, steps=steps,
            language=language, controls=controls, piper_voice=piper_voice, score=as_json,
            on_progress=None if as_json else _fit_progress_printer(),
        )
    except (ProcessorError, InfraError) as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        _echo_json(report)
        return
    for entry in report["outputs"]:
        click.echo(f"wrote {entry['out']} ({entry['duration_s']:.1f} s)")


def _clone_outputs(texts, out_file: Path | None, out_dir: Path | None) -> list[Path]:
    if (out_file is None) == (out_dir is None):
        raise click.UsageError("give either --out FILE (one --text) or --out-dir DIR")
    if out_file is not None:
        if len(texts) > 1:
            raise click.UsageError("several --text need --out-dir DIR")
        return [out_file]
    return [out_dir / f"{index:02d}.wav" for index in range(1, len(texts) + 1)]


def _fit_progress_printer():
    def show(step: int, steps: int, similarity: float) -> None:
        click.echo(f"fitting the voice: step {step}/{steps}, similarity {similarity:.3f}", err=True)

    return show


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--keep-stack", is_flag=True, help="Leave the embedded stack running afterwards.")
@click.pass_obj
def demo(settings: Settings, as_json: bool, out_dir: Path, keep_stack: bool) -> None:
    """End to end on the embedded stack: upload, consent, adapt, synthesise ×3, verify, tear down."""
    from streams.demo import run_demo

    summary = run_demo(settings, out_dir=out_dir, keep_stack=keep_stack)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        width = max(map(len, summary))
        for key, value in summary.items():
            click.echo(f"{key:>{width}}: {value}")
    if not summary["ok"]:
        sys.exit(1)
