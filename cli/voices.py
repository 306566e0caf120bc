"""`voxflow voice protect|clear-review|erase`, `voxflow analyze` and `voxflow clone`."""

from __future__ import annotations

from pathlib import Path

import click

from cli.app import echo_json, main, run_async
from infra.errors import InfraError
from infra.settings import Settings
from processors.constants import REFINEMENT_STEPS


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

    if not run_async(go()):
        raise click.ClickException(f"no voice {voice_id!r}")
    click.echo(f"voice {voice_id} is {'no longer ' if unprotect else ''}protected")


@voice.command("clear-review")
@click.argument("voice_id")
@click.pass_obj
def voice_clear_review(settings: Settings, voice_id: str) -> None:
    """Let a voice held for review (it sounds like another tenant's) be built: an operator's decision."""
    from infra.repositories import VoiceRepository
    from streams.session import database

    async def go():
        async with database(settings) as pool:
            return await VoiceRepository(pool).clear_review(voice_id=voice_id)

    if not run_async(go()):
        raise click.ClickException(f"no voice {voice_id!r}")
    click.echo(f"voice {voice_id} is cleared: send adaptation.requested again to build it")


@voice.command("erase")
@click.argument("voice_id")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--owner-key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The owner's key (from `voxflow consent keygen`): the owner asks, the tenant's key sends it.")
@click.option("--reason", default=None, help="Without --owner-key: the operator's reason (signed by the worker key).")
@click.pass_obj
def voice_erase(settings: Settings, voice_id: str, tenant_id: str, key_file: Path | None, reason: str | None) -> None:
    """Erase a voice for good: objects, samples, profiles, consents and syntheses deleted, its data key destroyed.

    Prints the request; its erasure.completed (with the report of what went) or erasure.failed
    follows on the results topic (`voxflow consume voxflow.results`).
    """
    from cli.consent import load_owner_key
    from schemas.envelope import utc_now
    from schemas.events import ErasureRequested
    from voxflow.envelopes import signed_erasure
    from streams.session import client_session, operator_publisher

    if (key_file is None) == (reason is None):
        raise click.UsageError("give either --owner-key (the owner asks) or --reason (an operator decides)")

    async def by_owner():
        async with client_session(settings, with_store=False) as session:
            await session.publisher.publish(request)

    async def by_operator():
        async with operator_publisher(settings) as publisher:
            await publisher.publish(request)

    if key_file is not None:
        request = signed_erasure(load_owner_key(key_file), tenant_id=tenant_id, voice_id=voice_id)
        run_async(by_owner())
    else:
        request = ErasureRequested(tenant_id=tenant_id, voice_id=voice_id, requested_by="operator",
                                   requested_at=utc_now(), reason=reason)
        run_async(by_operator())
    echo_json(request.model_dump(mode="json"))


@main.command()
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--compare", "compare_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Another recording: is it the same speaker?")
@click.option("--voice", "voice_id", default=None, help="A voice on the stack (its newest profile): is this its speaker?")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where the HTML report goes (default DATA_DIR/analyses/AUDIO-NAME.html).")
@click.option("--open", "open_report", is_flag=True, help="Open the report in the default browser.")
@click.option("--json/--summary", "as_json", default=True, show_default=True,
              help="One JSON object (speech_s, snr_db, clipping_ratio, dnsmos, f0_range_hz, speaking_rate, "
                   "suggestions, watermark, authenticity, report, …) or readable lines.")
@click.pass_obj
def analyze(settings: Settings, audio: Path, compare_file: Path | None, voice_id: str | None,
            report_file: Path | None, open_report: bool, as_json: bool) -> None:
    """Analyse a recording locally with the ingest gate's models: quality, pitch, speaking rate, advice, voxflow
    watermark, synthetic-speech score and content credentials (C2PA), and with --compare or --voice a same-speaker
    verdict. Writes an HTML report with the waveform, spectrogram, pitch and (comparing) the voices' embeddings."""
    import webbrowser

    from infra.provenance_keys import provenance_trust_anchors
    from processors.errors import ProcessorError
    from processors.scoring.analysis import analyze_recording
    from processors.trust.provenance import MIME_TYPE_BY_SUFFIX, UNKNOWN_MIME_TYPE

    if compare_file is not None and voice_id is not None:
        raise click.UsageError("compare with --compare FILE or --voice ID, not both")
    models = _analysis_models()
    try:
        compared = _compared_voice(settings, models.encoder, compare_file, voice_id)
        analysis = analyze_recording(
            audio.read_bytes(), settings.watermark_key(), models, compared=compared,
            neighbours=_stock_voice_embeddings() if compared else None,
            mime_type=MIME_TYPE_BY_SUFFIX.get(audio.suffix.lower(), UNKNOWN_MIME_TYPE),
            trust_anchors_pem=provenance_trust_anchors(settings))
    except ProcessorError as error:
        raise click.ClickException(str(error)) from error
    report_path = report_file or settings.data_dir / "analyses" / f"{audio.stem}.html"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(analysis.report_html(f"Analysis of {audio.name}"), encoding="utf-8")
    findings = {**analysis.findings, "provenance": analysis.findings["authenticity"]["content_credentials"],
                "report": str(report_path.resolve())}
    if as_json:
        echo_json(findings)
    else:
        click.echo(_analysis_summary(findings))
    if open_report:
        webbrowser.open(report_path.resolve().as_uri())


def _analysis_models():
    """The ingest gate's VAD and DNSMOS where installed (else the energy detector, no DNSMOS), and the encoder."""
    from processors.audio.vad import SpeechDetector
    from processors.errors import ProcessorError
    from processors.scoring.analysis import AnalysisModels
    from processors.scoring.quality import DnsmosEstimator
    from processors.voice.speaker import SpeakerEncoder

    def optional(load):
        try:
            return load()
        except ProcessorError:
            return None

    return AnalysisModels(vad=optional(SpeechDetector), dnsmos=optional(DnsmosEstimator), encoder=SpeakerEncoder())


def _compared_voice(settings: Settings, encoder, compare_file: Path | None, voice_id: str | None):
    import numpy as np

    from processors.scoring.analysis import ComparedVoice, embed_recording

    if compare_file is not None:
        return ComparedVoice(label=compare_file.name, embedding=embed_recording(compare_file.read_bytes(), encoder))
    if voice_id is None:
        return None
    from infra.repositories import ProfileRepository, VoiceRepository
    from streams.session import database

    async def stored_embedding():
        async with database(settings) as pool:
            voice = await VoiceRepository(pool).get_voice(voice_id=voice_id)
            if voice is None:
                return None
            # the embedding column is readable without opening the sealed profile
            return await ProfileRepository(pool, sealer=None).latest_embedding(voice_id=voice_id,
                                                                              tenant_id=voice.tenant_id)

    embedding = run_async(stored_embedding())
    if embedding is None:
        raise click.ClickException(f"no voice {voice_id!r} with a profile (erased, or not adapted yet)")
    return ComparedVoice(label=voice_id, embedding=np.asarray(embedding, dtype=np.float32))


def _stock_voice_embeddings() -> dict:
    """Kokoro's stock voices, the crowd the report places the voices among; none where they are not installed."""
    from processors.errors import ProcessorError
    from streams.context import VoiceModels

    try:
        stock = VoiceModels().stock_voices
    except (InfraError, ProcessorError):
        return {}
    return dict(zip(stock.names, stock.embeddings))


def _analysis_summary(findings: dict) -> str:
    f0_range = findings["f0_range_hz"]
    lines = [
        f"speech {findings['speech_s']:.1f} s of {findings['duration_s']:.1f} s ({findings['vad']}), "
        f"SNR {findings['snr_db']:.0f} dB, clipped {findings['clipping_ratio']:.2%}, DNSMOS {findings['dnsmos']}",
        f"pitch {f'{f0_range[0]:.0f}-{f0_range[1]:.0f} Hz' if f0_range else 'none'}, "
        f"speaking rate {findings['speaking_rate']} syllables/s",
        f"voxflow watermark: {'found' if findings['watermark']['detected'] else 'none'}; synthetic speech "
        f"probability {findings['synthetic_speech']['probability']}; content credentials "
        f"{findings['provenance']['status']}",
    ]
    if "comparison" in findings:
        comparison = findings["comparison"]
        lines.append(f"same speaker as {comparison['compared']}? {comparison['verdict']} "
                     f"(score {comparison['score']:.3f}, threshold {comparison['threshold']:.3f})")
    lines += [f"suggestion: {suggestion}" for suggestion in findings["suggestions"]]
    lines.append(f"report: {findings['report']}")
    return "\n".join(lines)


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
    from cli.progress import ProgressDisplay
    from infra.cloning import clone_locally
    from processors.errors import ProcessorError
    from processors.synthesis.engine import SynthesisControls

    outputs = _clone_outputs(texts, out_file, out_dir)
    try:
        controls = SynthesisControls(speed=speed, pitch_semitones=pitch_semitones, energy_db=energy_db, emotion=emotion)
        with ProgressDisplay("fitting the voice") as progress:
            report = clone_locally(
                [path.read_bytes() for path in references], list(texts), outputs, engine=engine, tier=tier,
                steps=steps, language=language, controls=controls, piper_voice=piper_voice, score=as_json,
                on_progress=None if as_json else progress.fit_callback(),
            )
    except (ProcessorError, InfraError) as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        echo_json(report)
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
