"""Projection throughput: the projector's two readers against a bare aiokafka+fastavro+COPY loop.

All of them replay the same topic pair of realistic generated events (many executions with
steps, logs, test results, some rejected, cancelled or retried) from offset 0 into their own
fresh, migrated PostgreSQL database, in the same run. The service figure is the real projector
process (`coderunner projector`) from its start to the moment its positions reach the end
offsets (and, in brackets, from its first commit: the steady state).

The bare baseline is what a competent engineer writes for a one-off import, with no framework:
an aiokafka consumer assigned to every partition of both topics, `getmany` batches of up to
5,000 records, each value decoded with fastavro's `schemaless_reader` (writer schema picked by
the header's fingerprint), the rows built in plain dicts and tuples, and ONE transaction per
batch COPYing them with asyncpg into the projector's own tables (same database schema, same
columns, primary keys and indexes, made by the same migrations):
- `events`: the archive row of every event, raw message bytes included;
- `execution_steps`, `execution_logs`, `test_results`: one row per step (a StepStarted is held
  in memory until its StepCompleted, so each row is COPYed once, complete), log chunk, test;
- `executions`: one row per execution, held in memory until both its submission and its
  terminal event were seen (or the replay ends), then COPYed once.
That is the same information the projector stores, so the ratio measures what the framework's
guarantees cost, not a difference in the work asked. What the baseline leaves out is exactly
those guarantees: no positions stored per topic-partition, no skipping of redelivered
messages, no loading of the current rows, no idempotent upserts (ON CONFLICT), no supersession
of an aborted attempt's rows (it keeps them), no dead-letter parking, no NUL scrubbing, no
advisory locks, no retries. It would be wrong after a crash or a redelivery; it is the fastest
honest way to get these tables from these topics.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastavro import schemaless_reader

from coderunner.projections.fold import (
    COMPLETED_COLUMNS,
    EXECUTION_COLUMNS,
    LOG_COLUMNS,
    STEP_COLUMNS,
    TEST_COLUMNS,
)
from coderunner.projections.migrations import migrate
from coderunner.projections.store import ARCHIVE_COLUMNS
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
# What a competent engineer writes for a one-off import of these topics, with no framework:
# aiokafka getmany -> fastavro schemaless_reader -> rows in plain dicts -> asyncpg COPY, one
# transaction per fetched batch. It stores what the projector stores (the module docstring says
# why that is the fair comparison) but with none of the projector's extras.

_TERMINAL = {
    "ExecutionCompleted": "completed",
    "ExecutionRejected": "rejected",
    "ExecutionCancelled": "cancelled",
}
_COMPLETED_COLUMNS = (*COMPLETED_COLUMNS, "image_digest")


class _BareRows:
    """Rows of one batch, plus the executions and steps still open (kept in memory)."""

    def __init__(self) -> None:
        self.executions: dict[str, dict[str, Any]] = {}
        self.open_steps: dict[tuple[str, int, str], list[Any]] = {}
        self.done: dict[str, dict[str, Any]] = {}
        self.clear()

    def clear(self) -> None:
        self.archive: list[tuple[Any, ...]] = []
        self.finished: list[tuple[Any, ...]] = []
        self.steps: list[tuple[Any, ...]] = []
        self.logs: list[tuple[Any, ...]] = []
        self.tests: list[tuple[Any, ...]] = []

    def add(self, r: Any, e: dict[str, Any]) -> None:
        eid, attempt, seq, name, at = (
            e["execution_id"],
            e["attempt"],
            e["seq"],
            e["event_type"],
            e["occurred_at"],
        )
        self.archive.append(
            (e["event_id"], eid, attempt, seq, name, at, r.topic, r.partition, r.offset, r.value)
        )
        row = self.executions.setdefault(eid, {"execution_id": eid, "status": "queued"})
        if name == "ExecutionSubmitted":
            row.update(
                attempt=row.get("attempt", 0),
                last_seq=row.get("last_seq", 0),
                language=e["language"],
                submission_event_id=e["event_id"],
                client=e["client"],
                source=e["source"],
                stdin=e["stdin"],
                extra_files=json.dumps(e["extra_files"]),
                compiler_options=json.dumps(e["compiler_options"]),
                args=json.dumps(e["args"]),
                test_cases=json.dumps(e["tests"]),
                requested_limits=json.dumps(e["limits"]),
                comparison=e["comparison"],
                submitted_at=at,
            )
            row.setdefault("tests_total", len(e["tests"]))
        else:
            row["attempt"], row["last_seq"] = attempt, seq
        if name == "ExecutionAccepted":
            row.update(
                status="running",
                started_at=at,
                language_version=e["language_version"],
                image=e["image"],
                image_digest=e["image_digest"],
                limits=json.dumps(e["limits"]),
                compile_limits=json.dumps(e["compile_limits"]),
                worker=e["worker"],
            )
        elif name == "StepStarted":
            self.open_steps[(eid, attempt, e["step"])] = [eid, attempt, e["step"], seq, at]
        elif name == "StepCompleted":
            s = self.open_steps.pop((eid, attempt, e["step"]))
            status = e["status"].lower()
            self.steps.append(
                (
                    *s[:4],
                    status,
                    s[4],
                    at,
                    e["duration_us"],
                    e["exit_code"],
                    e["signal"],
                    e["message"],
                )
            )
        elif name == "LogChunk":
            self.logs.append(
                (
                    eid,
                    attempt,
                    e["chunk_index"],
                    seq,
                    e["step"],
                    e["stream"].lower(),
                    e["content"],
                    e["truncated"],
                    at,
                )
            )
        elif name == "TestCompleted":
            self.tests.append(
                (
                    eid,
                    attempt,
                    e["test_index"],
                    seq,
                    e["name"],
                    e["verdict"],
                    e["input"],
                    e["expected_output"],
                    e["actual_output"],
                    e["output_truncated"],
                    e["exit_code"],
                    e["signal"],
                    e["time_ms"],
                    e["peak_memory_kb"],
                    at,
                )
            )
        elif name in _TERMINAL:
            row["status"], row["completed_at"] = _TERMINAL[name], at
            if name == "ExecutionCompleted":
                row.update((c, e[c]) for c in _COMPLETED_COLUMNS)
            elif name == "ExecutionRejected":
                row["reject_field"], row["message"] = e["field"], e["reason"]
            else:
                row["message"] = e["reason"]
        if row["status"] in _TERMINAL.values() and "submission_event_id" in row:
            self.finished.append(tuple(map(row.get, EXECUTION_COLUMNS)))
            del self.executions[eid]

    def flush_open(self) -> None:
        """At the end: the executions still open (no terminal event yet) are written as they are."""
        self.finished += [
            tuple(map(row.get, EXECUTION_COLUMNS)) for row in self.executions.values()
        ]
        self.executions.clear()

    async def copy(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            for table, columns, rows in (
                ("events", ARCHIVE_COLUMNS, self.archive),
                ("executions", EXECUTION_COLUMNS, self.finished),
                ("execution_steps", STEP_COLUMNS, self.steps),
                ("execution_logs", LOG_COLUMNS, self.logs),
                ("test_results", TEST_COLUMNS, self.tests),
            ):
                if rows:
                    await conn.copy_records_to_table(table, records=rows, columns=columns)
        self.clear()


async def baseline(settings: Settings, dsn: str, total: int) -> float:
    """aiokafka -> fastavro -> asyncpg COPY into the projector's tables, no framework: events/s."""
    schemas = {v.fingerprint: v.schema for v in default_registry()}
    conn = await asyncpg.connect(dsn)
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
        rows = _BareRows()
        done = 0
        while done < total:
            data = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in data.values():
                for r in records:
                    body = io.BytesIO(r.value)
                    body.seek(HEADER_SIZE)
                    record = schemaless_reader(body, schemas[r.value[2:HEADER_SIZE]])
                    rows.add(r, cast(dict[str, Any], record))
                done += len(records)
            if done >= total:
                rows.flush_open()
            await rows.copy(conn)
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


_COUNTED = ("events", "executions", "execution_steps", "execution_logs", "test_results")


async def row_counts(dsn: str) -> list[int]:
    """Rows of the archive and the four read models (the baseline supersedes nothing: it keeps
    the steps of attempts that a retry replaced)."""
    conn = await asyncpg.connect(dsn)
    try:
        return [int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in _COUNTED]  # noqa: S608
    finally:
        await conn.close()


async def main(events: int, readers: list[str]) -> None:
    settings = isolated_settings()
    admin_dsn = settings.postgres_dsn.get_secret_value()
    t0 = time.perf_counter()
    total = await publish(settings, generate_messages(settings, events))
    print(f"published {total} events in {time.perf_counter() - t0:.1f} s")
    tag = settings.kafka_consumer_group.replace("-", "_")
    base_dsn = await fresh_database(admin_dsn, f"{tag}_bare")
    logs = Path(tempfile.mkdtemp())
    base = await baseline(settings, base_dsn, total)
    rows = {"bare": await row_counts(base_dsn)}
    figures = {}
    for reader in readers:
        dsn = await fresh_database(admin_dsn, f"{tag}_{reader}")
        figures[reader] = await service(settings, dsn, total, logs / f"{reader}.log", reader)
        rows[reader] = await row_counts(dsn)
        await drop_database(admin_dsn, dsn)
    await drop_database(admin_dsn, base_dsn)
    print(f"\nprojection replay of {total} events from offset 0 (same run; logs in {logs})")
    print(f"{'':40}{'events/s':>10}{'ratio':>8}   (steady state, ratio)")
    print(f"{'bare aiokafka+fastavro+COPY (5 tables)':40}{base:10.0f}{1:8.2f}")
    for reader, (rate, steady) in figures.items():
        label = f"coderunner projector, {reader} reader"
        print(f"{label:40}{rate:10.0f}{rate / base:8.2f}   ({steady:.0f}, {steady / base:.2f})")
    print(f"\nrows stored ({', '.join(_COUNTED)}):")
    for who, counts in rows.items():
        print(f"  {who:10}{' '.join(f'{n:>9}' for n in counts)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--readers", nargs="*", choices=("consumer", "agent"), default=["consumer", "agent"]
    )
    args = parser.parse_args()
    asyncio.run(main(args.events, args.readers))
