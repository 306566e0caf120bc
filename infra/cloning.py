"""``voxflow clone`` behind the command line: load the models, learn the voice once, refine it, speak every text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from infra.kokoro_assets import kokoro_synthesis_model_path, kokoro_vocabulary, load_stock_voices
from infra.refiner import StyleFit, SubprocessRefiner
from processors.audio.codec_quality import encode_wav
from processors.cloning import LearntVoice, default_engine, learn_voice, speak_texts
from processors.constants import PACK_EMBEDDING_PHRASES
from processors.scoring.quality import DnsmosEstimator, QualityScorer, WhisperTranscriber
from processors.synthesis.engine import SynthesisControls
from processors.synthesis.kokoro import KokoroEngine, KokoroSynthesizer, embed_stock_packs
from processors.voice.kokoro_voices import StockVoices
from processors.voice.profile import VoiceProfile
from processors.voice.speaker import SpeakerEncoder
from processors.voice.tiers import intelligibility, keeps_its_words, refinement_phrases, with_fitted_offset

FitProgress = Callable[[int, int, float], None]


def clone_locally(
    references: Sequence[bytes], texts: Sequence[str], outputs: Sequence[Path], *, engine: str, tier: str, steps: int,
    language: str, controls: SynthesisControls, piper_voice: Path | None, score: bool, on_progress: FitProgress | None,
) -> dict:
    """Write each text's speech to its output path; returns the JSON report ``voxflow clone --json`` prints."""
    encoder = SpeakerEncoder()
    kokoro, stock = load_kokoro(encoder) if engine == "kokoro" else (None, None)
    voice = learn_voice(references, encoder=encoder, stock=stock)
    synthesis = KokoroEngine(kokoro, stock) if kokoro is not None else default_engine(engine, piper_voice)
    transcriber = WhisperTranscriber() if score or (kokoro is not None and tier == "refined") else None
    profile, refinement = voice.profile, None
    if kokoro is not None and tier == "refined":
        profile, refinement = refine_locally(voice, kokoro, stock, synthesis, transcriber, steps, on_progress)
    scorer = QualityScorer(encoder, transcriber, DnsmosEstimator()) if score else None
    spoken = speak_texts(profile, texts, engine=synthesis, language=language, controls=controls, scorer=scorer)
    for path, speech in zip(outputs, spoken):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_wav(speech.samples, speech.sample_rate_hz))
    return _report(voice, profile, refinement, engine, tier if kokoro is not None else None, outputs, spoken)


def load_kokoro(encoder: SpeakerEncoder, cpu_threads: int = 2) -> tuple[KokoroSynthesizer, StockVoices]:
    """Kokoro's synthesizer and its stock voices, embedded by ``encoder`` (once per machine, then cached)."""
    kokoro = KokoroSynthesizer(kokoro_synthesis_model_path(), kokoro_vocabulary(), cpu_threads)
    stock = load_stock_voices(lambda packs: embed_stock_packs(kokoro, encoder, packs, PACK_EMBEDDING_PHRASES))
    return kokoro, stock


def refine_locally(voice: LearntVoice, kokoro: KokoroSynthesizer, stock: StockVoices, engine: KokoroEngine,
                   transcriber: WhisperTranscriber, steps: int, on_progress: FitProgress | None) -> tuple[VoiceProfile, dict]:
    """The refined tier in this process's own event loop: the fit (a child process) and the intelligibility check.

    Returns the profile to speak with (the refined one if kept, else the instant one) and the fit's figures.
    """
    started = time.perf_counter()

    async def report(step: int, total: int, similarity: float) -> None:
        if on_progress is not None:
            on_progress(step, total, similarity)

    fit: StyleFit = asyncio.run(SubprocessRefiner().refine(
        style_table=stock.style_table(voice.profile.kokoro_voice), target_embedding=voice.profile.embedding,
        phrases=refinement_phrases(kokoro), steps=steps, on_progress=report,
    ))
    refined = with_fitted_offset(voice.profile, fit.style_offset)
    wer_instant, wer_refined = intelligibility(engine, transcriber, (voice.profile, refined))
    kept = keeps_its_words(wer_instant, wer_refined)
    summary = {
        "kept": kept, "steps": fit.steps, "similarity_objective_before": round(fit.similarity_before, 4),
        "similarity_objective_after": round(fit.similarity_after, 4), "check_wer_instant": round(wer_instant, 4),
        "check_wer_refined": round(wer_refined, 4), "adaptation_refined_s": round(time.perf_counter() - started, 2),
    }
    return (refined if kept else voice.profile), summary


def _report(voice: LearntVoice, profile: VoiceProfile, refinement: dict | None, engine: str, tier: str | None,
            outputs: Sequence[Path], spoken) -> dict:
    entries = [{
        "text": speech.text, "out": str(path), "sample_rate_hz": speech.sample_rate_hz,
        "duration_s": round(speech.samples.size / speech.sample_rate_hz, 3),
        "synthesis_rtf": round(speech.synthesis_rtf, 4), "scores": speech.scores.to_dict() if speech.scores else None,
    } for path, speech in zip(outputs, spoken)]
    first = entries[0]
    return {
        **{key: first[key] for key in ("out", "sample_rate_hz", "duration_s", "synthesis_rtf", "scores")},
        "engine": engine, "tier": "refined" if refinement and refinement["kept"] else tier,
        "adaptation_s": round(voice.adaptation_s, 3), "adaptation_instant_s": round(voice.adaptation_s, 3),
        "refinement": refinement, "outputs": entries,
        "references": [report.to_dict() for report in voice.reference_reports],
        "profile": {"f0_median_hz": profile.f0_median_hz, "embedding_spread": profile.embedding_spread,
                    "inconsistent_samples": list(profile.inconsistent_samples),
                    "kokoro_voice": profile.kokoro_voice.to_dict()["pack_weights"] if profile.kokoro_voice else None},
    }
