"""``Client``: the AsyncClient's API for code without an event loop, or with one it must not hand over.

The client runs its own event loop in a thread for as long as it is open (the result feed keeps reading
between calls, so an ending is not missed); each call blocks the calling thread until it is done. That
works inside a running loop too, which it blocks meanwhile: in async code use ``AsyncClient``. Progress
callbacks run on the client's thread and must not call the client.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from voxflow.client import AsyncClient
from voxflow.config import ClientConfig

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(method: Callable[Concatenate[AsyncClient, P], Awaitable[R]]) -> Callable[Concatenate["Client", P], R]:
    @functools.wraps(method)
    def call(self: "Client", *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(method(self._client, *args, **kwargs))

    return call


class Client:
    """``with Client(config) as client: ...``: the same methods as ``AsyncClient``, blocking."""

    def __init__(self, config: ClientConfig):
        self.config = config
        self._client = AsyncClient(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def key_id(self) -> str:
        return self._client.key_id

    def __enter__(self) -> "Client":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="voxflow-client", daemon=True)
        self._thread.start()
        try:
            self._run(self._client.__aenter__())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self._loop is None:
            return
        try:
            self._run(self._client.__aexit__(*exc_info))
        finally:
            self._stop_loop()

    def _run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the client is not open: use `with Client(config) as client`")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a progress callback cannot call the client it reports for")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._thread = None

    upload_sample = _blocking(AsyncClient.upload_sample)
    grant_consent = _blocking(AsyncClient.grant_consent)
    revoke_consent = _blocking(AsyncClient.revoke_consent)
    request_adaptation = _blocking(AsyncClient.request_adaptation)
    synthesize = _blocking(AsyncClient.synthesize)
    erase_voice = _blocking(AsyncClient.erase_voice)
    dub = _blocking(AsyncClient.dub)
    analyze = _blocking(AsyncClient.analyze)
    wait_for = _blocking(AsyncClient.wait_for)
    download = _blocking(AsyncClient.download)
    download_dub = _blocking(AsyncClient.download_dub)
    download_report = _blocking(AsyncClient.download_report)
    clone_and_speak = _blocking(AsyncClient.clone_and_speak)
