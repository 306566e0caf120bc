"""docs/examples: one example of every event type, each valid, none stale, all as the export writes them."""

from pathlib import Path

from click.testing import CliRunner

from cli import main
from schemas import EVENT_TYPES, parse_event

DOCS = Path(__file__).parents[2] / "docs"
EXAMPLES = DOCS / "examples"
README = Path(__file__).parents[2] / "README.md"


def test_every_event_type_has_an_example_and_no_example_is_stale():
    assert sorted(path.stem for path in EXAMPLES.glob("*.json")) == sorted(EVENT_TYPES), \
        "run `make schemas` and commit docs/examples"


def test_every_example_is_a_valid_event_of_its_type():
    for path in EXAMPLES.glob("*.json"):
        assert parse_event(path.read_bytes()).type == path.stem


def test_committed_examples_match_what_the_export_writes(tmp_path):
    result = CliRunner().invoke(main, ["schemas", "export", str(tmp_path / "schemas"), "--examples",
                                       str(tmp_path / "examples")])

    assert result.exit_code == 0, result.output
    exported = {p.name: p.read_text() for p in (tmp_path / "examples").iterdir()}
    committed = {p.name: p.read_text() for p in EXAMPLES.iterdir()}
    assert exported == committed, "run `make schemas` and commit docs/examples"


def test_the_readme_points_at_the_examples():
    assert "docs/examples/" in README.read_text()
