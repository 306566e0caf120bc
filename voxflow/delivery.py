"""Fetching a finished synthesis from the worker's delivery endpoint with a request signed by the tenant's key.

``GET {base}/v1/syntheses/{synthesis_id}/audio`` carries ``voxflow-key-id`` (the tenant key's id),
``voxflow-timestamp`` (unix seconds) and ``voxflow-signature``: base64 of the Ed25519 signature over
``"GET\\n{path}\\n{timestamp}"`` (processors/trust/signing.py ``request_signing_bytes``). The worker
accepts timestamps within 300 s of its clock.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid

from processors.trust.signing import EventSigner
from voxflow.errors import (DeliveryFailed, DeliveryForbidden, DeliveryUnauthorized, SynthesisNotAvailable,
                            VoiceErased)

_REFUSALS: dict[int, type[DeliveryFailed]] = {
    401: DeliveryUnauthorized, 403: DeliveryForbidden, 404: SynthesisNotAvailable, 410: VoiceErased,
}
MAX_REASON_CHARS = 300


def audio_path(synthesis_id: uuid.UUID) -> str:
    return f"/v1/syntheses/{synthesis_id}/audio"


def dub_path(dub_id: uuid.UUID) -> str:
    return f"/v1/dubs/{dub_id}/media"


def report_path(analysis_id: uuid.UUID) -> str:
    return f"/v1/analyses/{analysis_id}/report"


async def download_audio(base_url: str, signer: EventSigner, synthesis_id: uuid.UUID, *, timeout_s: float) -> bytes:
    """The watermarked WAV of a completed synthesis; a ``DeliveryFailed`` subclass naming the refusal otherwise."""
    return await _download(base_url, signer, audio_path(synthesis_id), f"synthesis {synthesis_id}", timeout_s)


async def download_dub(base_url: str, signer: EventSigner, dub_id: uuid.UUID, *, timeout_s: float) -> bytes:
    """The watermarked, signed file (MP4 or WAV) of a completed dub; a ``DeliveryFailed`` subclass otherwise."""
    return await _download(base_url, signer, dub_path(dub_id), f"dub {dub_id}", timeout_s)


async def download_report(base_url: str, signer: EventSigner, analysis_id: uuid.UUID, *, timeout_s: float) -> bytes:
    """The HTML report of a completed analysis; a ``DeliveryFailed`` subclass naming the refusal otherwise."""
    return await _download(base_url, signer, report_path(analysis_id), f"report of analysis {analysis_id}", timeout_s)


async def _download(base_url: str, signer: EventSigner, path: str, what: str, timeout_s: float) -> bytes:
    request = urllib.request.Request(base_url.rstrip("/") + path, method="GET",
                                     headers=signer.request_headers("GET", path, int(time.time())))
    return await asyncio.to_thread(_fetch, request, what, timeout_s)


def _fetch(request: urllib.request.Request, what: str, timeout_s: float) -> bytes:
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.read()
    except urllib.error.HTTPError as refused:
        reason = _reason(refused.read())
        error_class = _REFUSALS.get(refused.code, DeliveryFailed)
        raise error_class(f"{what} not delivered (HTTP {refused.code}): {reason}",
                          status=refused.code) from refused
    except (urllib.error.URLError, OSError) as error:
        raise DeliveryFailed(f"delivery endpoint {request.full_url} unreachable: {error}", status=None) from error


def _reason(body: bytes) -> str:
    """The endpoint's ``{"error": ...}``, or the start of whatever else answered."""
    try:
        return str(json.loads(body)["error"])[:MAX_REASON_CHARS]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace").strip()[:MAX_REASON_CHARS] or "no reason given"
