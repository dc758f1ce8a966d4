"""/metrics: Prometheus text format, from this process's counters and the read models.

What happened in the whole service (executions by verdict, durations, in-flight, projection
lag, dead letters) is read at scrape time from PostgreSQL and the brokers' end offsets, so
every API replica reports the same numbers and a restart loses nothing; only the API's own
traffic (submissions it took) is counted in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from coderunner.api import queries
from coderunner.projections.replay import positions
from coderunner.settings import Settings
from coderunner.streams.kafka_config import aiokafka_kwargs, producer_kwargs

log = logging.getLogger(__name__)

# Execution duration buckets, seconds (a hello world is ~0.1 s, the wall limit at most 30 s).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Snapshot:
    """What one scrape read from PostgreSQL and Kafka."""

    counts: list[dict[str, Any]] = field(default_factory=list)
    durations: list[dict[str, Any]] = field(default_factory=list)
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    parked: dict[str, int] = field(default_factory=dict)
    dead_letters: int | None = None
    errors: list[str] = field(default_factory=list)


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        executions = GaugeMetricFamily(
            "coderunner_executions",
            "Executions in the read model, by status, language and verdict",
            labels=["status", "language", "verdict"],
        )
        in_flight = GaugeMetricFamily(
            "coderunner_executions_in_flight",
            "Executions queued or running",
            labels=["status"],
        )
        flight = {"queued": 0, "running": 0}
        for row in s.counts:
            executions.add_metric([row["status"], row["language"], row["verdict"]], row["n"])
            if row["status"] in flight:
                flight[row["status"]] += row["n"]
        for status, n in flight.items():
            in_flight.add_metric([status], n)
        yield executions
        yield in_flight
        yield self._durations()
        lag = GaugeMetricFamily(
            "coderunner_projection_lag",
            "Messages not projected yet, per topic-partition",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in sorted(s.lag.items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        parked = GaugeMetricFamily(
            "coderunner_projection_dead_letters",
            "Poison events a projection parked",
            labels=["projection"],
        )
        for projection, n in s.parked.items():
            parked.add_metric([projection], n)
        yield parked
        if s.dead_letters is not None:
            yield GaugeMetricFamily(
                "coderunner_dead_letters",
                "Messages on the dead-letter topic",
                value=s.dead_letters,
            )
        yield GaugeMetricFamily(
            "coderunner_metrics_scrape_errors",
            "Sources this scrape could not read (see the API's log)",
            value=len(s.errors),
        )

    def _durations(self) -> Metric:
        family = HistogramMetricFamily(
            "coderunner_execution_duration_seconds",
            "Duration of completed executions (the read model's duration_us)",
            labels=["language"],
        )
        for row in self.snapshot.durations:
            buckets = [(str(b), n) for b, n in zip(DURATION_BUCKETS, row["buckets"], strict=True)]
            buckets.append(("+Inf", row["n"]))
            family.add_metric([row["language"]], buckets, sum_value=float(row["total"]) / 1e6)
        return family


class ApiMetrics:
    """The API's registry: its own counters plus a snapshot refreshed on every scrape."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.registry = CollectorRegistry()
        self._submissions = Counter(
            "coderunner_api_submissions",
            "Submissions this API process received, by language and outcome",
            ["language", "outcome"],
            registry=self.registry,
        )
        self._collector = _SnapshotCollector()
        self.registry.register(self._collector)
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []

    def submission(self, language: str, outcome: str) -> None:
        self._submissions.labels(language or "", outcome).inc()

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def render(self, pool: asyncpg.Pool) -> bytes:
        self._collector.snapshot = await self._read(pool)
        return generate_latest(self.registry)

    async def _read(self, pool: asyncpg.Pool) -> Snapshot:
        snapshot = Snapshot()
        reached: dict[Any, int] = {}
        try:
            async with pool.acquire() as conn:
                snapshot.counts = await queries.execution_counts(conn)
                bounds = tuple(int(b * 1e6) for b in DURATION_BUCKETS)
                snapshot.durations = await queries.duration_histogram(conn, bounds)
                snapshot.parked = await queries.dead_letter_counts(conn)
                reached = await positions(conn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("metrics: PostgreSQL not readable: %s", exc)
            snapshot.errors.append("postgresql")
        try:
            ends = await self._end_offsets()
        except Exception as exc:  # noqa: BLE001 -- a scrape reports what it could read
            log.warning("metrics: Kafka end offsets not readable: %s", exc)
            snapshot.errors.append("kafka")
            return snapshot
        s = self._settings
        for tp in (s.kafka_topic_submissions, s.kafka_topic_events):
            for (topic, partition), end in ends.items():
                if topic == tp:
                    behind = end - reached.get((topic, partition), 0)
                    snapshot.lag[(topic, partition)] = max(0, behind)
        snapshot.dead_letters = sum(
            end for (topic, _), end in ends.items() if topic == s.kafka_topic_deadletter
        )
        return snapshot

    async def _end_offsets(self) -> dict[tuple[str, int], int]:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**aiokafka_kwargs(self._settings), group_id=None)
            await consumer.start()
            self._consumer = consumer
        if not self._partitions:
            self._partitions = await self._topic_partitions()
        ends = await self._consumer.end_offsets(self._partitions)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def _topic_partitions(self) -> list[TopicPartition]:
        """Every partition of the three topics (a live topic never changes its count). A
        producer waits for a topic's metadata; the consumer's public API only reads a cache."""
        s = self._settings
        producer = AIOKafkaProducer(**producer_kwargs(s))
        await producer.start()
        try:
            return [
                TopicPartition(topic, p)
                for topic in (
                    s.kafka_topic_submissions,
                    s.kafka_topic_events,
                    s.kafka_topic_deadletter,
                )
                for p in sorted(await producer.partitions_for(topic))
            ]
        finally:
            await producer.stop()
