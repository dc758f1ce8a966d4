"""Projections through the real stack: Kafka -> projector -> PostgreSQL, replayed and rebuilt.

Every test of this module shares topics of its own and a PostgreSQL database of its own (so a
rebuild, which swaps whole tables, never touches what other tests project).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr

from bench.projection import (
    ProjectorProcess,
    drop_database,
    fresh_database,
    generate_messages,
    publish,
)
from coderunner.projections.replay import checksum, positions, projection_lag, rebuild
from coderunner.settings import Settings
from coderunner.streams.client import ExecutionClient, new_submission
from coderunner.streams.kafka_config import aiokafka_kwargs
from coderunner.streams.projector import end_offsets, replay_from_kafka
from coderunner.streams.topics import ensure_topics
from tests.integration.programs import FACTORIAL
from tests.integration.workers import WorkerProcess, isolated_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(
    kafka: Settings, postgres: Settings, docker_engine: Settings
) -> AsyncIterator[Settings]:
    base = isolated_settings(sandbox_max_in_flight=4)
    dsn = await fresh_database(
        postgres.postgres_dsn.get_secret_value(), base.kafka_consumer_group.replace("-", "_")
    )
    settings = base.model_copy(update={"postgres_dsn": SecretStr(dsn)})
    await ensure_topics(settings)
    yield settings
    await drop_database(postgres.postgres_dsn.get_secret_value(), dsn)


@pytest.fixture
async def db(stack: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.postgres_dsn.get_secret_value())
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("projections")


@pytest.fixture(scope="module")
def projector(stack: Settings, logs: Path) -> Iterator[ProjectorProcess]:
    """`coderunner projector` alone: no execution worker reads the submissions."""
    process = ProjectorProcess(stack, logs / "projector.log", _env(stack)).start()
    yield process
    process.stop()


def _env(settings: Settings) -> dict[str, str]:
    return {"POSTGRES_DSN": settings.postgres_dsn.get_secret_value()}


async def caught_up(settings: Settings, conn: asyncpg.Connection, within: float = 120) -> None:
    """Wait until the projection's positions reach the topics' end offsets."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        lag = projection_lag(await positions(conn), await end_offsets(settings))
        if not any(lag.values()):
            return
        assert loop.time() < deadline, f"projection still behind after {within} s: {lag}"
        await asyncio.sleep(0.3)


async def row(conn: asyncpg.Connection, execution_id: str) -> Any:
    return await conn.fetchrow("SELECT * FROM executions WHERE execution_id = $1", execution_id)


async def until_status(
    conn: asyncpg.Connection, execution_id: str, status: str, within: float = 120
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        current = await row(conn, execution_id)
        if current is not None and current["status"] == status:
            return current
        assert loop.time() < deadline, f"{execution_id} is {current and current['status']}"
        await asyncio.sleep(0.2)


# --- real executions --------------------------------------------------------------------------


async def test_queued_first_then_real_executions_fill_every_table(
    stack: Settings, projector: ProjectorProcess, db: asyncpg.Connection, logs: Path
) -> None:
    async with ExecutionClient(stack) as client:
        compiled = new_submission(
            "c",
            FACTORIAL["c"],
            tests=[
                {"name": "3!", "input": "3", "expected_output": "6"},
                {"name": "4!", "input": "4", "expected_output": "25"},
            ],
        )
        hello = new_submission("python", "import sys\nprint('hi')\nprint('oops', file=sys.stderr)")
        rejected = new_submission("cobol", "DISPLAY 'HI'.")
        for s in (compiled, hello, rejected):
            await client.submit(s)
        # No execution worker runs yet: the projector alone shows them as queued.
        for s in (compiled, hello, rejected):
            queued = await until_status(db, s.execution_id, "queued")
            assert queued["attempt"] == 0 and queued["source"] == s.source
        worker = WorkerProcess(stack, logs / "worker.log", _env(stack)).start()
        try:
            for s in (compiled, hello, rejected):
                await asyncio.wait_for(client.wait(s.execution_id), 240)
        finally:
            worker.stop()
    await caught_up(stack, db)

    done = await until_status(db, compiled.execution_id, "completed")
    assert (done["verdict"], done["tests_passed"], done["tests_total"]) == ("WRONG_ANSWER", 1, 2)
    assert done["image"].startswith("coderunner/runtime-gcc") and done["started_at"]
    steps = await db.fetch(
        "SELECT step, status FROM execution_steps WHERE execution_id = $1 ORDER BY seq",
        compiled.execution_id,
    )
    assert [r["step"] for r in steps] == ["validate", "prepare", "compile", "test-1", "test-2"]
    assert steps[0]["status"] == "succeeded"
    tests = await db.fetch(
        "SELECT test_index, name, verdict, actual_output FROM test_results"
        " WHERE execution_id = $1 ORDER BY test_index",
        compiled.execution_id,
    )
    assert [(r["name"], r["verdict"], r["actual_output"]) for r in tests] == [
        ("3!", "ACCEPTED", "6\n"),
        ("4!", "WRONG_ANSWER", "24\n"),
    ]
    ran = await until_status(db, hello.execution_id, "completed")
    assert ran["verdict"] == "ACCEPTED"
    output = await db.fetch(
        "SELECT stream, content FROM execution_logs WHERE execution_id = $1 ORDER BY chunk_index",
        hello.execution_id,
    )
    by_stream = {
        s: "".join(r["content"] for r in output if r["stream"] == s) for s in ("stdout", "stderr")
    }
    assert by_stream == {"stdout": "hi\n", "stderr": "oops\n"}
    refused = await until_status(db, rejected.execution_id, "rejected")
    assert refused["reject_field"] == "language" and refused["completed_at"]
    archived = await db.fetchval(
        "SELECT count(*) FROM events WHERE execution_id = $1", compiled.execution_id
    )
    assert archived >= 15


# --- duplicates and poison --------------------------------------------------------------------


async def _all_messages(settings: Settings) -> list[tuple[str, bytes | None, bytes | None]]:
    return [(m.topic, m.key, m.value) async for batch in replay_from_kafka(settings) for m in batch]


async def test_duplicate_delivery_changes_nothing(
    stack: Settings, projector: ProjectorProcess, db: asyncpg.Connection
) -> None:
    await publish(stack, generate_messages(stack, 500, seed=11))
    await caught_up(stack, db)
    before = await checksum(db)
    archived = await db.fetchval("SELECT count(*) FROM events")
    # Publish every message again: the same events at new offsets (a producer's retries).
    messages = await _all_messages(stack)
    producer = AIOKafkaProducer(**aiokafka_kwargs(stack))
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    await caught_up(stack, db)
    assert await checksum(db) == before
    assert await db.fetchval("SELECT count(*) FROM events") == archived
    assert await db.fetchval("SELECT count(*) FROM projection_deadletters") == 0


async def test_poison_events_are_parked_and_the_projection_goes_on(
    stack: Settings, projector: ProjectorProcess, db: asyncpg.Connection
) -> None:
    producer = AIOKafkaProducer(**aiokafka_kwargs(stack))
    await producer.start()
    try:
        await producer.send_and_wait(stack.kafka_topic_events, b"\x00" + b"garbage" * 4, key=b"x")
        [(_topic, key, value)] = [
            m for m in await _all_messages(stack) if m[0] == stack.kafka_topic_submissions
        ][:1]
        await producer.send_and_wait(stack.kafka_topic_events, value, key=key)  # wrong topic
    finally:
        await producer.stop()
    await caught_up(stack, db)
    reasons = [r["reason"] for r in await db.fetch("SELECT reason FROM projection_deadletters")]
    assert any(r.startswith("undecodable: wrong magic bytes") for r in reasons), reasons
    assert any("does not belong on the events topic" in r for r in reasons), reasons


# --- kill -9, and rebuilds give the same tables -----------------------------------------------


async def test_kill9_mid_stream_then_rebuilds_give_the_same_checksum(
    stack: Settings, projector: ProjectorProcess, db: asyncpg.Connection, logs: Path
) -> None:
    projector.stop()  # the module's projector steps aside: this test runs its own
    total = await publish(stack, generate_messages(stack, 20_000, seed=5))  # ~1000 executions
    victim = ProjectorProcess(stack, logs / "victim.log", _env(stack)).start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    start = sum((await positions(db)).values())
    while sum((await positions(db)).values()) < start + total // 4:
        assert loop.time() < deadline, victim.tail()
        await asyncio.sleep(0.05)
    victim.kill9()  # mid-stream: a batch may be half written, never committed
    assert projection_lag(await positions(db), await end_offsets(stack)), "killed too late"
    restarted = ProjectorProcess(stack, logs / "restarted.log", _env(stack)).start()
    try:
        await caught_up(stack, db)
    finally:
        restarted.stop()
    live = await checksum(db)

    conn = await asyncpg.connect(stack.postgres_dsn.get_secret_value())
    try:
        await rebuild(conn, replay_from_kafka(stack), stack.kafka_topic_submissions)
        assert await checksum(conn) == live
        await rebuild(conn, None, stack.kafka_topic_submissions)
        assert await checksum(conn) == live
    finally:
        await conn.close()
    counts = live[1]
    assert counts["executions"] > 1000 and counts["test_results"] > 500, counts
    statuses = {r["status"] for r in await db.fetch("SELECT DISTINCT status FROM executions")}
    assert statuses >= {"completed", "rejected", "cancelled"}


async def test_a_rebuild_while_the_live_projection_runs_loses_nothing(
    stack: Settings, db: asyncpg.Connection, logs: Path
) -> None:
    # The Faust agent this time (still selectable): a group of its own that starts from the
    # beginning, so everything below PostgreSQL's positions must be skipped as redelivered.
    env = _env(stack) | {"PROJECTION_READER": "agent"}
    live = ProjectorProcess(stack, logs / "live.log", env).start()
    conn = await asyncpg.connect(stack.postgres_dsn.get_secret_value())
    try:
        publishing = asyncio.create_task(publish(stack, generate_messages(stack, 10_000, seed=9)))
        await asyncio.sleep(0.5)  # the rebuild starts while events still arrive
        await rebuild(conn, replay_from_kafka(stack), stack.kafka_topic_submissions)
        await publishing
        await publish(stack, generate_messages(stack, 500, seed=10))  # after the swap
        await caught_up(stack, db)
        after_swap = await checksum(db)
        await rebuild(conn, None, stack.kafka_topic_submissions)
        assert await checksum(conn) == after_swap
    finally:
        live.stop()
        await conn.close()


async def test_a_redelivered_batch_is_skipped_below_the_positions(
    stack: Settings, db: asyncpg.Connection
) -> None:
    from coderunner.projections.projector import Projector, SourceMessage

    before = await checksum(db)
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(stack), group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(stack.kafka_topic_events, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records = (await consumer.getmany(tp, timeout_ms=5000, max_records=500))[tp]
    finally:
        await consumer.stop()
    pool = await asyncpg.create_pool(stack.postgres_dsn.get_secret_value(), min_size=1, max_size=1)
    try:
        result = await Projector(pool.acquire, stack.kafka_topic_submissions).apply(
            [SourceMessage(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
        )
    finally:
        await pool.close()
    assert (result.skipped, result.applied) == (len(records), 0)
    assert await checksum(db) == before
