"""Putting audio in the object store (claim check). The app holds no data keys: what it puts in the inbox
areas (uploads, consent statements) arrives in plaintext, and the stage that reads it seals it."""

from __future__ import annotations

import asyncio
import io

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from voxflow.config import ClientConfig
from voxflow.errors import UploadFailed

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
RETRIES = 3
_STORE_ERRORS = (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError)


class Uploads:
    def __init__(self, config: ClientConfig):
        self.bucket = config.s3_bucket
        self.endpoint = config.s3_endpoint
        self._client = Minio(
            config.s3_endpoint, access_key=config.s3_access_key, secret_key=config.s3_secret_key,
            secure=config.s3_secure, region=config.s3_region,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
                retries=urllib3.Retry(total=RETRIES, backoff_factor=0.3, status_forcelist=(500, 502, 503, 504)),
            ),
        )

    async def put(self, key: str, data: bytes) -> None:
        try:
            await asyncio.to_thread(self._client.put_object, self.bucket, key, io.BytesIO(data), len(data))
        except _STORE_ERRORS as error:
            raise UploadFailed(f"could not put {key} in bucket {self.bucket!r} at {self.endpoint}: "
                               f"{_described(error)}") from error


def _described(error: Exception) -> str:
    if isinstance(error, S3Error):
        return f"{error.code}: {error.message}"
    return f"{type(error).__name__}: {error}"
