"""Projection throughput: the projector (Faust agent) against a bare aiokafka+fastavro+COPY loop.

Both replay the same topic pair of realistic generated events (many executions with steps,
logs, test results, some rejected, cancelled or retried) from offset 0 into their own fresh
PostgreSQL database, in the same run. The service figure is the real projector process
(`coderunner projector`) from its start to the moment its positions reach the end offsets.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastavro import schemaless_reader

from coderunner.projections.migrations import migrate
from coderunner.schemas.codec import HEADER_SIZE, default_registry
from coderunner.settings import Settings
from coderunner.streams.kafka_config import aiokafka_kwargs
from coderunner.streams.projector import end_offsets
from coderunner.streams.topics import ensure_topics
from tests.integration.workers import REPO, WorkerProcess, isolated_settings

Message = tuple[str, bytes, bytes]  # topic, key, value

_LIMITS = {
    "wall_time_ms": 2000,
    "cpu_time_ms": 2000,
    "memory_mb": 128,
    "processes": 32,
    "output_bytes": 65536,
}
_LANGS = [("python", False), ("c", True), ("java", True), ("javascript", False)]


class _Attempt:
    """Builds the records of one attempt with seq, chunk indexes and times."""

    def __init__(self, eid: str, attempt: int, start: datetime) -> None:
        self.eid, self.attempt, self.t = eid, attempt, start
        self.seq = 0
        self.chunks = 0
        self.records: list[tuple[str, dict[str, Any]]] = []

    def add(self, name: str, /, **fields: Any) -> None:
        self.seq += 1
        self.t += timedelta(microseconds=random.randint(50, 5000))  # noqa: S311 - test data
        if name == "LogChunk":
            fields["chunk_index"] = self.chunks
            fields.setdefault("truncated", False)
            self.chunks += 1
        self.records.append(
            (
                name,
                {
                    "event_id": str(uuid.uuid4()),
                    "execution_id": self.eid,
                    "attempt": self.attempt,
                    "seq": self.seq,
                    "occurred_at": self.t,
                    "event_type": name,
                    **fields,
                },
            )
        )

    def step(self, name: str, status: str = "SUCCEEDED", logs: int = 0, **extra: Any) -> None:
        self.add("StepStarted", step=name)
        for i in range(logs):
            stream = "STDERR" if i % 4 == 3 else "STDOUT"
            self.add("LogChunk", step=name, stream=stream, content=f"line {i} of {name}\n" * 3)
        for event in extra.pop("before_end", []):
            self.add(event[0], **event[1])
        self.add(
            "StepCompleted",
            step=name,
            status=status,
            duration_us=random.randint(100, 90000),  # noqa: S311
            exit_code=0 if status == "SUCCEEDED" else 1,
            signal=None,
            message=None if status == "SUCCEEDED" else "exit code 1",
        )


def generate_execution(
    rng: random.Random, start: datetime
) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic role, record name, record) of one execution: 'submissions' or 'events'."""
    eid = str(uuid.uuid4())
    language, compiled = rng.choice(_LANGS)
    tests = [
        {"name": f"t{i}", "input": f"{i}\n", "expected_output": f"{i * 2}\n"}
        for i in range(rng.choice([0, 1, 2, 3, 5]))
    ]
    out: list[tuple[str, str, dict[str, Any]]] = [
        (
            "submissions",
            "ExecutionSubmitted",
            {
                "event_id": str(uuid.uuid4()),
                "execution_id": eid,
                "attempt": 0,
                "seq": 0,
                "occurred_at": start,
                "event_type": "ExecutionSubmitted",
                "language": language,
                "source": "x = int(input())\nprint(x * 2)\n" * rng.randint(1, 20),
                "tests": tests,
                "limits": {"memory_mb": 128},
                "client": "bench",
            },
        )
    ]
    kind = rng.random()
    attempts = 2 if kind > 0.95 else 1  # a few retried after a crashed worker
    for attempt in range(1, attempts + 1):
        a = _Attempt(eid, attempt, start + timedelta(milliseconds=attempt * 50))
        a.step("validate")
        if kind < 0.05:
            a.add("ExecutionRejected", field="limits.memory_mb", reason="above the maximum")
            out += [("events", n, r) for n, r in a.records]
            return out
        a.add("StepStarted", step="prepare")
        a.add(
            "ExecutionAccepted",
            language=language,
            language_version="1.0",
            image=f"coderunner/runtime-{language}:latest",
            image_digest="sha256:" + "ab" * 32,
            limits=_LIMITS,
            compile_limits=_LIMITS,
            worker="bench-worker",
        )
        a.add("StepCompleted", step="prepare", status="SUCCEEDED", duration_us=40000)
        if attempt < attempts:  # the worker died here
            out += [("events", n, r) for n, r in a.records]
            continue
        if compiled:
            a.step("compile", logs=rng.randint(0, 2))
        passed = 0
        for i, test in enumerate(tests):
            ok = rng.random() > 0.2
            passed += ok
            result = {
                "test_index": i,
                "name": test["name"],
                "verdict": "ACCEPTED" if ok else "WRONG_ANSWER",
                "input": test["input"],
                "expected_output": test["expected_output"],
                "actual_output": test["expected_output"] if ok else "0\n",
                "output_truncated": False,
                "exit_code": 0,
                "signal": None,
                "time_ms": rng.randint(5, 900),
                "peak_memory_kb": rng.randint(2000, 90000),
            }
            a.step(f"test-{i + 1}", logs=rng.randint(1, 3), before_end=[("TestCompleted", result)])
        if not tests:
            a.step("run", logs=rng.randint(1, 6))
        if kind < 0.08:
            a.add("ExecutionCancelled", reason="cancelled by the client")
        else:
            a.add(
                "ExecutionCompleted",
                verdict="ACCEPTED" if passed == len(tests) else "WRONG_ANSWER",
                message=None,
                exit_code=0,
                signal=None,
                tests_passed=passed,
                tests_total=len(tests),
                duration_us=rng.randint(100000, 2000000),
                compile_time_us=rng.randint(100000, 900000) if compiled else None,
                run_time_us=rng.randint(1000, 900000),
                peak_memory_kb=rng.randint(2000, 90000),
                image=f"coderunner/runtime-{language}:latest",
                image_digest="sha256:" + "ab" * 32,
            )
        out += [("events", n, r) for n, r in a.records]
    return out


def generate_messages(settings: Settings, min_events: int, seed: int = 7) -> Iterator[Message]:
    """Encoded messages, keyed by execution id, until at least `min_events` were made."""
    rng = random.Random(seed)  # noqa: S311 - test data
    registry = default_registry()
    topics = {
        "submissions": settings.kafka_topic_submissions,
        "events": settings.kafka_topic_events,
    }
    start = datetime(2026, 7, 1, tzinfo=UTC)
    made = 0
    while made < min_events:
        start += timedelta(milliseconds=rng.randint(1, 500))
        for role, name, rec in generate_execution(rng, start):
            made += 1
            key = rec["execution_id"].encode()
            yield topics[role], key, registry.encode_record(name, rec)


async def publish(settings: Settings, messages: Iterator[Message]) -> int:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        **aiokafka_kwargs(settings), linger_ms=20, max_batch_size=1024 * 1024, acks=1
    )
    await producer.start()
    n = 0
    try:
        pending = []
        for topic, key, value in messages:
            pending.append(await producer.send(topic, value, key=key))
            n += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


# --- the bare baseline ------------------------------------------------------------------------

_BASELINE_TABLE = (
    "CREATE TABLE bare_events (execution_id text, attempt int, seq int, event_type text,"
    " occurred_at timestamptz, body text)"
)


async def baseline(settings: Settings, dsn: str, total: int) -> float:
    """aiokafka -> fastavro -> asyncpg COPY, no framework: events/s."""
    registry = default_registry()
    schemas = {v.fingerprint: v.schema for v in registry}
    conn = await asyncpg.connect(dsn)
    await conn.execute(_BASELINE_TABLE)
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    started = time.perf_counter()
    try:
        tps = list(_end_offsets_tps(await end_offsets(settings)))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done = 0
        while done < total:
            data = await consumer.getmany(timeout_ms=1000, max_records=5000)
            rows = []
            for records in data.values():
                for r in records:
                    rec = schemaless_reader(
                        io.BytesIO(r.value[HEADER_SIZE:]), schemas[r.value[2:10]]
                    )
                    rows.append(
                        (
                            rec["execution_id"],
                            rec["attempt"],
                            rec["seq"],
                            rec["event_type"],
                            rec["occurred_at"],
                            rec.get("content") or rec.get("source") or "",
                        )
                    )
            async with conn.transaction():
                await conn.copy_records_to_table("bare_events", records=rows)
            done += len(rows)
        return total / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await conn.close()


def _end_offsets_tps(ends: dict[tuple[str, int], int]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t, p in ends]


# --- the service ------------------------------------------------------------------------------


class ProjectorProcess(WorkerProcess):
    """`coderunner projector` as a subprocess (ready when its log says so)."""

    def start(self, ready_timeout: float = 90.0) -> ProjectorProcess:
        self._log = self.log_path.open("ab")
        offset = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coderunner.cli", "projector"],
            env=self.env() | {"LOG_LEVEL": "INFO"},
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if "projector ready" in self.log_path.read_bytes()[offset:].decode(errors="replace"):
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"projector did not become ready; its log:\n{self.tail()}")


async def service(
    settings: Settings, dsn: str, total: int, log: Path, reader: str
) -> tuple[float, float]:
    """The projector process replaying everything: events/s from its start (process start-up
    included), and from its first commit (steady state)."""
    env = {"POSTGRES_DSN": dsn, "PROJECTION_READER": reader}
    proc = ProjectorProcess(settings, log, extra_env=env)
    conn = await asyncpg.connect(dsn)
    sql = "SELECT coalesce(sum(next_offset), 0) FROM projection_positions"
    started = time.perf_counter()
    proc.start()
    first: tuple[float, int] | None = None
    try:
        while True:
            await asyncio.sleep(0.05)
            done = int(await conn.fetchval(sql))
            now = time.perf_counter()
            if first is None and done > 0:
                first = (now, done)
            if done >= total:
                assert first is not None
                steady = (total - first[1]) / (now - first[0]) if now > first[0] else 0.0
                return total / (now - started), steady
            if proc.process is not None and proc.process.poll() is not None:
                raise AssertionError(f"projector died:\n{proc.tail()}")
    finally:
        proc.stop()
        await conn.close()


async def fresh_database(admin_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


async def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drop the database `dsn` names (made by `fresh_database`)."""
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def main(events: int) -> None:
    settings = isolated_settings()
    admin_dsn = settings.postgres_dsn.get_secret_value()
    t0 = time.perf_counter()
    total = await publish(settings, generate_messages(settings, events))
    print(f"published {total} events in {time.perf_counter() - t0:.1f} s")
    tag = settings.kafka_consumer_group.replace("-", "_")
    base_dsn = await fresh_database(admin_dsn, f"{tag}_bare")
    logs = Path(tempfile.mkdtemp())
    base = await baseline(settings, base_dsn, total)
    figures = {}
    for reader in ("consumer", "agent"):
        dsn = await fresh_database(admin_dsn, f"{tag}_{reader}")
        figures[reader] = await service(settings, dsn, total, logs / f"{reader}.log", reader)
        await drop_database(admin_dsn, dsn)
    await drop_database(admin_dsn, base_dsn)
    print(f"\nprojection replay of {total} events from offset 0 (same run; logs in {logs})")
    print(f"{'':40}{'events/s':>10}{'ratio':>8}   (steady state, ratio)")
    print(f"{'bare aiokafka+fastavro+COPY (1 table)':40}{base:10.0f}{1:8.2f}")
    for reader, (rate, steady) in figures.items():
        label = f"coderunner projector, {reader} reader"
        print(f"{label:40}{rate:10.0f}{rate / base:8.2f}   ({steady:.0f}, {steady / base:.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().events))
