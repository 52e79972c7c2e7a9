"""An asyncio event loop on a thread of its own, for the NATS client (nats-py is asyncio).

The worker, delivery and HTTP threads stay as they are; they hand coroutines to this loop
(``call`` waits for the result, ``submit`` does not).

>>> loop = LoopThread()
>>> async def answer():
...     return 42
>>> loop.call(answer())
42
>>> loop.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Runs one event loop until ``close``."""

    def __init__(self, name: str = "nats") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        return self.submit(coroutine).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()
