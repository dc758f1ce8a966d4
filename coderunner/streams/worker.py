"""The execution worker: a thin Faust agent over the submission handler.

Several executions run at once (SANDBOX_MAX_IN_FLIGHT), but a submission's offset is only
acknowledged once it and every earlier submission of its partition are finished, so a
worker killed at any moment loses nothing: uncommitted submissions are delivered again and
the claim store turns them into a new attempt.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import asyncpg
import faust
import mode

from coderunner.errors import UndecodableEvent
from coderunner.handlers.ordered_acks import OrderedAcks
from coderunner.handlers.pipeline import ExecutionPipeline
from coderunner.handlers.submissions import SubmissionHandler
from coderunner.languages import languages
from coderunner.projections.claims import PostgresClaims
from coderunner.projections.migrations import migrate
from coderunner.sandbox.docker_sandbox import DockerSandbox
from coderunner.schemas.codec import SchemaRegistry, encode_key
from coderunner.settings import Settings
from coderunner.streams.app import Topics, create_app, declare_topics
from coderunner.streams.projector import register_projector

log = logging.getLogger(__name__)


class KafkaOutbox:
    """Where one submission's effects go; `flush` waits until the broker has them all."""

    def __init__(self, topics: Topics, registry: SchemaRegistry, source: Any) -> None:
        self._topics = topics
        self._registry = registry
        self._source = source  # the consumed message, named in dead letters
        self._pending: list[asyncio.Future[Any]] = []

    async def publish(self, event: Any) -> None:
        value = self._registry.encode(event)
        future = await self._topics.events.send(key=encode_key(event.execution_id), value=value)
        self._pending.append(future)

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)

    async def dead_letter(self, key: bytes | None, value: bytes, reason: str) -> None:
        log.warning(
            "dead letter from %s[%s]@%s: %s",
            self._source.topic,
            self._source.partition,
            self._source.offset,
            reason,
        )
        headers = {
            "reason": reason.encode(),
            "source-topic": self._source.topic.encode(),
            "source-partition": str(self._source.partition).encode(),
            "source-offset": str(self._source.offset).encode(),
        }
        future = await self._topics.deadletter.send(key=key, value=value, headers=headers)
        await future


class ExecutionWorker:
    """Owns the worker's resources and the in-flight executions."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics
        self.registry = SchemaRegistry()
        self._slots = asyncio.Semaphore(settings.sandbox_max_in_flight)
        self._acks: OrderedAcks[Any] = OrderedAcks()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handler: SubmissionHandler | None = None
        self._pool: asyncpg.Pool | None = None
        self._sandbox: DockerSandbox | None = None
        self._worker_name = f"{settings.worker_name}/{os.getpid()}"
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.settings.postgres_dsn.get_secret_value(),
            min_size=1,
            max_size=self.settings.postgres_pool_size,
        )
        async with self._pool.acquire() as conn:
            await migrate(conn)
        self._sandbox = DockerSandbox(self.settings)
        await self._sandbox.remove_leftovers()
        self._handler = SubmissionHandler(
            registry=self.registry,
            pipeline=ExecutionPipeline(self._sandbox, languages(), self.settings),
            claims=PostgresClaims(self._pool, self._worker_name),
            worker=self._worker_name,
            max_attempts=self.settings.sandbox_max_attempts,
        )
        self._ready.set()
        log.info(
            "worker %s ready: up to %d executions at once",
            self._worker_name,
            self.settings.sandbox_max_in_flight,
        )

    async def stop(self) -> None:
        """Hand back in-flight work: cancelled executions remove their containers and are
        not acknowledged, so they run again (as a new attempt) after a restart."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()

    async def dispatch(self, stream: Any, event: Any) -> None:
        """Start one message once a slot is free (the agent waits here: back-pressure).

        A cancel request takes no slot: it must reach an execution even when every slot is
        busy, possibly with that very execution.
        """
        await self._ready.wait()
        message = event.message
        slot = not self._is_cancel_request(message.value)
        if slot:
            await self._slots.acquire()
        self._acks.start(message.tp, message.offset, event)
        task = asyncio.ensure_future(self._process(stream, event, slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _is_cancel_request(self, value: bytes | None) -> bool:
        try:
            writer = self.registry.writer_of(value or b"")
        except UndecodableEvent:
            return False  # the handler sends it to the dead-letter topic, in a slot
        return writer.record_name == "ExecutionCancelRequested"

    async def _process(self, stream: Any, event: Any, slot: bool) -> None:
        message = event.message
        try:
            assert self._handler is not None
            outbox = KafkaOutbox(self.topics, self.registry, message)
            await self._handler.handle(message.key, message.value, outbox)
        finally:
            if slot:
                self._slots.release()
        # Only reached when the work is durable; a cancelled task never acknowledges.
        for done in self._acks.finish(message.tp, message.offset):
            await stream.ack(done)


class WorkerService(mode.Service):
    """Starts the worker's resources with the Faust worker and hands work back on shutdown."""

    def __init__(self, worker: ExecutionWorker, **kwargs: Any) -> None:
        self.worker = worker
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        await self.worker.start()

    async def on_stop(self) -> None:
        await self.worker.stop()


def build_worker(settings: Settings) -> tuple[faust.App, WorkerService]:
    """The Faust app with the execution agent, and the service to run beside it."""
    app = create_app(settings)
    topics = declare_topics(app, settings)
    worker = ExecutionWorker(settings, topics)

    @app.agent(topics.submissions, concurrency=1)
    async def execute_submissions(stream: Any) -> None:
        async for event in stream.noack().events():
            await worker.dispatch(stream, event)

    service = WorkerService(worker)
    if settings.projection_enabled:  # the read models, in the same process (see projector.py)
        service.add_dependency(register_projector(app, settings))
    return app, service
