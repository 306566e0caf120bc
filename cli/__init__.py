"""The `voxflow` command line, one module per command group; a composition root over streams and infra."""

from cli.app import main
from cli import audit, blocks, consent, demo, dub, events, keys, stack, tenant, verify, voices, worker  # noqa: F401 — each registers its commands

__all__ = ["main"]
