"""Object store for audio (claim check): S3 through the MinIO client (the embedded stack's rclone, MinIO, AWS).

Every vendor error leaves this module as a named voxflow error: `ObjectNotFound`, `ObjectStoreUnavailable`
(retried by the stages: the store may come back, or its permissions be fixed) or `ObjectStoreError` (a
request the store will never accept).
"""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ElementTree
from pathlib import PurePosixPath
from typing import Protocol

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from infra.errors import InvalidObjectKey, ObjectNotFound, ObjectStoreError, ObjectStoreUnavailable
from infra.settings import Settings

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}
# Refusals that clear up: permissions fixed, a read-only volume made writable again, load shed.
_UNAVAILABLE_CODES = {"AccessDenied", "AllAccessDisabled", "SlowDown", "ServiceUnavailable", "InternalError",
                      "RequestTimeout", "XMinioServerNotInitialized"}
_VENDOR_ERRORS = (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError)
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_SERVER_ERROR = 500


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def list_keys(self, prefix: str) -> list[str]: ...


def validate_key(key: str) -> str:
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or "\\" in key or "\x00" in key:
        raise InvalidObjectKey(f"object key {key!r} must be a relative path without '..'")
    return key


class MinioStore:
    """S3-compatible store through the MinIO client; its blocking calls run in a thread."""

    def __init__(self, client: Minio, bucket: str):
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> "MinioStore":
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=5, read=60),
                retries=urllib3.Retry(total=3, backoff_factor=0.3, status_forcelist=(500, 502, 503, 504)),
            ),
        )
        return cls(client, settings.s3_bucket)

    async def _call(self, function, *args, key: str | None = None, **kwargs):
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except _VENDOR_ERRORS as error:
            where = f"{key!r} in bucket {self.bucket!r}" if key else f"bucket {self.bucket!r}"
            raise translate_error(error, where) from error

    async def ensure_bucket(self) -> None:
        if not await self._call(self.client.bucket_exists, self.bucket):
            await self._call(self.client.make_bucket, self.bucket)

    async def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        await self._call(
            self.client.put_object, self.bucket, validate_key(key), io.BytesIO(data), len(data),
            content_type=content_type, key=key,
        )

    async def get(self, key: str) -> bytes:
        return await self._call(self._read, validate_key(key), key=key)

    def _read(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    async def delete(self, key: str) -> None:
        await self._call(self.client.remove_object, self.bucket, validate_key(key), key=key)

    async def exists(self, key: str) -> bool:
        try:
            await self._call(self.client.stat_object, self.bucket, validate_key(key), key=key)
        except ObjectNotFound:
            return False
        return True

    async def list_keys(self, prefix: str) -> list[str]:
        objects = await self._call(lambda: list(self.client.list_objects(self.bucket, prefix=prefix, recursive=True)))
        return sorted(o.object_name for o in objects)


async def open_object_store(settings: Settings) -> ObjectStore:
    store = MinioStore.from_settings(settings)
    await store.ensure_bucket()
    return store


def translate_error(error: Exception, where: str) -> ObjectStoreError:
    """The voxflow error for a MinIO-client, urllib3 or socket error raised while working on `where`."""
    if isinstance(error, S3Error):
        status = error.response.status if error.response is not None else None
        return _s3_refusal(error.code, status, error.message, where)
    if isinstance(error, InvalidResponseError):
        # rclone answers errors as text/xml, which the MinIO client does not parse (it wants application/xml):
        # its status and body are only kept in private fields.
        return _s3_refusal(_xml_error_code(error._body), error._code, "non-XML response", where)
    if isinstance(error, ServerError):
        return ObjectStoreUnavailable(f"the S3 endpoint failed on {where} (HTTP {error.status_code})")
    return ObjectStoreUnavailable(f"the S3 endpoint is unreachable for {where}: {error}")


def _s3_refusal(code: str | None, status: int | None, message: str | None, where: str) -> ObjectStoreError:
    if code in _NOT_FOUND_CODES or (code is None and status == HTTP_NOT_FOUND):
        return ObjectNotFound(f"no object at {where}")
    # A 403 with another code (SignatureDoesNotMatch, InvalidAccessKeyId) is a wrong key: retrying cannot help.
    clears_up = code in _UNAVAILABLE_CODES or (code is None and status == HTTP_FORBIDDEN)
    if clears_up or (status or 0) >= HTTP_SERVER_ERROR:
        return ObjectStoreUnavailable(f"the S3 endpoint refused {where} for now: {code} (HTTP {status}): {message}")
    return ObjectStoreError(f"the S3 endpoint refused {where}: {code} (HTTP {status}): {message}")


def _xml_error_code(body: str | None) -> str | None:
    """`<Error><Code>…</Code></Error>` of an S3 error body, or None when the body is not one."""
    try:
        return ElementTree.fromstring(body or "").findtext("Code")
    except ElementTree.ParseError:
        return None
