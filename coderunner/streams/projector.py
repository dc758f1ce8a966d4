"""The projection's Kafka side: a plain aiokafka consumer (default) or a Faust agent; replays, lag.

The default reader (PROJECTION_READER=consumer) is a plain aiokafka consumer in the group
KAFKA_CONSUMER_GROUP-projections, run as a service of the worker. It seeks to PostgreSQL's
positions on every assignment and splits its partitions into PROJECTION_LANES lanes (partition
number modulo lanes: an execution's events share one partition number on both topics); each
lane applies its batches one at a time, in order, each in its own transaction, and the next
batch is fetched and decoded while PostgreSQL commits the current one. Kafka offsets are
committed after PostgreSQL's, for tools that watch group lag.

PROJECTION_READER=agent keeps the Faust agent: it reads both topics at concurrency 1, takes
batches with `noack_take` (faust-streaming 0.15.3's `take` acks a batch in a `finally`, i.e.
also when the body failed; `noack_take` leaves acks to us), hands each batch to the Projector,
then acks the batch in order. Same Projector, same guarantees: the Projector returns only once
a batch and its positions are committed, so the Kafka offset never passes what PostgreSQL
holds, and PostgreSQL's positions make anything delivered again harmless.

Why the consumer is the default: Faust's per-message stream handling (an Event, a stream
iteration and an ack per message) dominates the agent. Replaying 200,000 realistic events
(`python -m bench.projection`, same run): the agent applies 6,916 events/s (7,390 steady), the
consumer reader 21,698 (24,856 steady), the bare aiokafka+fastavro+COPY baseline 30,744: 0.22
and 0.71 of it. The agent cannot meet the issue's goal (>= 20,000 events/s and >= 50% of the
baseline) however fast the Projector gets: the same Projector behind it stays under 8,000.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import faust
import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from coderunner.projections.migrations import migrate
from coderunner.projections.projector import DecodedMessage, Projector, SourceMessage
from coderunner.projections.replay import positions
from coderunner.settings import Settings
from coderunner.streams.app import create_app
from coderunner.streams.kafka_config import aiokafka_kwargs

log = logging.getLogger(__name__)


class ProjectorService(mode.Service):
    """Owns the projector's PostgreSQL pool; `apply` never raises (the agent must not)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._projector: Projector | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._in_flight: dict[int, asyncio.Future[None]] = {}  # lane -> its batch in flight
        self._ready = asyncio.Event()
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.settings.postgres_dsn.get_secret_value(),
            min_size=1,
            max_size=max(2, self.settings.projection_lanes),
        )
        async with self._pool.acquire() as conn:
            await migrate(conn)
        self._projector = Projector(self._pool.acquire, self.settings.kafka_topic_submissions)
        if self.settings.projection_reader == "consumer":
            self._consumer = await self._start_consumer()
            self.add_future(self._consume(self._consumer))
        self._ready.set()
        log.info(
            "projector ready (%s): %s, %s",
            self.settings.projection_reader,
            *_topics(self.settings),
        )

    async def on_stop(self) -> None:
        try:  # let the batches in flight commit; past that, roll them back (harmless)
            await asyncio.wait_for(self.drain(), timeout=10.0)
        except TimeoutError:
            log.warning("projection batches still in flight at stop: rolled back")
        self._cancel_in_flight()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._pool is not None:
            await self._pool.close()

    async def apply(self, events: Sequence[Any]) -> None:
        """The agent's batch: returns once committed (see `apply_messages`)."""
        await self.apply_messages([_source(e.message) for e in events])

    # --- the plain consumer reader (PROJECTION_READER=consumer, the default) ---------------
    # PostgreSQL's positions are the truth: on every assignment it seeks to them (see the
    # module docstring); Kafka commits are informative.

    async def _start_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self.settings),
            group_id=f"{self.settings.kafka_consumer_group}-projections",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=int(self.settings.projection_batch_seconds * 1000),
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        consumer.subscribe(list(_topics(self.settings)), listener=_SeekToPositions(self))
        return consumer

    async def stored_positions(self) -> dict[tuple[str, int], int]:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            return await positions(conn)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        # Pipelined: while PostgreSQL applies a lane's batch, the next ones are fetched and
        # decoded, and the other lane's batch is folded (see the module docstring).
        assert self._projector is not None
        size = self.settings.projection_batch_size
        wait_ms = int(self.settings.projection_batch_seconds * 1000)
        lanes = self.settings.projection_lanes
        try:
            while not self.should_stop:
                try:
                    data = await consumer.getmany(timeout_ms=wait_ms, max_records=size)
                except Exception:  # a broker hiccup: aiokafka reconnects, we keep asking
                    log.exception("projection consumer failed to fetch; retrying")
                    await asyncio.sleep(1.0)
                    continue
                by_lane: dict[int, dict[TopicPartition, list[Any]]] = {}
                for tp, records in data.items():
                    if records:
                        by_lane.setdefault(tp.partition % lanes, {})[tp] = records
                for lane, part in sorted(by_lane.items()):
                    await self._start(lane, part)
        except asyncio.CancelledError:
            self._cancel_in_flight()
            raise
        await self.drain()

    async def _start(self, lane: int, data: dict[TopicPartition, list[Any]]) -> None:
        """Decode a lane's batch, wait for the lane's previous batch, then apply this one."""
        assert self._projector is not None
        decoded = self._projector.decode(
            [
                SourceMessage(r.topic, r.partition, r.offset, r.key, r.value)
                for records in data.values()
                for r in records
            ]
        )
        previous = self._in_flight.pop(lane, None)
        if previous is not None:
            await previous
        offsets = {tp: records[-1].offset + 1 for tp, records in data.items()}
        self._in_flight[lane] = asyncio.ensure_future(self._apply_and_commit(decoded, offsets))

    async def drain(self) -> None:
        """Wait for every batch in flight to be committed."""
        while self._in_flight:
            await self._in_flight.pop(next(iter(self._in_flight)))

    def _cancel_in_flight(self) -> None:
        """Roll back the batches in flight: PostgreSQL's positions make that harmless."""
        for task in self._in_flight.values():
            task.cancel()
        self._in_flight.clear()

    async def _apply_and_commit(
        self, decoded: Sequence[DecodedMessage], offsets: dict[TopicPartition, int]
    ) -> None:
        await self.apply_decoded(decoded)
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # informative only: PostgreSQL holds the positions
            log.warning("projection consumer could not commit offsets: %s", exc)

    async def apply_messages(self, messages: Sequence[SourceMessage]) -> None:
        """Returns once the batch is committed (see `apply_decoded`)."""
        await self._ready.wait()
        assert self._projector is not None
        await self.apply_decoded(self._projector.decode(messages))

    async def apply_decoded(self, decoded: Sequence[DecodedMessage]) -> None:
        """Returns once the batch is committed; retries anything else forever, logging it."""
        await self._ready.wait()
        assert self._projector is not None
        delay = 0.5
        while True:
            try:
                await self._projector.apply_decoded(decoded)
                return
            except Exception:  # the projector classified all it could: keep the batch, retry
                log.exception("projection batch failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


def register_projector(app: faust.App, settings: Settings) -> ProjectorService:
    """Add the projection agent to `app`; the returned service must run beside the app."""
    service = ProjectorService(settings)
    if settings.projection_reader == "consumer":
        return service
    channel = app.topic(
        *_topics(settings),
        key_type=bytes,
        value_type=bytes,
        partitions=settings.kafka_topic_partitions,
    )

    @app.agent(channel, name="coderunner.projections", concurrency=1)
    async def project_events(stream: Any) -> None:
        batches = stream.noack_take(
            settings.projection_batch_size, within=settings.projection_batch_seconds
        )
        async for batch in batches:
            await service.apply(batch)
            for event in batch:  # in offset order, and only after the commit
                await stream.ack(event)

    return service


class _SeekToPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, continue from PostgreSQL's positions (not from Kafka's commits)."""

    def __init__(self, service: ProjectorService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._service.drain()  # let the batch in flight commit before handing over

    async def on_partitions_assigned(self, assigned: Any) -> None:
        consumer = self._service._consumer
        assert consumer is not None
        stored = await self._service.stored_positions()
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)


def build_projector(settings: Settings) -> tuple[faust.App | None, ProjectorService]:
    """The projection alone: a Faust app with only its agent (consumer group
    KAFKA_CONSUMER_GROUP-projector), or no app at all with the plain consumer reader."""
    if settings.projection_reader == "consumer":
        return None, ProjectorService(settings)
    app = create_app(settings, app_id=f"{settings.kafka_consumer_group}-projector")
    return app, register_projector(app, settings)


def _topics(settings: Settings) -> tuple[str, str]:
    return settings.kafka_topic_submissions, settings.kafka_topic_events


def _source(message: Any) -> SourceMessage:
    return SourceMessage(
        message.topic, message.partition, message.offset, message.key, message.value
    )


# --- replays and lag -------------------------------------------------------------------------


async def _assigned_consumer(
    settings: Settings, **kwargs: Any
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings), group_id=None, enable_auto_commit=False, **kwargs
    )
    await consumer.start()
    # A producer waits for a topic's metadata (the consumer's public API only reads a cache).
    producer = AIOKafkaProducer(**aiokafka_kwargs(settings))
    await producer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in _topics(settings)
            for p in sorted(await producer.partitions_for(topic))
        ]
    finally:
        await producer.stop()
    consumer.assign(tps)
    return consumer, tps


async def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """The next offset to be written on each partition of the projected topics."""
    consumer, tps = await _assigned_consumer(settings)
    try:
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def replay_from_kafka(
    settings: Settings, batch_size: int = 5000
) -> AsyncIterator[list[SourceMessage]]:
    """Every message of the projected topics from the beginning to the end offsets of now."""
    consumer, tps = await _assigned_consumer(
        settings, fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024
    )
    try:
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while remaining:
            data = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_size)
            batch = [
                SourceMessage(r.topic, r.partition, r.offset, r.key, r.value)
                for tp, records in data.items()
                for r in records
                if r.offset < ends[tp]
            ]
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if batch:
                yield batch
    finally:
        await consumer.stop()
