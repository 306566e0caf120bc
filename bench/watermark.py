"""Watermark benchmark: voxflow's keyed watermark and PerTh, side by side, on real speech outputs.

Marked clips are speech the pipeline's Kokoro engine speaks (onnxruntime, English stock packs, three
Harvard sentences each, about 7-10 s, peak-normalised to 0.5 so +6 dB cannot clip). Each clip is
marked by both watermarks, damaged by every attack below, and read back:

- voxflow (``processors/trust/watermark.py``): ``detection_rate`` is the share of clips whose exact
  payload comes back; ``bit_accuracy`` the share of the 64 payload bits right, where a clip with no
  payload read scores 0.5 a bit (a guess) and a wrong payload its true bit matches;
- PerTh (``resemble-perth==1.0.1``, a neural presence mark with no payload): ``detection_rate`` is
  the share of clips whose confidence (``get_watermark(round=False)``) reaches ``PERTH_THRESHOLD``;
  ``bit_accuracy`` is null.

``false_positive_rate``: the share of clean, unmarked real recordings (Asterisk prompts in four
languages and the Fish Fillets Czech actors, ``infra.speech_assets`` / ``bench.speakers``) that
are detected: for voxflow, a payload reported; for PerTh, confidence at the threshold.
``snr_db`` is ``mark_snr_db`` (original vs marked) averaged over the marked clips; timings are
compute seconds per minute of audio, and the median compute seconds of one detection on an
unattacked marked clip and on a clean clip (where the time and frequency scale search runs).

Writes ``bench/results/watermark.json``. Run: ``python bench/watermark.py`` (``make bench-watermark``).
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.speakers import asterisk_prompts, read_clip  # noqa: E402
from infra.kokoro_assets import kokoro_synthesis_model_path, kokoro_vocabulary, load_stock_voices  # noqa: E402
from infra.speech_assets import czech_actor_clips, english_prompts  # noqa: E402
from processors.synthesis.kokoro import KokoroSynthesizer  # noqa: E402
from processors.trust.watermark import (  # noqa: E402
    PAYLOAD_BYTES,
    WATERMARK_SAMPLE_RATE_HZ,
    detect_watermark,
    embed_watermark,
    mark_snr_db,
)

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "watermark.json"
RATE_HZ = WATERMARK_SAMPLE_RATE_HZ  # Kokoro speaks at 24 kHz, the rate the pipeline marks at
KEY = b"voxflow watermark benchmark key"
PEAK = 0.5
PERTH_THRESHOLD = 0.5
VOXFLOW_PRESENCE_THRESHOLD = 0.5  # WatermarkDetection.confidence of a mark seen without its payload
CLEAN_EXCERPT_S = 5.0
MIN_CLEAN_CLIP_S = 2.0
EXCERPT_S = 5.0
SEMITONE = 2 ** (1 / 12)
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
)
SENTENCES_PER_CLIP = 3
ENGLISH_PACK_PREFIXES = ("af_", "am_", "bf_", "bm_")


# --- clips ----------------------------------------------------------------------------------------


def kokoro_outputs(count: int) -> list[np.ndarray]:
    """``count`` clips of Kokoro speech at 24 kHz, float32, peak ``PEAK``; voices and sentences rotate."""
    synthesizer = KokoroSynthesizer(kokoro_synthesis_model_path(), kokoro_vocabulary())
    stock = load_stock_voices()
    voices = [name for name in stock.names if name.startswith(ENGLISH_PACK_PREFIXES)]
    clips = []
    for index in range(count):
        first = (index * SENTENCES_PER_CLIP) % len(SENTENCES)
        text = " ".join(SENTENCES[(first + step) % len(SENTENCES)] for step in range(SENTENCES_PER_CLIP))
        speech = synthesizer.render(synthesizer.tokens(text, "en"), stock.table(voices[index % len(voices)]))
        clips.append(peak_normalised(speech))
    return clips


def clean_real_clips(count: int) -> tuple[list[np.ndarray], int]:
    """``count`` unmarked real recordings at 16 kHz, at most ``CLEAN_EXCERPT_S`` each, taken in turn
    from Allison (en), June (fr), Carlo (it), the Russian voice and the two Czech actors."""
    sources = [english_prompts(MIN_CLEAN_CLIP_S)]
    sources += [asterisk_prompts(language)[1] for language in ("fr", "it", "ru")]
    sources += [czech_actor_clips(actor) for actor in ("small_fish", "big_fish")]
    clips: list[np.ndarray] = []
    position = 0
    while len(clips) < count:
        for paths in sources:
            if position < len(paths) and len(clips) < count:
                samples = _read_16k(paths[position])
                if samples.size >= MIN_CLEAN_CLIP_S * 16000:
                    clips.append(peak_normalised(samples[:int(CLEAN_EXCERPT_S * 16000)]))
        position += 1
        if position > max(len(paths) for paths in sources):
            raise RuntimeError(f"only {len(clips)} clean clips of at least {MIN_CLEAN_CLIP_S} s")
    return clips, 16000


def _read_16k(path: Path) -> np.ndarray:
    if path.suffix == ".wav":
        return read_clip(path)
    samples, rate_hz = sf.read(str(path), dtype="float32", always_2d=True)
    return resample_poly(samples.mean(axis=1), 16000 // np.gcd(rate_hz, 16000), rate_hz // np.gcd(rate_hz, 16000))


def peak_normalised(samples: np.ndarray) -> np.ndarray:
    return (PEAK * samples / max(float(np.max(np.abs(samples))), 1e-9)).astype(np.float32)


# --- attacks: 24 kHz float32 in, (samples, rate) out ------------------------------------------------


def ffmpeg(samples: np.ndarray, rate_hz: int, encode: list[str], decode_input: list[str], out_rate_hz: int) -> np.ndarray:
    """Encode float32 ``samples`` with ffmpeg arguments ``encode`` and decode back at ``out_rate_hz``."""
    raw = ["-f", "f32le", "-ac", "1"]
    encoded = subprocess.run(["ffmpeg", "-v", "error", *raw, "-ar", str(rate_hz), "-i", "pipe:0", *encode, "pipe:1"],
                             input=samples.astype(np.float32).tobytes(), capture_output=True, check=True).stdout
    decoded = subprocess.run(["ffmpeg", "-v", "error", *decode_input, "-i", "pipe:0", *raw, "-ar", str(out_rate_hz), "pipe:1"],
                             input=encoded, capture_output=True, check=True).stdout
    return np.frombuffer(decoded, dtype=np.float32).copy()


def reencoded(codec: str, bitrate: str, container: str) -> Callable[[np.ndarray], tuple[np.ndarray, int]]:
    return lambda samples: (ffmpeg(samples, RATE_HZ, ["-c:a", codec, "-b:a", bitrate, "-f", container], [], RATE_HZ), RATE_HZ)


def resampled(rate_hz: int) -> Callable[[np.ndarray], tuple[np.ndarray, int]]:
    divisor = np.gcd(rate_hz, RATE_HZ)
    return lambda samples: (resample_poly(samples, rate_hz // divisor, RATE_HZ // divisor).astype(np.float32), rate_hz)


def telephone_mulaw(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """300-3400 Hz band, 8 kHz, G.711 μ-law, as a phone line carries it."""
    encode = ["-af", "highpass=f=300:poles=2,lowpass=f=3400:poles=2", "-ar", "8000", "-c:a", "pcm_mulaw", "-f", "mulaw"]
    return ffmpeg(samples, RATE_HZ, encode, ["-f", "mulaw", "-ar", "8000", "-ac", "1"], 8000), 8000


def rubberband(option: str) -> Callable[[np.ndarray], tuple[np.ndarray, int]]:
    """Time-stretch or pitch-shift with Rubber Band (ffmpeg's ``rubberband`` filter), the tool editors use."""
    return lambda samples: (ffmpeg(samples, RATE_HZ, ["-af", f"rubberband={option}", "-f", "f32le"],
                                   ["-f", "f32le", "-ar", str(RATE_HZ), "-ac", "1"], RATE_HZ), RATE_HZ)


def white_noise_at_20_db(samples: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(np.mean(samples**2) / 100), samples.shape)
    return (samples + noise).astype(np.float32), RATE_HZ


def low_passed_at_4_khz(samples: np.ndarray) -> tuple[np.ndarray, int]:
    return sosfilt(butter(8, 4000, fs=RATE_HZ, output="sos"), samples).astype(np.float32), RATE_HZ


def excerpt(samples: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """A ``EXCERPT_S`` window from a random point of the clip."""
    length = int(EXCERPT_S * RATE_HZ)
    start = int(np.random.default_rng(seed).integers(0, max(1, samples.size - length + 1)))
    return samples[start:start + length], RATE_HZ


ATTACKS: dict[str, Callable[[np.ndarray, int], tuple[np.ndarray, int]]] = {
    "none": lambda samples, seed: (samples, RATE_HZ),
    "mp3_64kbps": lambda samples, seed: reencoded("libmp3lame", "64k", "mp3")(samples),
    "opus_24kbps": lambda samples, seed: reencoded("libopus", "24k", "ogg")(samples),
    "resample_16khz": lambda samples, seed: resampled(16000)(samples),
    "resample_8khz": lambda samples, seed: resampled(8000)(samples),
    "g711_mulaw_telephone": lambda samples, seed: telephone_mulaw(samples),
    "white_noise_20db": white_noise_at_20_db,
    "gain_plus_6db": lambda samples, seed: (2.0 * samples, RATE_HZ),
    "gain_minus_6db": lambda samples, seed: (0.5 * samples, RATE_HZ),
    "lowpass_4khz": lambda samples, seed: low_passed_at_4_khz(samples),
    "crop_10pct": lambda samples, seed: (samples[samples.size // 10:], RATE_HZ),
    "excerpt_5s": excerpt,
    "time_stretch_plus_5pct": lambda samples, seed: rubberband("tempo=1.05")(samples),
    "time_stretch_minus_5pct": lambda samples, seed: rubberband("tempo=0.95")(samples),
    "pitch_shift_plus_1_semitone": lambda samples, seed: rubberband(f"pitch={SEMITONE:.6f}")(samples),
    "pitch_shift_minus_1_semitone": lambda samples, seed: rubberband(f"pitch={1 / SEMITONE:.6f}")(samples),
}


# --- the two watermarks ---------------------------------------------------------------------------


def perth_watermarker():
    """PerTh's implicit watermarker on the CPU. Its package imports ``pkg_resources`` only for
    ``resource_filename``, which recent setuptools no longer ship: the standard library answers it."""
    sys.modules.setdefault("pkg_resources", types.SimpleNamespace(
        resource_filename=lambda package, name: str(importlib.resources.files(package) / name)))
    from perth.perth_net.perth_net_implicit.perth_watermarker import PerthImplicitWatermarker

    return PerthImplicitWatermarker(device="cpu")


def perth_confidence(watermarker, samples: np.ndarray, rate_hz: int) -> float:
    return float(watermarker.get_watermark(np.asarray(samples, dtype=np.float32), rate_hz, round=False))


def voxflow_reading(samples: np.ndarray, rate_hz: int, payload: bytes) -> tuple[bool, float, bool, bool]:
    """(payload recovered, bit accuracy, a wrong payload reported, presence confidence ≥ 0.5)."""
    detection = detect_watermark(np.asarray(samples, dtype=np.float32), rate_hz, KEY)
    present = detection.confidence >= VOXFLOW_PRESENCE_THRESHOLD
    if detection.payload is None:
        return False, 0.5, False, present
    wrong_bits = sum(bin(found ^ sent).count("1") for found, sent in zip(detection.payload, payload))
    return detection.payload == payload, 1 - wrong_bits / (8 * PAYLOAD_BYTES), detection.payload != payload, present


def timed_detection(samples: np.ndarray, rate_hz: int):
    """(detection, compute seconds it took)."""
    started = time.process_time()
    detection = detect_watermark(samples, rate_hz, KEY)
    return detection, time.process_time() - started


def clip_payload(index: int) -> bytes:
    return np.random.default_rng(1000 + index).integers(0, 256, PAYLOAD_BYTES, dtype=np.uint8).tobytes()


# --- measurement ----------------------------------------------------------------------------------


def measure(marked_count: int, clean_count: int, attack_names: list[str]) -> dict:
    clips = kokoro_outputs(marked_count)
    audio_minutes = sum(clip.size for clip in clips) / RATE_HZ / 60
    perth = perth_watermarker()
    payloads = [clip_payload(index) for index in range(len(clips))]

    started = time.process_time()
    voxflow_marked = [embed_watermark(clip, RATE_HZ, KEY, payload) for clip, payload in zip(clips, payloads)]
    embed_s_per_min = (time.process_time() - started) / audio_minutes
    marked_detect_s = [timed_detection(marked, RATE_HZ)[1] for marked in voxflow_marked]
    perth_marked = [np.asarray(perth.apply_watermark(clip, RATE_HZ), dtype=np.float32)[:clip.size] for clip in clips]

    attacks, perth_attacks, wrong_payloads = {}, {}, 0
    for name in attack_names:
        started = time.monotonic()
        outcomes, perth_hits = [], []
        for index, (marked, perth_clip, payload) in enumerate(zip(voxflow_marked, perth_marked, payloads)):
            outcomes.append(voxflow_reading(*ATTACKS[name](marked, index), payload))
            perth_hits.append(perth_confidence(perth, *ATTACKS[name](perth_clip, index)) >= PERTH_THRESHOLD)
        recovered, accuracy, wrong, present = (np.array(column) for column in zip(*outcomes))
        wrong_payloads += int(wrong.sum())
        attacks[name] = {"detection_rate": float(recovered.mean()), "bit_accuracy": float(accuracy.mean()),
                         "presence_rate": float(present.mean())}
        perth_attacks[name] = {"detection_rate": float(np.mean(perth_hits)), "bit_accuracy": None}
        print(f"{name:30s} voxflow {attacks[name]['detection_rate']:.3f} (bits {attacks[name]['bit_accuracy']:.3f})"
              f"  perth {perth_attacks[name]['detection_rate']:.3f}  [{time.monotonic() - started:.0f} s]", flush=True)

    clean, clean_rate_hz = clean_real_clips(clean_count)
    voxflow_clean, clean_detect_s = zip(*(timed_detection(clip, clean_rate_hz) for clip in clean))
    perth_false = [perth_confidence(perth, clip, clean_rate_hz) >= PERTH_THRESHOLD for clip in clean]

    return {
        "attacks": attacks,
        "false_positive_rate": float(np.mean([detection.detected for detection in voxflow_clean])),
        "false_presence_rate": float(np.mean([detection.confidence >= VOXFLOW_PRESENCE_THRESHOLD
                                              for detection in voxflow_clean])),
        "snr_db": float(np.mean([mark_snr_db(clip, marked) for clip, marked in zip(clips, voxflow_marked)])),
        "payload_bits": 8 * PAYLOAD_BYTES,
        "wrong_payloads_reported": int(wrong_payloads),
        "embed_s_per_audio_minute": embed_s_per_min,
        "detect_s_per_audio_minute": sum(marked_detect_s) / audio_minutes,
        "detect_s_median_marked_clip": float(np.median(marked_detect_s)),
        "detect_s_median_clean_clip": float(np.median(clean_detect_s)),
        "perth": {
            "attacks": perth_attacks,
            "false_positive_rate": float(np.mean(perth_false)),
            "snr_db": float(np.mean([mark_snr_db(clip[:marked.size], marked)
                                     for clip, marked in zip(clips, perth_marked)])),
            "payload_bits": 0,
            "threshold": PERTH_THRESHOLD,
        },
        "clips": {
            "marked": len(clips),
            "marked_source": "Kokoro (onnxruntime) English stock voices, 3 Harvard sentences each, 24 kHz",
            "marked_seconds_mean": float(np.mean([clip.size / RATE_HZ for clip in clips])),
            "clean_real": len(clean),
            "clean_real_source": "Asterisk prompts (en, fr, it, ru) and Fish Fillets Czech actors, 16 kHz, "
                                 f"first {CLEAN_EXCERPT_S:g} s of each recording of at least {MIN_CLEAN_CLIP_S:g} s",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=24, help="marked Kokoro clips")
    parser.add_argument("--clean", type=int, default=240, help="clean real clips for the false-positive rate")
    parser.add_argument("--attacks", nargs="*", default=list(ATTACKS), choices=list(ATTACKS))
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()
    figures = measure(args.clips, args.clean, args.attacks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({key: value for key, value in figures.items() if key not in ("attacks", "perth")}, indent=2))


if __name__ == "__main__":
    main()
