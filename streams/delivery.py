"""Output delivery: a tenant fetches its finished audio from a worker with a request signed by its key.

Objects are sealed at rest, so an upstream app cannot read them from the bucket; a worker opens them
for the tenant that owns them. ``GET /v1/syntheses/{id}/audio`` (and ``GET /v1/dubs/{id}/media``, ``GET /v1/analyses/{id}/report``) with ``voxflow-key-id``,
``voxflow-timestamp`` (unix seconds) and ``voxflow-signature`` (base64 Ed25519 over
``GET\\n{path}\\n{timestamp}``, processors/trust/signing.py ``request_signing_bytes``).
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from infra.errors import DataKeyDestroyed, ObjectNotFound
from infra.objectstore import ObjectStore
from infra.records import DubRecord, ErasedOutput, SynthesisRecord
from infra.repositories import TenantKey
from processors.trust.signing import KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, request_signing_bytes
from streams.handlers.analysis import analysis_report_key

MAX_CLOCK_SKEW_S = 300  # a captured request stops working after this long
HTTP_UNAUTHORIZED, HTTP_FORBIDDEN, HTTP_NOT_FOUND, HTTP_GONE = 401, 403, 404, 410


class DeliveryRefused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class TenantKeys(Protocol):
    async def get(self, *, key_id: str) -> TenantKey | None: ...


class Syntheses(Protocol):
    async def get(self, *, synthesis_id: uuid.UUID) -> SynthesisRecord | None: ...


class Dubs(Protocol):
    async def get(self, *, dub_id: uuid.UUID) -> DubRecord | None: ...


class ErasedOutputs(Protocol):
    async def erased_output(self, *, output_id: uuid.UUID) -> ErasedOutput | None: ...


Delivered = TypeVar("Delivered", SynthesisRecord, DubRecord)


@dataclass(frozen=True)
class DeliveredMedia:
    data: bytes
    media_type: str


class OutputDelivery:
    def __init__(self, syntheses: Syntheses, tenant_keys: TenantKeys, store: ObjectStore, *, clock=time.time,
                 dubs: Dubs | None = None, erased: ErasedOutputs | None = None):
        self.syntheses = syntheses
        self.tenant_keys = tenant_keys
        self.store = store
        self.dubs = dubs
        self.erased = erased
        self._clock = clock

    async def synthesis_audio(self, synthesis_id: str, path: str, headers: Mapping[str, str]) -> bytes:
        """The completed output's WAV for the tenant that signed the request; ``DeliveryRefused`` saying why not."""
        tenant_id = await self._signing_tenant("GET", path, headers)
        synthesis = await self._completed_of(tenant_id, "synthesis", synthesis_id,
                                             lambda row_id: self.syntheses.get(synthesis_id=row_id))
        return await self._opened(synthesis.object_key)

    async def dub_media(self, dub_id: str, path: str, headers: Mapping[str, str]) -> DeliveredMedia:
        """A completed dub's file (MP4 or WAV) for the tenant that signed the request; ``DeliveryRefused`` saying why not."""
        tenant_id = await self._signing_tenant("GET", path, headers)
        dub = await self._completed_of(tenant_id, "dub", dub_id, lambda row_id: self.dubs.get(dub_id=row_id))
        return DeliveredMedia(await self._opened(dub.output_key), dub.media_type)

    async def _completed_of(self, tenant_id: str, kind: str, row_id: str,
                            lookup: Callable[[uuid.UUID], Awaitable[Delivered | None]]) -> Delivered:
        """The completed ``kind`` ``row_id`` (``lookup`` finds it by UUID) if ``tenant_id`` owns it; 404, 403 or (erased
        with its voice) 410 if not."""
        try:
            output_id = uuid.UUID(row_id)
        except ValueError:
            raise DeliveryRefused(HTTP_NOT_FOUND, f"no {kind} {row_id}") from None
        row = await lookup(output_id)
        if row is None:
            await self._refuse_if_erased(tenant_id, kind, output_id)
            raise DeliveryRefused(HTTP_NOT_FOUND, f"no {kind} {row_id}")
        if row.tenant_id != tenant_id:
            raise DeliveryRefused(HTTP_FORBIDDEN, f"{kind} {row_id} belongs to another tenant")
        if row.status != "completed":
            raise DeliveryRefused(HTTP_NOT_FOUND, f"{kind} {row_id} is {row.status}, not completed")
        return row

    async def _refuse_if_erased(self, tenant_id: str, kind: str, output_id: uuid.UUID) -> None:
        """410 when the tenant's own output was erased with its voice (to another tenant it stays unknown)."""
        erased = None if self.erased is None else await self.erased.erased_output(output_id=output_id)
        if erased is not None and erased.tenant_id == tenant_id:
            raise DeliveryRefused(HTTP_GONE, f"{kind} {output_id} was erased with its voice at "
                                             f"{erased.erased_at.isoformat()}")

    async def _opened(self, key: str) -> bytes:
        """The object at ``key``; 410 once its voice's data key was destroyed (the voice was erased)."""
        try:
            return await self.store.get(key)
        except DataKeyDestroyed as error:
            raise DeliveryRefused(HTTP_GONE, str(error)) from error

    async def analysis_report(self, analysis_id: str, path: str, headers: Mapping[str, str]) -> bytes:
        """The HTML report of one of the signing tenant's analyses; ``DeliveryRefused`` saying why not. The key is
        the signing tenant's own, so another tenant's report is never reached, only not found."""
        tenant_id = await self._signing_tenant("GET", path, headers)
        try:
            report_key = analysis_report_key(tenant_id, uuid.UUID(analysis_id))
            return await self.store.get(report_key)
        except (ValueError, ObjectNotFound) as error:
            raise DeliveryRefused(HTTP_NOT_FOUND, f"no report of analysis {analysis_id} for tenant {tenant_id}") \
                from error

    async def _signing_tenant(self, method: str, path: str, headers: Mapping[str, str]) -> str:
        key_id, stamp, signature = (headers.get(name) for name in (KEY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
        if not (key_id and stamp and signature):
            raise DeliveryRefused(HTTP_UNAUTHORIZED, f"unsigned: send {KEY_ID_HEADER}, {TIMESTAMP_HEADER} and "
                                                     f"{SIGNATURE_HEADER}")
        try:
            timestamp, raw_signature = int(stamp), base64.b64decode(signature, validate=True)
        except (ValueError, binascii.Error) as error:
            raise DeliveryRefused(HTTP_UNAUTHORIZED, f"malformed {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}") from error
        if abs(self._clock() - timestamp) > MAX_CLOCK_SKEW_S:
            raise DeliveryRefused(HTTP_UNAUTHORIZED, f"{TIMESTAMP_HEADER} is more than {MAX_CLOCK_SKEW_S} s from "
                                                     "the worker's clock")
        tenant_key = await self.tenant_keys.get(key_id=key_id)
        if tenant_key is None or tenant_key.revoked_at is not None:
            raise DeliveryRefused(HTTP_UNAUTHORIZED, f"key {key_id} is not a registered, unrevoked tenant key")
        try:
            Ed25519PublicKey.from_public_bytes(tenant_key.public_key).verify(
                raw_signature, request_signing_bytes(method, path, timestamp))
        except InvalidSignature as error:
            raise DeliveryRefused(HTTP_UNAUTHORIZED, f"the signature of key {key_id} does not match the request") \
                from error
        return tenant_key.tenant_id
