"""What an upstream app does, for voxflow's own tools and tests: put audio in the object store, then produce
the event (claim check). The events themselves are built and signed by the client package's
`voxflow.envelopes`, the one place the wire format is written down."""

from __future__ import annotations

import base64
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.objectstore import ObjectStore
from processors.trust.consent import raw_public_key
from schemas.events import SampleUploaded
from streams.publisher import EventPublisher
from voxflow.envelopes import sample_uploaded


async def upload_sample(
    store: ObjectStore, publisher: EventPublisher, *, data: bytes, filename: str, tenant_id: str, voice_id: str,
    correlation_id: uuid.UUID | None = None,
) -> SampleUploaded:
    """Store the audio first, then announce it: the event never points at a missing object."""
    event = sample_uploaded(tenant_id=tenant_id, voice_id=voice_id, filename=filename, size_bytes=len(data),
                            correlation_id=correlation_id)
    await store.put(event.object_key, data)
    await publisher.publish(event)
    return event


def public_key_base64(private_key: Ed25519PrivateKey) -> str:
    return base64.b64encode(raw_public_key(private_key)).decode()
