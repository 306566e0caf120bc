"""The S3 server stopped for 20 s mid-stream, on a stack of its own: every request still ends once.

On the embedded stack the S3 server also holds the broker's log, so this outage takes the broker's
storage away too. It starts once the first request has ended, while the next ones are being synthesised.
On a loaded machine it once left a request without an ending: the outage fell between a chunk's upload
and its send (tests/faults/test_store_outage_mid_chunk.py starts it there every time). It runs on a
private stack because, measured in CI, later traffic on a broker that lived through it could stall:
the shared stack's other tests stay out of that.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from streams import topics
from streams.results import ResultWatcher
from streams.session import client_session
from streams.worker import VoxflowWorker
from tests.faults.test_delivery import ENDINGS, OUTAGE_S, endings_of, requests_for
from tests.journeys import RESULT_TIMEOUT_S, consented_voice

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_the_object_store_stopped_for_20_s_loses_and_doubles_nothing(private_stack, private_settings):
    async with VoxflowWorker(private_settings), client_session(private_settings) as session, \
            ResultWatcher(private_settings.kafka_bootstrap, topics.RESULTS) as results:
        _, _, ready = await consented_voice(session, results, voice_id=f"outage-{uuid.uuid4().hex[:6]}", max_uses=100)
        requests = requests_for(ready.voice_id, ready.correlation_id, 4)
        for request in requests:
            await session.publisher.publish(request)
        ours = {request.synthesis_id for request in requests}
        await results.wait_until(lambda event: event.type in ENDINGS and event.synthesis_id in ours,
                                 timeout_s=RESULT_TIMEOUT_S)
        await asyncio.to_thread(private_stack.down, "s3")
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(private_stack.up)

        endings = await endings_of(results, requests)

    assert [list(ended.values()) for ended in endings.values()] == [["synthesis.completed"]] * len(requests)
