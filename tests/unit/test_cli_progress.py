"""Progress as the CLI shows it away from a terminal: one line per update on stderr, nothing on stdout."""

import uuid

from cli.progress import ProgressDisplay, progress_of
from schemas.events import AdaptationProgress, AdaptationRequested, DubProgress, SynthesisChunkReady

ENVELOPE = {"tenant_id": "acme", "voice_id": "narrator-1"}


def chunk_ready(index: int, count: int) -> SynthesisChunkReady:
    return SynthesisChunkReady(**ENVELOPE, synthesis_id=uuid.uuid4(), chunk_index=index, chunk_count=count,
                               object_key=f"syntheses/acme/narrator-1/s/{index}.wav", sample_rate_hz=24000,
                               duration_s=1.0, latency_s=0.5)


def test_an_adaptation_reports_its_percent_tier_step_and_similarity():
    event = AdaptationProgress(**ENVELOPE, adaptation_id=uuid.uuid4(), tier="refined", percent=25.0, step=6,
                               steps=24, similarity_objective=0.612)

    update = progress_of(event)

    assert update.percent == 25.0
    assert update.detail == "adaptation.progress, refined tier, step 6/24, similarity 0.612"


def test_a_synthesis_counts_its_ready_chunks():
    assert progress_of(chunk_ready(0, 4)).percent == 25.0
    assert progress_of(chunk_ready(3, 4)).percent == 100.0
    assert "chunk 2/4" in progress_of(chunk_ready(1, 4)).detail


def test_a_dub_reports_its_percent_and_lines():
    update = progress_of(DubProgress(**ENVELOPE, dub_id=uuid.uuid4(), percent=50.0, segments_done=6,
                                     segment_count=12))

    assert update.percent == 50.0 and "line 6/12" in update.detail


def test_events_that_say_nothing_of_progress_are_not_shown(capsys):
    with ProgressDisplay("adapting", interactive=False) as progress:
        progress.on_event(AdaptationRequested(**ENVELOPE))

    assert capsys.readouterr() == ("", "")
    assert progress_of(AdaptationRequested(**ENVELOPE)) is None


def test_away_from_a_terminal_each_update_is_one_line_on_stderr(capsys):
    with ProgressDisplay("synthesis", interactive=False) as progress:
        for index in range(2):
            progress.on_event(chunk_ready(index, 2))

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["synthesis: 50% synthesis.chunk_ready, chunk 1/2",
                                "synthesis: 100% synthesis.chunk_ready, chunk 2/2"]


def test_a_local_fit_reports_its_steps(capsys):
    with ProgressDisplay("fitting the voice", interactive=False) as progress:
        progress.fit_callback()(3, 12, 0.5)

    assert capsys.readouterr().err == "fitting the voice: 25% step 3/12, similarity 0.500\n"
