"""Vendor errors of the MinIO client leave the object store as named voxflow errors (no services)."""

from __future__ import annotations

import socket
import threading

import pytest
import urllib3
from minio.error import InvalidResponseError, S3Error

from infra.errors import ObjectNotFound, ObjectStoreError, ObjectStoreUnavailable
from infra.objectstore import MinioStore
from infra.settings import Settings
from streams.processing import TRANSIENT_ERRORS


def s3_error(code: str, status: int) -> S3Error:
    return S3Error(urllib3.HTTPResponse(status=status), code, "refused", "/voxflow/k", None, None)


class RaisingClient:
    """Stands in for `minio.Minio`: every call raises the vendor error it was given."""

    def __init__(self, error: Exception):
        self.error = error

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise self.error
        return call


async def put_through(error: Exception) -> ObjectStoreError:
    with pytest.raises(ObjectStoreError) as raised:
        await MinioStore(RaisingClient(error), "voxflow").put("samples/a.wav", b"x")
    return raised.value


@pytest.mark.parametrize("error", [
    pytest.param(s3_error("AccessDenied", 403), id="write permission withdrawn"),
    pytest.param(urllib3.exceptions.MaxRetryError(None, "/voxflow/samples/a.wav",
                                                  urllib3.exceptions.ResponseError("too many 500 error responses")),
                 id="read-only volume behind rclone (HTTP 500, retried by urllib3)"),
    pytest.param(urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
                 id="dropped connection"),
    pytest.param(PermissionError(13, "Permission denied"), id="permission error"),
    pytest.param(TimeoutError("timed out"), id="timeout"),
    pytest.param(InvalidResponseError(503, "text/html", "<html>upstream down</html>"), id="proxy 503 page"),
])
async def test_failures_that_can_clear_up_are_retryable(error):
    translated = await put_through(error)

    assert isinstance(translated, ObjectStoreUnavailable)
    assert isinstance(translated, TRANSIENT_ERRORS)
    # asyncio re-raises a worker thread's TimeoutError as a fresh instance: compare types.
    assert type(translated.__cause__) is type(error)


async def test_a_missing_object_is_not_found_also_in_rclones_text_xml_answer():
    rclone_answer = InvalidResponseError(404, "text/xml; charset=utf-8",
                                         "<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>")

    assert isinstance(await put_through(rclone_answer), ObjectNotFound)
    assert isinstance(await put_through(s3_error("NoSuchKey", 404)), ObjectNotFound)


async def test_a_wrong_key_is_not_retried():
    translated = await put_through(s3_error("SignatureDoesNotMatch", 403))

    assert not isinstance(translated, ObjectStoreUnavailable)


async def test_a_real_dropped_connection_is_unavailable():
    with socket.create_server(("127.0.0.1", 0)) as server:
        def hang_up():
            for _ in range(8):  # the first try and urllib3's retries
                connection, _ = server.accept()
                connection.close()
        threading.Thread(target=hang_up, daemon=True).start()
        store = MinioStore.from_settings(Settings(_env_file=None, s3_endpoint=f"127.0.0.1:{server.getsockname()[1]}"))

        with pytest.raises(ObjectStoreUnavailable, match="unreachable"):
            await store.get("samples/a.wav")
