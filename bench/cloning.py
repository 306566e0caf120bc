"""Cloning benchmark: clone the real speakers we ship, speak held-out sentences, measure the result.

For every speaker (Asterisk's US-English "Allison", Fish Fillets' two Czech actors) and every
reference length (30 s few-shot, 5 s zero-shot) it builds a voice profile, synthesises held-out
English sentences, and reports:

- ``similarity``: cosine between the cloned speech and the speaker's real held-out speech
  (Resemblyzer), next to ``similarity_same_speaker`` (the real reference vs the real held-out
  speech) and ``similarity_different_speaker`` (the real held-out speech vs the other speakers');
- ``wer`` (Whisper tiny.en), ``dnsmos`` (overall MOS), ``adaptation_s`` (profile build time),
  ``synthesis_rtf`` (compute / audio seconds, pinned to one CPU core, conversion included),
  ``peak_memory_mb`` (peak RSS of the whole benchmark process, scorers included);
- ``baseline_pitch_only``: the same sentences with only the pitch moved to the target's;
- ``baseline_base_voice``: the same sentences from the base voice, unconverted (the WER floor the
  conversion starts from, and the similarity of not cloning at all).

Writes ``bench/results/cloning.json``. Run: ``python bench/cloning.py`` (``make bench-cloning``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyworld

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.speech_assets import czech_actor_utterance, heldout_utterance, reference_utterance  # noqa: E402
from processors.audio import normalise_loudness, resample  # noqa: E402
from processors.constants import OUTPUT_SAMPLE_RATE_HZ  # noqa: E402
from processors.conversion import map_log_f0  # noqa: E402
from processors.scoring import DnsmosEstimator, WhisperTranscriber, word_error_rate  # noqa: E402
from processors.speaker import SpeakerEncoder, cosine_similarity  # noqa: E402
from processors.synthesis import (  # noqa: E402
    SynthesisControls,
    SynthesisEngine,
    WorldConversionEngine,
    base_voice_gender,
)
from processors.tts import BaseTTS  # noqa: E402
from processors.voice_profile import VoiceProfile, analyse_world, build_profile  # noqa: E402
from processors.cloning import default_base_voice  # noqa: E402

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "cloning.json"
REFERENCE_LENGTHS_S = {"30s": 30.0, "5s": 5.0}
ENROLMENT_CHUNK_S = 6.0  # a 30 s reference arrives as five 6 s uploads, as a user would record it
HELDOUT_S = 12.0
CZECH_HELDOUT_OFFSET_CLIPS = 150  # far past the clips the 30 s reference uses
HELDOUT_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "The juice of lemons makes fine punch.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
)
METRIC_KEYS = (
    "synthesis_rtf",
    "adaptation_s",
    "wer",
    "dnsmos",
    "peak_memory_mb",
    "similarity",
    "similarity_same_speaker",
    "similarity_different_speaker",
)


@dataclass(frozen=True)
class Speaker:
    name: str
    reference: Callable[[float], np.ndarray]  # seconds -> float32 mono at 16 kHz
    heldout: np.ndarray


@dataclass(frozen=True)
class Scorers:
    encoder: SpeakerEncoder
    transcriber: WhisperTranscriber
    dnsmos: DnsmosEstimator


def main() -> None:
    arguments = _parse_arguments()
    speakers = load_speakers()
    scorers = Scorers(SpeakerEncoder(), WhisperTranscriber(cpu_threads=1), DnsmosEstimator())
    base_voice = default_base_voice(arguments.engine)
    sentences = HELDOUT_SENTENCES[: arguments.sentences]
    started = time.perf_counter()
    results = run_benchmark(speakers, scorers, WorldConversionEngine(base_voice), base_voice, sentences)
    results["engine"] = arguments.engine
    results["sentences"] = list(sentences)
    results["benchmark_wall_s"] = time.perf_counter() - started
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(results, indent=2) + "\n")
    print_results(results)
    print(f"\nwrote {arguments.out}")


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_PATH, help="where to write the JSON results")
    parser.add_argument("--sentences", type=int, default=len(HELDOUT_SENTENCES), help="held-out sentences per clone")
    parser.add_argument("--engine", choices=("auto", "espeak", "piper"), default="auto", help="base voice for English")
    return parser.parse_args()


def load_speakers() -> list[Speaker]:
    """The real voices, each with a reference source and held-out speech it never enrols from."""
    return [
        Speaker("allison_en_f", lambda seconds: reference_utterance(seconds)[0], heldout_utterance(HELDOUT_S)[0]),
        *(
            Speaker(
                f"{actor}_cs_{sex}",
                lambda seconds, actor=actor: czech_actor_utterance(actor, seconds)[0],
                czech_actor_utterance(actor, HELDOUT_S, offset=CZECH_HELDOUT_OFFSET_CLIPS)[0],
            )
            for actor, sex in (("small_fish", "f"), ("big_fish", "m"))
        ),
    ]


def run_benchmark(
    speakers: list[Speaker], scorers: Scorers, engine: SynthesisEngine, base_voice: BaseTTS, sentences: tuple[str, ...]
) -> dict:
    heldout_embeddings = {speaker.name: scorers.encoder.embed(speaker.heldout, 16000) for speaker in speakers}
    per_speaker: dict[str, dict[str, dict]] = {}
    for speaker in speakers:
        others = [embedding for name, embedding in heldout_embeddings.items() if name != speaker.name]
        different = float(np.mean([cosine_similarity(heldout_embeddings[speaker.name], other) for other in others]))
        per_speaker[speaker.name] = {
            label: clone_and_measure(speaker, seconds, heldout_embeddings[speaker.name], different, scorers, engine, base_voice, sentences)
            for label, seconds in REFERENCE_LENGTHS_S.items()
        }
        real_dnsmos = scorers.dnsmos.score(speaker.heldout, 16000).overall
        for entry in per_speaker[speaker.name].values():
            entry["dnsmos_real_speech"] = real_dnsmos
    entries = [entry for lengths in per_speaker.values() for entry in lengths.values()]
    return {
        "overall": _average(entries),
        "overall_by_reference": {
            label: _average([lengths[label] for lengths in per_speaker.values()]) for label in REFERENCE_LENGTHS_S
        },
        "speakers": per_speaker,
    }


def clone_and_measure(
    speaker: Speaker,
    reference_s: float,
    heldout_embedding: np.ndarray,
    different_speaker_similarity: float,
    scorers: Scorers,
    engine: SynthesisEngine,
    base_voice: BaseTTS,
    sentences: tuple[str, ...],
) -> dict:
    reference = speaker.reference(reference_s)
    chunks = _enrolment_chunks(reference)
    adaptation_started = time.perf_counter()
    profile = build_profile(chunks, 16000, scorers.encoder)
    adaptation_s = time.perf_counter() - adaptation_started
    cloned, synthesis_s = _synthesise_all(engine, profile, sentences)
    base_speech = [_base_voice_speech(base_voice, sentence, profile) for sentence in sentences]
    pitch_only = [pitch_only_baseline(samples, rate_hz, profile) for samples, rate_hz in base_speech]
    unconverted = [normalise_loudness(resample(samples, rate_hz, OUTPUT_SAMPLE_RATE_HZ)) for samples, rate_hz in base_speech]
    audio_s = sum(samples.size for samples in cloned) / OUTPUT_SAMPLE_RATE_HZ
    return {
        "synthesis_rtf": synthesis_s / audio_s,
        "adaptation_s": adaptation_s,
        **_speech_scores(cloned, sentences, heldout_embedding, scorers, with_dnsmos=True),
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "similarity_same_speaker": cosine_similarity(scorers.encoder.embed(reference, 16000), heldout_embedding),
        "similarity_different_speaker": different_speaker_similarity,
        "baseline_pitch_only": _speech_scores(pitch_only, sentences, heldout_embedding, scorers, with_dnsmos=False),
        "baseline_base_voice": _speech_scores(unconverted, sentences, heldout_embedding, scorers, with_dnsmos=False),
        "reference_s": reference_s,
        "audio_s": audio_s,
    }


def _base_voice_speech(base_voice: BaseTTS, sentence: str, profile: VoiceProfile) -> tuple[np.ndarray, int]:
    """The base voice the engine would start from for this target (espeak's female variant for high voices)."""
    return base_voice.synthesize(sentence, "en", voice_gender=base_voice_gender(profile))


def pitch_only_baseline(samples: np.ndarray, rate_hz: int, profile: VoiceProfile) -> np.ndarray:
    """The naive clone: the base voice with its pitch moved to the target's log-F0 statistics, nothing else."""
    source = analyse_world(samples, rate_hz, with_aperiodicity=True)
    resynthesised = pyworld.synthesize(
        map_log_f0(source.f0_hz, profile), source.spectral_envelope, source.aperiodicity,
        source.sample_rate_hz, source.frame_period_ms,
    )
    output = resample(resynthesised.astype(np.float32), source.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ)
    return normalise_loudness(output)


def _synthesise_all(engine: SynthesisEngine, profile: VoiceProfile, sentences: tuple[str, ...]) -> tuple[list[np.ndarray], float]:
    outputs = []
    compute_s = 0.0
    with _one_cpu_core():
        for sentence in sentences:
            started = time.perf_counter()
            output = engine.synthesize(sentence, "en", profile, SynthesisControls())
            compute_s += time.perf_counter() - started
            outputs.append(resample(output.samples, output.sample_rate_hz, OUTPUT_SAMPLE_RATE_HZ))
    return outputs, compute_s


def _speech_scores(
    utterances: list[np.ndarray], sentences: tuple[str, ...], target: np.ndarray, scorers: Scorers, with_dnsmos: bool
) -> dict:
    embeddings = scorers.encoder.embed_many(utterances, OUTPUT_SAMPLE_RATE_HZ)
    transcripts = [scorers.transcriber.transcribe(samples, OUTPUT_SAMPLE_RATE_HZ) for samples in utterances]
    reference_words = sum(len(sentence.split()) for sentence in sentences)
    errors = sum(word_error_rate(sentence, heard) * len(sentence.split()) for sentence, heard in zip(sentences, transcripts))
    scores = {
        "similarity": float(np.mean([cosine_similarity(embedding, target) for embedding in embeddings])),
        "wer": errors / reference_words,
    }
    if with_dnsmos:
        scores["dnsmos"] = scorers.dnsmos.score(np.concatenate(utterances), OUTPUT_SAMPLE_RATE_HZ).overall
        scores["transcripts"] = transcripts
    return scores


def _enrolment_chunks(reference: np.ndarray) -> list[np.ndarray]:
    chunk = int(ENROLMENT_CHUNK_S * 16000)
    if reference.size < 2 * chunk:
        return [reference]
    return [reference[start : start + chunk] for start in range(0, reference.size - chunk // 2, chunk)]


@contextmanager
def _one_cpu_core() -> Iterator[None]:
    """Pin the process to one core while synthesis is timed, so RTF is a one-core figure."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(previous)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def _average(entries: list[dict]) -> dict:
    averaged = {key: float(np.mean([entry[key] for entry in entries])) for key in (*METRIC_KEYS, "dnsmos_real_speech")}
    averaged["peak_memory_mb"] = float(max(entry["peak_memory_mb"] for entry in entries))
    for baseline in ("baseline_pitch_only", "baseline_base_voice"):
        averaged[baseline] = {
            key: float(np.mean([entry[baseline][key] for entry in entries])) for key in ("similarity", "wer")
        }
    return averaged


def print_results(results: dict) -> None:
    header = f"{'speaker':<18}{'ref':>5}{'sim':>7}{'same':>7}{'diff':>7}{'pitch':>7}{'WER':>7}{'pWER':>7}{'bWER':>7}{'MOS':>6}{'realMOS':>8}{'adapt':>7}{'RTF':>7}{'MB':>7}"
    print(header)
    rows = [(name, label, entry) for name, lengths in results["speakers"].items() for label, entry in lengths.items()]
    rows.append(("overall", "all", results["overall"]))
    for name, label, entry in rows:
        baseline = entry["baseline_pitch_only"]
        print(
            f"{name:<18}{label:>5}{entry['similarity']:7.3f}{entry['similarity_same_speaker']:7.3f}"
            f"{entry['similarity_different_speaker']:7.3f}{baseline['similarity']:7.3f}{entry['wer']:7.1%}"
            f"{baseline['wer']:7.1%}{entry['baseline_base_voice']['wer']:7.1%}{entry['dnsmos']:6.2f}{entry['dnsmos_real_speech']:8.2f}{entry['adaptation_s']:7.2f}{entry['synthesis_rtf']:7.3f}"
            f"{entry['peak_memory_mb']:7.0f}"
        )
    print("sim: cloned vs real held-out; same/diff: real same-speaker / different-speaker baselines; pitch/pWER: pitch-only baseline; bWER: base voice unconverted")
    print("realMOS: DNSMOS of the speaker's real held-out speech (a faithful clone of a noisy recording scores low too)")


if __name__ == "__main__":
    main()
