"""Who may produce which event: tenants sign what they send upstream, workers sign everything else.

An upstream event (``schemas.events.UPSTREAM_EVENTS``) must carry the signature of a key an operator
registered for the event's own tenant, or a worker's (workers re-send parked requests). Every other
event — chunk requests, produced chunks, audit records, checkpoints — must be signed by the worker
key, so nobody outside the deployment can forge a decision or an audit record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from infra.repositories import TenantKey
from processors.errors import EventSignatureError
from processors.trust.signing import key_id_of, message_signature, verify_message
from schemas.envelope import Event
from schemas.events import UPSTREAM_EVENTS, ErasureRequested
from streams.errors import Unauthenticated

# A revoked tenant key stops working within this long on every worker.
TENANT_KEY_CACHE_S = 30.0


class TenantKeys(Protocol):
    async def get(self, *, key_id: str) -> TenantKey | None: ...


class ProducerAuthenticator:
    def __init__(self, tenant_keys: TenantKeys, worker_public_key: bytes, *, clock=time.monotonic):
        self.tenant_keys = tenant_keys
        self.worker_public_key = worker_public_key
        self._worker_key_id = key_id_of(worker_public_key)
        self._clock = clock
        self._cached: dict[str, tuple[float, TenantKey]] = {}

    async def authenticate(self, event: Event, value: bytes, headers: Iterable[tuple[str, bytes]]) -> None:
        """Return when the message's signer may send ``event``; otherwise raise ``Unauthenticated`` saying why."""
        try:
            signature = message_signature(headers)
            if signature.key_id == self._worker_key_id:
                verify_message(value, signature, self.worker_public_key)
                return
            tenant_key = await self._tenant_key(signature.key_id)
            self._check_allowed(event, tenant_key, signature.key_id)
            verify_message(value, signature, tenant_key.public_key)
        except EventSignatureError as error:
            raise Unauthenticated(str(error)) from error

    def _check_allowed(self, event: Event, tenant_key: TenantKey | None, key_id: str) -> None:
        if tenant_key is None:
            raise Unauthenticated(f"signed by key {key_id}, which no operator registered")
        if tenant_key.revoked_at is not None:
            raise Unauthenticated(f"signed by key {key_id} of tenant {tenant_key.tenant_id!r}, revoked at "
                                  f"{tenant_key.revoked_at.isoformat()}")
        if tenant_key.tenant_id != event.tenant_id:
            raise Unauthenticated(f"signed by tenant {tenant_key.tenant_id!r} for tenant {event.tenant_id!r}")
        if type(event) not in UPSTREAM_EVENTS:
            raise Unauthenticated(f"{event.type} may only be sent by a voxflow worker, not by tenant "
                                  f"{tenant_key.tenant_id!r}")
        if isinstance(event, ErasureRequested) and event.requested_by == "operator":
            raise Unauthenticated(f"an operator's erasure must be signed by a voxflow worker key, not by tenant "
                                  f"{tenant_key.tenant_id!r}: a tenant erases with its owner's signature")

    async def _tenant_key(self, key_id: str) -> TenantKey | None:
        now = self._clock()
        cached = self._cached.get(key_id)
        if cached is not None and now - cached[0] < TENANT_KEY_CACHE_S:
            return cached[1]
        key = await self.tenant_keys.get(key_id=key_id)
        if key is not None:  # unknown ids stay uncached: a key registered a moment ago works at once
            self._cached[key_id] = (now, key)
        return key

