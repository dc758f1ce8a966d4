"""Builds the events of one execution attempt: ids, sequence numbers, times, chunk indexes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from coderunner.schemas import events as ev

Publish = Callable[[Any], Awaitable[None]]
# What the pipeline calls to announce something: `await emit(EventClass, **fields)`.
Emit = Callable[..., Awaitable[None]]


class AttemptEmitter:
    """`await emit(EventClass, **fields)` publishes one event of this attempt, in order."""

    def __init__(self, execution_id: str, attempt: int, publish: Publish) -> None:
        self.execution_id = execution_id
        self.attempt = attempt
        self._publish = publish
        self._seq = 0  # 0 is the submission itself; a worker's events count from 1
        self._chunks = 0

    async def __call__(self, event_class: type[Any], **fields: Any) -> None:
        self._seq += 1
        if event_class is ev.LogChunk:
            fields["chunk_index"] = self._chunks
            self._chunks += 1
        event = event_class(
            event_id=str(uuid.uuid4()),
            execution_id=self.execution_id,
            attempt=self.attempt,
            seq=self._seq,
            occurred_at=ev.utc_now(),
            event_type=event_class.__name__,
            **fields,
        )
        await self._publish(event)
