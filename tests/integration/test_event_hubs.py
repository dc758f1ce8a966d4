"""The Event Hubs profile end to end, against the local broker's SASL_SSL listener.

Settings come only from KAFKA_BOOTSTRAP_SERVERS, KAFKA_CONNECTION_STRING and KAFKA_SSL_CAFILE
(as a deployment sets them); the profile does not create topics, so the test creates them
first on the PLAINTEXT listener, as an operator creates event hubs in Azure.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from bench.projection import drop_database, fresh_database
from coderunner.domain import Verdict
from coderunner.errors import MissingTopics
from coderunner.schemas import events as ev
from coderunner.settings import SecurityProtocol, Settings
from coderunner.streams.client import ExecutionClient, new_submission
from coderunner.streams.topics import ensure_topics
from tests.conftest import KAFKA_CA, local_settings, read_sasl_env
from tests.integration.programs import HELLO
from tests.integration.workers import REPO, WorkerProcess, isolated_settings, isolation_of

pytestmark = pytest.mark.integration

SASL_BOOTSTRAP = "127.0.0.1:9093"


def event_hubs_env(connection_string: str, dsn: str) -> dict[str, str]:
    """What a deployment sets for Event Hubs: no protocol, mechanism or user name."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": SASL_BOOTSTRAP,
        "KAFKA_CONNECTION_STRING": connection_string,
        "KAFKA_SSL_CAFILE": str(KAFKA_CA),
        "POSTGRES_DSN": dsn,
    }


@pytest.fixture(scope="module")
async def plain(kafka: Settings, postgres: Settings, docker_engine: Settings) -> AsyncIterator[Any]:
    """Topics of its own, created on the PLAINTEXT listener, and a fresh database."""
    base = isolated_settings()
    admin_dsn = postgres.postgres_dsn.get_secret_value()
    dsn = await fresh_database(admin_dsn, base.kafka_consumer_group.replace("-", "_"))
    await ensure_topics(base)
    yield base, dsn
    await drop_database(admin_dsn, dsn)


@pytest.fixture(scope="module")
def event_hubs(plain: tuple[Settings, str]) -> Settings:
    base, dsn = plain
    env = event_hubs_env(read_sasl_env()["KAFKA_CONNECTION_STRING"], dsn)
    settings = local_settings(**{k.lower(): v for k, v in env.items()}, **isolation_of(base))
    assert settings.kafka_security_protocol is SecurityProtocol.SASL_SSL and settings.event_hubs
    return settings


@pytest.fixture(scope="module")
def worker(
    event_hubs: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    env = event_hubs_env(
        event_hubs.kafka_connection_string.get_secret_value(),  # type: ignore[union-attr]
        event_hubs.postgres_dsn.get_secret_value(),
    )
    process = WorkerProcess(
        event_hubs, tmp_path_factory.mktemp("event-hubs") / "worker.log", extra_env=env
    ).start()
    yield process
    process.stop()


async def until_completed_row(dsn: str, execution_id: str, within: float = 60) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            row = await conn.fetchrow(
                "SELECT * FROM executions WHERE execution_id = $1", execution_id
            )
            if row is not None and row["status"] == "completed":
                return row
            assert loop.time() < deadline, f"{execution_id} not projected: {row}"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def test_a_submission_runs_and_is_projected_over_sasl_ssl(worker: WorkerProcess) -> None:
    settings = worker.settings
    submission = new_submission("python", HELLO["python"])
    async with ExecutionClient(settings) as client:
        await client.submit(submission)
        events = await asyncio.wait_for(_collect(client, submission.execution_id), timeout=120)
    done = events[-1]
    assert isinstance(done, ev.ExecutionCompleted), events
    assert done.verdict is Verdict.ACCEPTED
    row = await until_completed_row(
        settings.postgres_dsn.get_secret_value(), submission.execution_id
    )
    assert row["verdict"] == "ACCEPTED"
    log = worker.log_path.read_text(errors="replace")
    assert "Authenticated as $ConnectionString via PLAIN" in log
    assert read_sasl_env()["KAFKA_CONNECTION_STRING"] not in log


async def _collect(client: ExecutionClient, execution_id: str) -> list[Any]:
    return [e async for e in client.events(execution_id)]


async def test_missing_topics_are_named_not_created(event_hubs: Settings) -> None:
    settings = event_hubs.model_copy(update={"kafka_topic_deadletter": "test-eh-never-created"})
    with pytest.raises(MissingTopics) as caught:
        await ensure_topics(settings)
    assert "test-eh-never-created" in str(caught.value)
    assert "docs/event-hubs.md" in str(caught.value)
    assert event_hubs.kafka_topic_events not in caught.value.topics


def test_a_wrong_key_stops_the_worker_fast_with_a_clear_message(
    plain: tuple[Settings, str],
) -> None:
    base, dsn = plain
    real = read_sasl_env()["KAFKA_CONNECTION_STRING"]
    wrong = real.replace("SharedAccessKey=", "SharedAccessKey=WRONG")
    worker = WorkerProcess(base, REPO / "unused.log", extra_env=event_hubs_env(wrong, dsn))
    done = subprocess.run(
        [sys.executable, "-m", "coderunner.cli", "worker"],
        env=worker.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "authentication failed" in output and "KAFKA_CONNECTION_STRING" in output
    assert "SharedAccessKey=" not in output and "WRONG" not in output
