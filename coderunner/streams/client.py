"""A producer-side client: publish a submission, then follow its events until it ends.

Used by `coderunner submit`, the benchmark and the end-to-end tests — the same path any
outside producer takes (plain aiokafka plus the published Avro contract).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from coderunner.schemas import events as ev
from coderunner.schemas.codec import SchemaRegistry, encode_key
from coderunner.settings import Settings
from coderunner.streams.kafka_config import aiokafka_kwargs, producer_kwargs

TERMINAL = (ev.ExecutionCompleted, ev.ExecutionRejected, ev.ExecutionCancelled)


class ExecutionClient:
    """`async with ExecutionClient(settings) as client:` — one producer and one event reader.

    A single background task reads the events topic and hands each event to whoever follows
    that execution, so many executions can be followed at once without polling each other.
    """

    def __init__(self, settings: Settings, registry: SchemaRegistry | None = None) -> None:
        self._settings = settings
        self._registry = registry or SchemaRegistry()
        kwargs = aiokafka_kwargs(settings)
        self._producer = AIOKafkaProducer(**producer_kwargs(settings), linger_ms=0, acks="all")
        # No consumer group: every client reads the events topic on its own, from "now".
        self._consumer = AIOKafkaConsumer(**kwargs, group_id=None, fetch_max_wait_ms=100)
        self._followers: dict[str, asyncio.Queue[Any]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ExecutionClient:
        await self._producer.start()
        await self._consumer.start()
        topic = self._settings.kafka_topic_events
        partitions = await self._producer.partitions_for(topic)
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(assignment)
        await self._consumer.seek_to_end(*assignment)
        # Resolve the end offsets now, so events published after this point are all seen.
        for tp in assignment:
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read_events())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._consumer.stop()
        await self._producer.stop()

    async def submit(self, submission: ev.ExecutionSubmitted) -> str:
        """Publish; returns the execution id once the broker has stored the submission.
        Its events are followed from here on (read them with `events` or `wait`)."""
        self.follow(submission.execution_id)
        await self.publish(submission)
        return submission.execution_id

    async def publish(self, submission: ev.ExecutionSubmitted) -> None:
        """Publish without following (a server that submits for others keeps no queue)."""
        await self._producer.send_and_wait(
            self._settings.kafka_topic_submissions,
            self._registry.encode(submission),
            key=encode_key(submission.execution_id),
        )

    async def cancel(
        self, execution_id: str, reason: str = "cancelled by the client", by: str | None = None
    ) -> None:
        """Ask the worker that owns the execution to stop it (it answers ExecutionCancelled)."""
        request = ev.ExecutionCancelRequested(
            execution_id=execution_id, reason=reason, requested_by=by
        )
        await self._producer.send_and_wait(
            self._settings.kafka_topic_submissions,
            self._registry.encode(request),
            key=encode_key(execution_id),
        )

    def follow(self, execution_id: str) -> None:
        """Start keeping this execution's events (submit does it for you)."""
        self._followers.setdefault(execution_id, asyncio.Queue())

    def unfollow(self, execution_id: str) -> None:
        """Stop keeping this execution's events (its terminal event does it by itself)."""
        self._followers.pop(execution_id, None)

    def pending(self, execution_id: str) -> list[Any]:
        """Events of a followed execution received but not read yet (without waiting)."""
        queue = self._followers.get(execution_id)
        items = []
        while queue is not None and not queue.empty():
            items.append(queue.get_nowait())
        return items

    async def events(self, execution_id: str) -> AsyncIterator[Any]:
        """This execution's events as they arrive, ending after its terminal event."""
        self.follow(execution_id)
        queue = self._followers[execution_id]
        while True:
            event = await queue.get()
            yield event
            if isinstance(event, TERMINAL):
                del self._followers[execution_id]
                return

    async def wait(self, execution_id: str) -> Any:
        """The terminal event of this execution."""
        terminal = None
        async for event in self.events(execution_id):
            terminal = event
        return terminal

    async def _read_events(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    queue = self._followers.get(record.key.decode()) if record.key else None
                    if queue is not None:
                        queue.put_nowait(self._registry.decode(record.value))


def new_submission(language: str, source: str, **fields: Any) -> ev.ExecutionSubmitted:
    """An ExecutionSubmitted with fresh ids and the current time; `execution_id` may be given."""
    return ev.ExecutionSubmitted(
        event_id=str(uuid.uuid4()),
        execution_id=fields.pop("execution_id", None) or str(uuid.uuid4()),
        attempt=0,
        seq=0,
        occurred_at=ev.utc_now(),
        event_type="ExecutionSubmitted",
        language=language,
        source=source,
        **fields,
    )
