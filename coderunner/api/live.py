"""Live events for WatchExecution: one follower per execution, fanned out to its watchers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from coderunner.streams.client import ExecutionClient


class LiveEvents:
    """Hands every event of the events topic to each watcher of its execution.

    ExecutionClient keeps one queue per execution; here one pump task per watched execution
    copies that queue to every watcher's own queue, so two watchers never steal each other's
    events. The last watcher to leave stops the pump and the client's follower.
    """

    def __init__(self, client: ExecutionClient) -> None:
        self._client = client
        self._watchers: dict[str, set[asyncio.Queue[Any]]] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}

    @contextmanager
    def subscribe(self, execution_id: str) -> Iterator[asyncio.Queue[Any]]:
        """A queue of the execution's events from now on (till its terminal event)."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._watchers.setdefault(execution_id, set()).add(queue)
        pump = self._pumps.get(execution_id)
        if pump is None or pump.done():
            self._client.follow(execution_id)  # synchronous: nothing published after is missed
            self._pumps[execution_id] = asyncio.ensure_future(self._pump(execution_id))
        try:
            yield queue
        finally:
            watchers = self._watchers.get(execution_id, set())
            watchers.discard(queue)
            if not watchers:
                self._watchers.pop(execution_id, None)
                pump = self._pumps.pop(execution_id, None)
                if pump is not None:
                    pump.cancel()
                self._client.unfollow(execution_id)

    def close(self) -> None:
        for pump in self._pumps.values():
            pump.cancel()

    async def _pump(self, execution_id: str) -> None:
        async for event in self._client.events(execution_id):
            for queue in self._watchers.get(execution_id, ()):
                queue.put_nowait(event)
