"""The worker's web server: ``GET /metrics`` (Prometheus text), ``GET /health`` (broker, Postgres, S3) and
``GET /v1/syntheses/{id}/audio`` and ``GET /v1/dubs/{id}/media`` (a tenant's finished output, for a request signed by its key: streams/delivery.py),
``GET /v1/analyses/{id}/report`` (a tenant's analysis report, HTML, signed the same way)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from infra.db import check_database
from streams.delivery import DeliveryRefused, OutputDelivery
from streams.metrics import WorkerMetrics

log = logging.getLogger("voxflow.web")

HEALTH_CHECK_TIMEOUT_S = 2.0
HEALTH_PROBE_KEY = "health/probe"  # never written: a HEAD on it answers only if the store does
REASON_CHARS = 300

HealthCheck = Callable[[], Awaitable[object]]  # raises (or times out) when its dependency is unreachable


def dependency_checks(*, producer, pool, store) -> dict[str, HealthCheck]:
    """The worker's checks: a metadata request to the broker, ``SELECT 1`` on the pool, a HEAD on the store."""
    return {
        "broker": producer.check,
        "postgres": lambda: check_database(pool),
        "s3": lambda: store.exists(HEALTH_PROBE_KEY),
    }


async def check_health(checks: Mapping[str, HealthCheck], *, timeout_s: float = HEALTH_CHECK_TIMEOUT_S
                       ) -> tuple[bool, dict[str, str]]:
    """Runs every check at once; returns (all passed, {"status": …, name: "ok" or the one-line reason})."""
    reasons = await asyncio.gather(*(_reason_failed(check, timeout_s) for check in checks.values()))
    report = {name: reason or "ok" for name, reason in zip(checks, reasons)}
    healthy = not any(reasons)
    return healthy, {"status": "ok" if healthy else "failing", **report}


async def _reason_failed(check: HealthCheck, timeout_s: float) -> str | None:
    try:
        await asyncio.wait_for(check(), timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except Exception as error:  # noqa: BLE001 — any failure of a check is the reason the worker is unhealthy
        return " ".join(f"{type(error).__name__}: {error}".split())[:REASON_CHARS]
    return None


def create_web_app(metrics: WorkerMetrics, checks: Mapping[str, HealthCheck], *,
                   delivery: OutputDelivery | None = None,
                   timeout_s: float = HEALTH_CHECK_TIMEOUT_S) -> web.Application:
    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def serve_health(request: web.Request) -> web.Response:
        healthy, report = await check_health(checks, timeout_s=timeout_s)
        if not healthy:
            log.warning("health check failing: %s", report)
        return web.json_response(report, status=200 if healthy else 503)

    def delivering(what: str, id_name: str, deliver, response_of):
        async def serve(request: web.Request) -> web.Response:
            requested_id = request.match_info[id_name]
            try:
                delivered = await deliver(requested_id, request.path, request.headers)
            except DeliveryRefused as refusal:
                log.info("refused %s %s: %s", what, requested_id, refusal)
                return web.json_response({"error": str(refusal)}, status=refusal.status)
            return response_of(delivered)
        return serve

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/health", serve_health)
    if delivery is not None:
        app.router.add_get("/v1/syntheses/{synthesis_id}/audio", delivering(
            "output", "synthesis_id", delivery.synthesis_audio,
            lambda audio: web.Response(body=audio, content_type="audio/wav")))
        app.router.add_get("/v1/dubs/{dub_id}/media", delivering(
            "dub", "dub_id", delivery.dub_media,
            lambda media: web.Response(body=media.data, content_type=media.media_type)))
        app.router.add_get("/v1/analyses/{analysis_id}/report", delivering(
            "analysis report", "analysis_id", delivery.analysis_report,
            lambda report: web.Response(body=report, content_type="text/html", charset="utf-8")))
    return app


class WebServer:
    """Serves an aiohttp app on host:port (port 0: an ephemeral one, in ``port`` once started)."""

    def __init__(self, app: web.Application, host: str, port: int):
        self.host = host
        self.port = port
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError:
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
