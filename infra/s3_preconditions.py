"""An HTTP proxy in front of an S3 server that ignores conditional writes, enforcing them itself.

    python -m infra.s3_preconditions --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT

Tansu coordinates its log with conditional PUTs: `If-None-Match: *` creates an object only if it is
absent, `If-Match: <etag>` replaces it only if it is unchanged. `rclone serve s3` ignores both, so two
batches written at once to the same partition could both be acknowledged and one overwrite the other.
Here a write that carries a condition is checked against a HEAD of the object and forwarded only if the
condition holds, else answered `412 PreconditionFailed`, as S3 does. Writes to one key are serialised by
a lock, so check and write are atomic for every client of this proxy: it is sound as long as every
conditional writer goes through the same proxy process (the embedded stack runs one broker).

Requests are forwarded unchanged (method, raw path and query, every header but the per-connection
ones, Host included): they are signed with SigV4 over those, and the upstream checks the signature. The proxy's own HEAD requests are
signed with the keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

log = logging.getLogger("voxflow.s3_preconditions")

SIGNING_REGION = "us-east-1"
UPSTREAM_TIMEOUT_S = 60.0
# Per-connection headers (RFC 9110 §7.6.1): each hop sets its own; the client library writes them again.
# `Expect: 100-continue` is answered here (SigV4 never signs it), so the upstream is not asked to wait.
HOP_BY_HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                                "transfer-encoding", "upgrade", "expect"})
WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})
CONDITION_HEADERS = ("If-None-Match", "If-Match")


class PreconditionProxy:
    """Forwards every request to `upstream` (host:port), enforcing the write conditions on the way."""

    def __init__(self, upstream: str, credentials: Credentials):
        self._upstream = upstream
        self._signer = S3SigV4Auth(credentials, "s3", SIGNING_REGION)
        self._key_locks: dict[str, _KeyLock] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # No cookie jar, no decompression: the answers go back to the client as the upstream wrote them.
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                                              timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_S))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("Expect", "").lower() == "100-continue":
            # aiohttp's low-level server leaves this to the handler; without it the client waits a second
            # before sending the body. Sent before any check, so a refusal drains the body like any other.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if request.method not in WRITE_METHODS:
            return await self._forward(request)
        # Serialising every write to a key, conditional or not, keeps a plain PUT from slipping
        # between another request's check and its write.
        with self._locked(request.path) as lock:
            async with lock:
                refusal = await self._check_conditions(request)
                if refusal is not None:
                    # The unread body would otherwise be parsed as the connection's next request.
                    await request.release()
                    return refusal
                return await self._forward(request)

    async def _check_conditions(self, request: web.BaseRequest) -> web.Response | None:
        conditions = {name: request.headers[name] for name in CONDITION_HEADERS if name in request.headers}
        if not conditions:
            return None
        try:
            current_etag = await self._current_etag(request.path)
        except UpstreamError as error:
            log.warning("%s %s: cannot check %s: %s", request.method, request.path, conditions, error)
            return _s3_error(503, "ServiceUnavailable", f"cannot check the write condition: {error}", request.path)
        failed = _failed_condition(conditions, current_etag)
        log.debug("%s %s %s against etag %s: %s", request.method, request.path, conditions, current_etag,
                  f"refused ({failed})" if failed else "forwarded")
        if failed is None:
            return None
        return _s3_error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                         request.path, condition=failed)

    async def _current_etag(self, path: str) -> str | None:
        """The object's ETag upstream, None when there is no such object."""
        signed = AWSRequest(method="HEAD", url=f"http://{self._upstream}{path}")
        self._signer.add_auth(signed)
        try:
            async with self._session.head(URL(signed.url, encoded=True), headers=dict(signed.headers.items()),
                                          allow_redirects=False) as answer:
                if answer.status == 404:
                    return None
                if answer.status != 200:
                    raise UpstreamError(f"HEAD answered {answer.status}")
                return answer.headers.get("ETag", "")
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise UpstreamError(f"HEAD failed: {error!r}") from error

    async def _forward(self, request: web.BaseRequest) -> web.StreamResponse:
        headers = [(name, value) for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP_HEADERS]
        body = request.content if request.body_exists else None
        try:
            async with self._session.request(
                    request.method, URL(f"http://{self._upstream}{request.raw_path}", encoded=True),
                    headers=headers, data=body, allow_redirects=False,
                    skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type")) as answer:
                response = web.StreamResponse(status=answer.status, reason=answer.reason)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_BY_HOP_HEADERS:
                        response.headers.add(name, value)
                await response.prepare(request)
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            log.warning("%s %s: upstream failed: %r", request.method, request.path, error)
            return _s3_error(502, "BadGateway", f"the S3 server did not answer: {error!r}", request.path)

    @contextmanager
    def _locked(self, key: str) -> Iterator[asyncio.Lock]:
        """The key's lock, dropped from the table once no request holds or awaits it."""
        entry = self._key_locks.setdefault(key, _KeyLock())
        entry.users += 1
        try:
            yield entry.lock
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._key_locks[key]


class _KeyLock:
    def __init__(self):
        self.lock = asyncio.Lock()
        self.users = 0


class UpstreamError(Exception):
    """The S3 server behind the proxy could not say whether an object exists."""


def _failed_condition(conditions: dict[str, str], current_etag: str | None) -> str | None:
    """The header whose condition fails against the object's current ETag (None: absent), or None if all hold."""
    if_match = conditions.get("If-Match")
    if if_match is not None and not _etag_matches(if_match, current_etag):
        return "If-Match"
    if_none_match = conditions.get("If-None-Match")
    if if_none_match is not None and _etag_matches(if_none_match, current_etag):
        return "If-None-Match"
    return None


def _etag_matches(header: str, current_etag: str | None) -> bool:
    """RFC 9110 §13.1.1: `*` matches any existing object; otherwise one of the listed tags must be the current one."""
    if current_etag is None:
        return False
    listed = {_opaque_tag(tag) for tag in header.split(",")}
    return "*" in listed or _opaque_tag(current_etag) in listed


def _opaque_tag(tag: str) -> str:
    return tag.strip().removeprefix("W/").strip('"')


def _s3_error(status: int, code: str, message: str, resource: str, condition: str | None = None) -> web.Response:
    condition_element = f"<Condition>{condition}</Condition>" if condition else ""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}</Message>'
            f"{condition_element}<Resource>{escape(resource)}</Resource></Error>")
    return web.Response(status=status, text=body, content_type="application/xml")


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


async def serve(listen: str, upstream: str, credentials: Credentials) -> None:
    proxy = PreconditionProxy(upstream, credentials)
    await proxy.start()
    server = web.Server(proxy.handle)
    runner = web.ServerRunner(server)
    await runner.setup()
    host, port = _host_port(listen)
    await web.TCPSite(runner, host, port).start()
    log.info("enforcing S3 write conditions on %s in front of %s", listen, upstream)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port to serve on")
    parser.add_argument("--upstream", required=True, help="host:port of the S3 server")
    parser.add_argument("--log-level", default="INFO", help="DEBUG logs every conditional write and its outcome")
    options = parser.parse_args()
    logging.basicConfig(level=options.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("botocore", "asyncio", "aiohttp.access"):  # a line per signature and per request
        logging.getLogger(chatty).setLevel(logging.WARNING)
    credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    try:
        asyncio.run(serve(options.listen, options.upstream, credentials))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
