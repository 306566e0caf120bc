"""Object store for audio (claim check): one interface, a MinIO/S3 and a local-directory backend."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path, PurePosixPath
from typing import Protocol

import urllib3
from minio import Minio
from minio.error import S3Error

from infra.errors import InvalidObjectKey, ObjectNotFound, ObjectStoreUnavailable
from infra.settings import Settings

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}


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


class LocalDirectoryStore:
    """Objects as files under one directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    async def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError) as error:
            raise ObjectNotFound(f"no object at {key!r}") from error

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def list_keys(self, prefix: str) -> list[str]:
        if not self.root.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not PurePosixPath(k).name.startswith("."))


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
        except S3Error as error:
            if error.code in _NOT_FOUND_CODES:
                raise ObjectNotFound(f"no object at {key!r} in bucket {self.bucket!r}") from error
            raise ObjectStoreUnavailable(f"S3 error {error.code}: {error.message}") from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ObjectStoreUnavailable(f"S3 endpoint unreachable: {error}") from error

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
    if settings.object_store == "s3":
        store = MinioStore.from_settings(settings)
        await store.ensure_bucket()
        return store
    return LocalDirectoryStore(settings.resolved_local_store_dir)
