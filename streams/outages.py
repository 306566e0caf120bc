"""One warning when PostgreSQL or the object store stops answering the stages and one when it answers again,
however many messages wait on it meanwhile (the broker's own lines come from ``infra.kafka.BrokerReachability``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import asyncpg

from infra.errors import DatabaseUnavailable, ObjectStoreUnavailable

log = logging.getLogger("voxflow.outages")

DEPENDENCY_ERRORS: tuple[tuple[str, tuple[type[BaseException], ...]], ...] = (
    ("PostgreSQL", (DatabaseUnavailable, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                    asyncpg.CannotConnectNowError, asyncpg.InternalClientError)),
    ("the object store", (ObjectStoreUnavailable,)),
)


def dependency_of(error: BaseException) -> str | None:
    """The service ``error`` says is away; None for errors that name none (a bare timeout, say)."""
    for dependency, errors in DEPENDENCY_ERRORS:
        if isinstance(error, errors):
            return dependency
    return None


class OutageLog:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._away_since: dict[str, float] = {}

    def failing(self, error: BaseException) -> str | None:
        """The dependency ``error`` names, said to be away the first time it is."""
        dependency = dependency_of(error)
        if dependency is not None and dependency not in self._away_since:
            self._away_since[dependency] = self._clock()
            log.warning("%s unavailable (%s: %s); the stages waiting on it retry until it answers", dependency,
                        type(error).__name__, error)
        return dependency

    def answering(self, dependency: str) -> None:
        """A step that had failed on ``dependency`` went through: it is back, said once."""
        away_since = self._away_since.pop(dependency, None)
        if away_since is not None:
            log.warning("%s answering again after %.0f s", dependency, self._clock() - away_since)
