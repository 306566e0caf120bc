"""The analysis report as a browser draws it: headless Chromium screenshots a comparison report of real speech,
and every figure's region holds a picture. The screenshot stays in out/ (a CI artifact)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from infra.speech_assets import czech_actor_utterance
from processors.audio.codec_quality import encode_wav
from processors.scoring.analysis import AnalysisModels, ComparedVoice, analyze_recording
from processors.scoring.report import FIGURE_BOXES, Box

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.conftest_speech"]

ARTIFACT_DIR = Path(__file__).resolve().parents[2] / "out"
WINDOW_SIZE = (1280, 2400)
CHROMIUM_TIMEOUT_S = 180
MIN_INKED_FRACTION = 0.01  # a drawn plot covers far more than 1 % of its box; a failed one leaves it page-white


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "the browser check needs Chromium: apt-get install -y chromium (make system-deps)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def screenshot(chromium: str, page: Path, picture: Path) -> np.ndarray:
    from PIL import Image

    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
         f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}", f"--screenshot={picture}", page.as_uri()],
        check=True, capture_output=True, timeout=CHROMIUM_TIMEOUT_S)
    with Image.open(picture) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def inked_fraction(pixels: np.ndarray, box: Box) -> float:
    region = pixels[box.top: box.top + box.height, box.left: box.left + box.width]
    return float(np.mean(np.abs(region - 255).sum(axis=2) > 30))


def test_chromium_draws_every_figure_of_a_comparison_report(chromium, english_reference_speech, speaker_encoder,
                                                            stock_voices, tmp_path):
    speech, rate = english_reference_speech
    other, _ = czech_actor_utterance("big_fish", 10.0)
    analysis = analyze_recording(
        encode_wav(speech[: 10 * rate], rate), b"k" * 32, AnalysisModels(encoder=speaker_encoder),
        compared=ComparedVoice("big fish", speaker_encoder.embed(other, rate)),
        neighbours=dict(zip(stock_voices.names, stock_voices.embeddings)))
    page = tmp_path / "analysis-report.html"
    page.write_text(analysis.report_html("Analysis of speech.wav"), encoding="utf-8")
    ARTIFACT_DIR.mkdir(exist_ok=True)

    pixels = screenshot(chromium, page, ARTIFACT_DIR / "analysis-report.png")

    inked = {name: inked_fraction(pixels, box) for name, box in FIGURE_BOXES.items()}
    assert all(fraction > MIN_INKED_FRACTION for fraction in inked.values()), inked
    beside_the_figures = Box(FIGURE_BOXES["waveform"].left + FIGURE_BOXES["waveform"].width + 20,
                             FIGURE_BOXES["waveform"].top, 150, FIGURE_BOXES["f0"].top - FIGURE_BOXES["waveform"].top)
    assert inked_fraction(pixels, beside_the_figures) == 0.0  # the check tells a picture from an empty page
