"""infra.s3_preconditions in front of a fake S3 server that, like `rclone serve s3`, ignores write conditions."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest
from aiohttp import web
from botocore.credentials import Credentials

from infra.s3_preconditions import PreconditionProxy, _failed_condition

KEY_PATH = "/bucket/partition/watermark.json"
# Long enough that racing writes overlap inside the fake server, as they do inside rclone.
FAKE_WRITE_S = 0.01


class ConditionBlindS3:
    """Stores PUT bodies by path, ETag the quoted MD5; never looks at If-Match or If-None-Match."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.requests: list[web.BaseRequest] = []
        self.raw_paths: list[str] = []

    async def handle(self, request: web.BaseRequest) -> web.Response:
        self.raw_paths.append(request.raw_path)
        self.requests.append(request)
        if request.method == "PUT":
            body = await request.read()
            await asyncio.sleep(FAKE_WRITE_S)
            self.objects[request.path] = body
            return web.Response(headers={"ETag": etag_of(body)})
        if request.path not in self.objects:
            return web.Response(status=404)
        body = self.objects[request.path]
        return web.Response(body=None if request.method == "HEAD" else body, headers={"ETag": etag_of(body)})


def etag_of(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


async def serve_on_free_port(handler) -> tuple[web.BaseRunner, str]:
    runner = web.ServerRunner(web.Server(handler))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"{host}:{port}"


@pytest.fixture
async def upstream():
    fake = ConditionBlindS3()
    runner, address = await serve_on_free_port(fake.handle)
    fake.address = address
    yield fake
    await runner.cleanup()


@pytest.fixture
async def proxy_address(upstream):
    proxy = PreconditionProxy(upstream.address, Credentials("access", "secret"))
    await proxy.start()
    runner, address = await serve_on_free_port(proxy.handle)
    yield address
    await runner.cleanup()
    await proxy.close()


async def put(session: aiohttp.ClientSession, address: str, body: bytes, **headers: str) -> tuple[int, str]:
    async with session.put(f"http://{address}{KEY_PATH}", data=body, headers=headers) as answer:
        return answer.status, await answer.text()


async def test_of_racing_creates_exactly_one_is_written(upstream, proxy_address):
    async with aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(*(put(session, proxy_address, f"batch {n}".encode(), **{"If-None-Match": "*"})
                                          for n in range(8)))

    assert sorted(status for status, _ in statuses) == [200] + [412] * 7
    assert sum(1 for request in upstream.requests if request.method == "PUT") == 1


async def test_of_racing_swaps_from_one_etag_exactly_one_is_written(upstream, proxy_address):
    upstream.objects[KEY_PATH] = b"watermark 0"
    async with aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(*(put(session, proxy_address, f"watermark {n}".encode(),
                                              **{"If-Match": etag_of(b"watermark 0")}) for n in range(1, 9)))

    assert sorted(status for status, _ in statuses) == [200] + [412] * 7
    assert upstream.objects[KEY_PATH] != b"watermark 0"


async def test_a_refusal_is_an_s3_precondition_failed_error_and_the_connection_stays_usable(upstream, proxy_address):
    upstream.objects[KEY_PATH] = b"current"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        status, body = await put(session, proxy_address, b"stale", **{"If-Match": '"not-the-etag"'})
        after = await put(session, proxy_address, b"next", **{"If-Match": etag_of(b"current")})

    assert status == 412
    assert "<Code>PreconditionFailed</Code>" in body and "<Condition>If-Match</Condition>" in body
    assert after[0] == 200 and upstream.objects[KEY_PATH] == b"next"


async def test_requests_reach_the_upstream_unchanged_so_their_signature_still_holds(upstream, proxy_address):
    signed_headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=access/...", "X-Amz-Date": "20260101T000000Z",
                      "X-Amz-Content-Sha256": hashlib.sha256(b"body").hexdigest(), "Host": "signed-host:1234"}
    raw_path = "/bucket/a%20key%2Bplus?x-id=PutObject"
    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://{proxy_address}{raw_path}", data=b"body", headers=signed_headers) as answer:
            assert answer.status == 200

    forwarded = upstream.requests[-1]
    assert upstream.raw_paths[-1] == raw_path
    assert {name: forwarded.headers[name] for name in signed_headers} == signed_headers


@pytest.mark.parametrize(("conditions", "current_etag", "failed"), [
    ({"If-None-Match": "*"}, None, None),
    ({"If-None-Match": "*"}, '"abc"', "If-None-Match"),
    ({"If-Match": '"abc"'}, '"abc"', None),
    ({"If-Match": "abc"}, '"abc"', None),
    ({"If-Match": '"abc"'}, '"def"', "If-Match"),
    ({"If-Match": '"abc"'}, None, "If-Match"),
    ({"If-Match": "*"}, '"def"', None),
    ({"If-Match": '"x", "def"'}, '"def"', None),
    ({}, '"def"', None),
])
def test_the_failed_condition_is_named(conditions, current_etag, failed):
    assert _failed_condition(conditions, current_etag) == failed
