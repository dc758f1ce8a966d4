"""Release finished work in arrival order, per partition, so no offset passes unfinished work.

Executions finish out of order when several run at once. Kafka commits one offset per
partition meaning "everything before this is done", and faust-streaming's own gap handling
can commit past a message still in flight (issue #606). So the worker acknowledges a
message only when it and every earlier message of its partition are finished.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class OrderedAcks(Generic[T]):
    """Tracks in-flight items per partition; `finish` returns the items now safe to ack."""

    def __init__(self) -> None:
        # partition -> offset -> [item, finished?]; dicts keep arrival (= offset) order.
        self._pending: dict[Hashable, OrderedDict[int, list[object]]] = {}

    def start(self, partition: Hashable, offset: int, item: T) -> None:
        self._pending.setdefault(partition, OrderedDict())[offset] = [item, False]

    def finish(self, partition: Hashable, offset: int) -> list[T]:
        queue = self._pending[partition]
        queue[offset][1] = True
        released: list[T] = []
        while queue:
            first_offset, (item, finished) = next(iter(queue.items()))
            if not finished:
                break
            del queue[first_offset]
            released.append(item)  # type: ignore[arg-type]
        return released

    def in_flight(self) -> int:
        return sum(len(queue) for queue in self._pending.values())
