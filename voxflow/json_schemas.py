"""The JSON Schema of each event type, shipped in the package for producers in other languages.

``voxflow/schemas/`` is what `voxflow schemas export voxflow/schemas` writes (the same files as docs/schemas).
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable


def schema_directory() -> Traversable:
    return resources.files("voxflow") / "schemas"


def schema(event_type: str) -> dict:
    """The JSON Schema of ``event_type`` (e.g. "synthesis.requested") at its latest version."""
    index = json.loads((schema_directory() / "index.json").read_text())
    if event_type not in index:
        raise LookupError(f"no schema for event type {event_type!r}; known: {', '.join(sorted(index))}")
    return json.loads((schema_directory() / index[event_type]["schema"]).read_text())
