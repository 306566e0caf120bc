"""`voxflow produce … --wait` on a running worker: the request, a progress line per chunk, then its ending."""

import asyncio
import json
import uuid

import pytest
from click.testing import CliRunner

from cli import main
from tests.integration.test_cli_kafka import cli_environment
from tests.journeys import TENANT, consented_voice

pytestmark = pytest.mark.integration

TWO_SENTENCES = "Good morning, everyone. Today we will read the news of the week together."


async def produce_and_wait(settings, body: dict):
    """The CLI in a thread of its own: it runs its own event loop while the worker's keeps running here."""
    return await asyncio.to_thread(
        CliRunner().invoke, main, ["produce", "synthesis.requested", "--tenant", TENANT, "--wait", "--json", "-"],
        input=json.dumps(body), env=cli_environment(settings))


async def test_a_synthesis_is_followed_chunk_by_chunk_to_its_completion(pipeline_settings, session, results):
    voice_id = f"cli-wait-{uuid.uuid4().hex[:6]}"
    await consented_voice(session, results, voice_id=voice_id)

    result = await produce_and_wait(pipeline_settings, {"voice_id": voice_id, "text": TWO_SENTENCES,
                                                        "purpose": "narration"})

    assert result.exit_code == 0, result.output
    request, ending = [json.loads(line) for line in result.stdout.splitlines()]
    assert ending["type"] == "synthesis.completed" and ending["synthesis_id"] == request["synthesis_id"]
    chunks = ending["chunk_count"]
    progress = [line for line in result.stderr.splitlines() if line.startswith("synthesis.requested: ")]
    assert len(progress) == chunks
    assert progress[-1] == f"synthesis.requested: 100% synthesis.chunk_ready, chunk {chunks}/{chunks}"


async def test_a_refused_synthesis_exits_1_with_its_reason(pipeline_settings, worker):
    result = await produce_and_wait(pipeline_settings, {"voice_id": f"cli-unconsented-{uuid.uuid4().hex[:6]}",
                                                        "text": "Hello.", "purpose": "narration"})

    assert result.exit_code == 1
    assert json.loads(result.stdout.splitlines()[-1])["type"] == "synthesis.failed"
    assert "synthesis.failed for voice cli-unconsented-" in result.stderr and "Traceback" not in result.output
