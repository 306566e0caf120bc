"""A recording's analysis as one self-contained HTML page: figures inline (SVG, and the spectrogram as a PNG
data URI), no scripts, nothing fetched.

Every figure sits at a fixed place on the page (``FIGURE_BOXES``, CSS pixels from the page's top left), so a
headless browser's screenshot can be checked region by region.
"""

from __future__ import annotations

import base64
import html
import json
import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from processors.constants import ANALYSIS_SAMPLE_RATE_HZ
from processors.scoring.voice_analysis import F0Contour

PAGE_WIDTH_PX = 1200
HEADER_HEIGHT_PX = 90
FIGURE_LEFT_PX = 40
FIGURE_WIDTH_PX = 1000
FIGURE_HEIGHT_PX = 200
PROJECTION_HEIGHT_PX = 420
FIGURE_GAP_PX = 50  # room for each figure's caption above it
SPECTROGRAM_FFT_SIZE = 512
SPECTROGRAM_HOP = 160  # 10 ms at 16 kHz
SPECTROGRAM_RANGE_DB = 80.0
F0_AXIS_MAX_HZ = 400.0
INK, FAINT, ACCENT, OTHER = "#1f3b73", "#b8bfcc", "#d0342c", "#2a7ab0"
# low to high level on the spectrogram: dark blue, violet, orange, pale yellow
SPECTROGRAM_COLOURS = np.array([[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]],
                               dtype=np.float64)


class Box(NamedTuple):
    left: int
    top: int
    width: int
    height: int


def _figure_boxes() -> dict[str, Box]:
    boxes, top = {}, HEADER_HEIGHT_PX
    for name, height in (("waveform", FIGURE_HEIGHT_PX), ("spectrogram", FIGURE_HEIGHT_PX),
                         ("f0", FIGURE_HEIGHT_PX), ("projection", PROJECTION_HEIGHT_PX)):
        top += FIGURE_GAP_PX
        boxes[name] = Box(FIGURE_LEFT_PX, top, FIGURE_WIDTH_PX, height)
        top += height
    return boxes


FIGURE_BOXES = _figure_boxes()
FINDINGS_TOP_PX = FIGURE_BOXES["projection"].top + PROJECTION_HEIGHT_PX + FIGURE_GAP_PX


@dataclass(frozen=True)
class VoicePoint:
    """One voice on the projection; ``role`` "subject" (this recording), "compared" or "neighbour"."""

    label: str
    x: float
    y: float
    role: str


def render_report(title: str, samples: np.ndarray, contour: F0Contour, findings: dict,
                  voices: list[VoicePoint] | None = None) -> str:
    """The page for 16 kHz mono ``samples``; ``findings`` (JSON-safe) are listed under the figures, ``voices``
    (none without a comparison) are drawn on the projection."""
    boxes = FIGURE_BOXES
    figures = [
        _figure("waveform", "Waveform", waveform_svg(samples, boxes["waveform"])),
        _figure("spectrogram", "Spectrogram (0-8 kHz, 80 dB range)", spectrogram_img(samples, boxes["spectrogram"])),
        _figure("f0", f"Pitch (F0, 0-{F0_AXIS_MAX_HZ:.0f} Hz)", f0_svg(contour, samples.size, boxes["f0"])),
    ]
    if voices:
        figures.append(_figure("projection", "Speaker embeddings, first two principal components",
                               projection_svg(voices, boxes["projection"])))
    return _PAGE.format(title=html.escape(title), width=PAGE_WIDTH_PX, header=HEADER_HEIGHT_PX,
                        findings_top=FINDINGS_TOP_PX if voices else boxes["projection"].top,
                        figures="\n".join(figures), findings=_findings_html(findings))


def waveform_svg(samples: np.ndarray, box: Box) -> str:
    """Each pixel column's minimum-to-maximum sample as one vertical stroke."""
    columns = np.array_split(np.asarray(samples, dtype=np.float32), box.width) if samples.size else []
    middle, scale = box.height / 2, box.height / 2 * 0.95
    strokes = "".join(
        f"M{x} {middle - scale * float(column.max()):.1f}V{middle - scale * float(column.min()) + 0.5:.1f}"
        for x, column in enumerate(columns) if column.size
    )
    return _svg(box, f'<line x1="0" y1="{middle}" x2="{box.width}" y2="{middle}" stroke="{FAINT}"/>'
                     f'<path d="{strokes}" stroke="{INK}" stroke-width="1" fill="none"/>')


def spectrogram_img(samples: np.ndarray, box: Box) -> str:
    levels = spectrogram_db(samples)[::-1]
    rows = np.linspace(0, levels.shape[0] - 1, box.height).round().astype(int)
    columns = np.linspace(0, levels.shape[1] - 1, box.width).round().astype(int) if levels.shape[1] else []
    image = _coloured(levels[rows][:, columns] if len(columns) else np.full((box.height, box.width),
                                                                            -SPECTROGRAM_RANGE_DB))
    return (f'<img alt="spectrogram" width="{box.width}" height="{box.height}" style="display:block" '
            f'src="data:image/png;base64,{base64.b64encode(png_bytes(image)).decode()}">')


def spectrogram_db(samples: np.ndarray) -> np.ndarray:
    """``[SPECTROGRAM_FFT_SIZE // 2 + 1, frames]`` power in dB below the loudest bin, floored at the range."""
    signal = np.asarray(samples, dtype=np.float64)
    frame_count = max(0, 1 + (signal.size - SPECTROGRAM_FFT_SIZE) // SPECTROGRAM_HOP)
    if frame_count == 0:
        return np.full((SPECTROGRAM_FFT_SIZE // 2 + 1, 0), -SPECTROGRAM_RANGE_DB)
    frames = signal[np.arange(frame_count)[:, None] * SPECTROGRAM_HOP + np.arange(SPECTROGRAM_FFT_SIZE)[None, :]]
    power = np.abs(np.fft.rfft(frames * np.hanning(SPECTROGRAM_FFT_SIZE), axis=1)) ** 2
    levels = 10 * np.log10(power.T + 1e-12)
    return np.maximum(levels - levels.max(), -SPECTROGRAM_RANGE_DB)


def f0_svg(contour: F0Contour, sample_count: int, box: Box) -> str:
    """Voiced stretches as lines over the recording's duration; gridlines every 100 Hz."""
    duration_s = max(sample_count / ANALYSIS_SAMPLE_RATE_HZ, 1e-3)
    x = contour.times_s / duration_s * box.width
    y = box.height * (1 - np.clip(contour.f0_hz, 0, F0_AXIS_MAX_HZ) / F0_AXIS_MAX_HZ)
    path = "".join(f"{'L' if previous else 'M'}{x[index]:.1f} {y[index]:.1f}"
                   for index, previous in _voiced_runs(contour.f0_hz))
    grid = "".join(f'<line x1="0" y1="{box.height * (1 - hz / F0_AXIS_MAX_HZ):.0f}" x2="{box.width}" '
                   f'y2="{box.height * (1 - hz / F0_AXIS_MAX_HZ):.0f}" stroke="{FAINT}"/>'
                   f'<text x="4" y="{box.height * (1 - hz / F0_AXIS_MAX_HZ) - 3:.0f}" font-size="11" '
                   f'fill="#666">{hz} Hz</text>' for hz in range(100, int(F0_AXIS_MAX_HZ), 100))
    return _svg(box, f'{grid}<path d="{path}" stroke="{ACCENT}" stroke-width="2" fill="none"/>')


def projection_svg(voices: list[VoicePoint], box: Box) -> str:
    margin = 40
    xs, ys = np.array([voice.x for voice in voices]), np.array([voice.y for voice in voices])

    def scaled(values: np.ndarray, extent: int) -> np.ndarray:
        span = float(np.ptp(values)) or 1.0
        return margin + (values - values.min()) / span * (extent - 2 * margin)

    px, py = scaled(xs, box.width), box.height - scaled(ys, box.height)
    marks = []
    for voice, x, y in sorted(zip(voices, px, py), key=lambda item: item[0].role != "neighbour"):
        colour, radius = {"subject": (ACCENT, 9), "compared": (OTHER, 9)}.get(voice.role, (FAINT, 5))
        weight = "bold" if voice.role != "neighbour" else "normal"
        marks.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}"/>'
                     f'<text x="{x + radius + 3:.1f}" y="{y + 4:.1f}" font-size="12" font-weight="{weight}" '
                     f'fill="#333">{html.escape(voice.label)}</text>')
    return _svg(box, "".join(marks))


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of a ``[height, width, 3]`` uint8 image."""
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def _coloured(levels_db: np.ndarray) -> np.ndarray:
    position = (levels_db + SPECTROGRAM_RANGE_DB) / SPECTROGRAM_RANGE_DB * (len(SPECTROGRAM_COLOURS) - 1)
    low = np.clip(np.floor(position).astype(int), 0, len(SPECTROGRAM_COLOURS) - 2)
    fraction = (position - low)[..., None]
    colours = SPECTROGRAM_COLOURS[low] * (1 - fraction) + SPECTROGRAM_COLOURS[low + 1] * fraction
    return np.clip(colours, 0, 255).astype(np.uint8)


def _voiced_runs(f0_hz: np.ndarray):
    """(frame index, whether the previous frame was voiced too) for every voiced frame."""
    voiced = f0_hz > 0
    for index in np.flatnonzero(voiced):
        yield int(index), bool(index > 0 and voiced[index - 1])


def _svg(box: Box, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{box.width}" height="{box.height}" '
            f'viewBox="0 0 {box.width} {box.height}" style="display:block;background:#fff">{body}</svg>')


def _figure(name: str, caption: str, body: str) -> str:
    box = FIGURE_BOXES[name]
    return (f'<figure id="figure-{name}" style="left:{box.left}px;top:{box.top}px;width:{box.width}px;'
            f'height:{box.height}px"><figcaption>{html.escape(caption)}</figcaption>{body}</figure>')


def _findings_html(findings: dict) -> str:
    suggestions = findings.get("suggestions") or []
    advice = "".join(f"<li>{html.escape(text)}</li>" for text in suggestions) or "<li>nothing to improve</li>"
    rows = "".join(f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(json.dumps(value))}</td></tr>"
                   for name, value in findings.items() if name != "suggestions")
    return f"{_verdict_html(findings.get('comparison'))}<h2>Suggestions</h2><ul>{advice}</ul>" \
           f"<h2>Findings</h2><table>{rows}</table>"


def _verdict_html(comparison: dict | None) -> str:
    if comparison is None:
        return ""
    return (f"<h2>Same speaker as {html.escape(comparison['compared'])}? {html.escape(comparison['verdict'])}</h2>"
            f"<p>score {comparison['score']:.3f} against threshold {comparison['threshold']:.3f} "
            f"({html.escape(comparison['calibration'])})</p>")


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ margin: 0; width: {width}px; font: 14px/1.4 system-ui, sans-serif; color: #222; background: #fff; }}
header {{ height: {header}px; padding: 0 40px; box-sizing: border-box; overflow: hidden; }}
figure {{ position: absolute; margin: 0; }}
figcaption {{ position: absolute; top: -24px; font-weight: 600; }}
main {{ position: absolute; top: {findings_top}px; left: 40px; width: 1000px; }}
th {{ text-align: left; padding-right: 16px; vertical-align: top; }}
td {{ font-family: ui-monospace, monospace; word-break: break-all; }}
</style></head>
<body><header><h1>{title}</h1></header>
{figures}
<main>{findings}</main>
</body></html>
"""
