"""The Makefile's operator targets on the local stack, run as an operator types them.

`make up` starts the service in the background on topics, ports and a state directory of the
test's own; `health`, `status`, `logs` and `restart` act on that process, and a program submitted
to it runs. `db-backup` / `db-restore` / `db-shell` / `db-migrate` / `replay` act on a fresh
database of the test's own. `make down` (which stops the local stack) is run last and the stack
is brought back with `make stack-up`.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.projection import drop_database, fresh_database
from coderunner.settings import Settings
from tests.integration.workers import (
    REPO,
    base_env,
    free_port,
    isolated_settings,
    settings_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

OPERATOR_TARGETS = [
    *("env", "validate", "build", "up", "down", "restart", "logs", "status", "health"),
    *("db-shell", "db-backup", "db-restore", "db-migrate", "replay", "test", "bench", "clean"),
]


def make(
    target: str, env: dict[str, str], *args: str, timeout: float = 180, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target, *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_explains_every_operator_target() -> None:
    done = make("help", base_env())
    assert done.returncode == 0, done.stderr
    described = {
        m.group(1): m.group(2)
        for m in re.finditer(
            r"^\s+(?:\x1b\[1m)?([a-z-]+)\s*(?:\x1b\[0m)?\s+(\S.*)$", done.stdout, re.M
        )
    }
    missing = [t for t in OPERATOR_TARGETS if not described.get(t)]
    assert not missing, f"`make help` does not explain {missing}:\n{done.stdout}"
    assert "DEPLOY=local|compose" in done.stdout


def test_env_writes_the_example_once_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "deploy.env"
    first = make("env", base_env(), f"ENV_FILE={target}")
    assert first.returncode == 0, first.stderr
    assert target.read_text() == (REPO / ".env.example").read_text()
    target.write_text("POSTGRES_PASSWORD=chosen-by-the-operator\n")
    again = make("env", base_env(), f"ENV_FILE={target}")
    assert again.returncode == 0 and "not overwritten" in again.stdout
    assert target.read_text() == "POSTGRES_PASSWORD=chosen-by-the-operator\n"


def test_validate_passes_on_the_local_stack_and_names_a_bad_setting(
    kafka: Settings, postgres: Settings, docker_engine: Settings
) -> None:
    good = make("validate", base_env())
    assert good.returncode == 0, good.stdout + good.stderr
    bad = make("validate", base_env(KAFKA_BOOTSTRAP_SERVERS="kafka-without-a-port"))
    assert bad.returncode != 0
    assert "KAFKA_BOOTSTRAP_SERVERS" in bad.stdout + bad.stderr


# --- the background service ---------------------------------------------------------------


@pytest.fixture(scope="module")
def service_env(
    kafka: Settings,
    postgres: Settings,
    docker_engine: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    env = base_env(
        **settings_env(isolated_settings()),
        GRPC_PORT=str(free_port()),
        HTTP_PORT=str(free_port()),
        SERVICE_DIR=str(tmp_path_factory.mktemp("service")),
        SERVICE_STOP_TIMEOUT="30",
    )
    yield env
    subprocess.run(["bash", "scripts/service.sh", "stop"], cwd=REPO, env=env, timeout=60)


def service_pid(env: dict[str, str]) -> int:
    return int((Path(env["SERVICE_DIR"]) / "coderunner.pid").read_text())


def test_up_starts_the_service_in_the_background_and_it_runs_programs(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    up = make("up", service_env, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "service: ready" in up.stdout
    pid = service_pid(service_env)
    os.kill(pid, 0)  # the process is alive after `make` returned

    health = make("health", service_env)
    assert health.returncode == 0, health.stdout
    assert "/ready: 200" in health.stdout and '"docker": "ok"' in health.stdout

    status = make("status", service_env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"running (pid {pid})" in status.stdout and "kafka:" in status.stdout

    program = tmp_path / "hello.py"
    program.write_text("print(input()[::-1])\n")
    submit_args = ("-l", "python", "--test", "abc", "cba", "--wait")
    done = subprocess.run(
        [sys.executable, "-m", "coderunner.cli", "submit", str(program), *submit_args],
        cwd=REPO,
        env=service_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: ACCEPTED" in done.stdout

    again = make("up", service_env, timeout=120)  # idempotent: the same process keeps running
    assert again.returncode == 0 and f"already running (pid {pid})" in again.stdout


def test_logs_restart_and_health_of_a_stopped_service(service_env: dict[str, str]) -> None:
    before = service_pid(service_env)
    logs = make("logs", service_env | {"FOLLOW": "0", "LINES": "400"})
    assert logs.returncode == 0
    assert "coderunner: starting" in logs.stdout and "Kafka bootstrap" in logs.stdout

    restart = make("restart", service_env, timeout=300)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert "stopped" in restart.stdout and "service: ready" in restart.stdout
    after = service_pid(service_env)
    assert after != before
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)

    subprocess.run(["bash", "scripts/service.sh", "stop"], cwd=REPO, env=service_env, timeout=60)
    down = make("health", service_env)
    assert down.returncode != 0
    assert "is the service running?" in down.stdout
    status = make("status", service_env)
    assert "service: not running" in status.stdout


# --- the database ---------------------------------------------------------------------------


@pytest.fixture
def database(postgres: Settings) -> Iterator[dict[str, str]]:
    """A fresh, migrated database of the test's own, as POSTGRES_DSN in the environment."""
    admin = postgres.postgres_dsn.get_secret_value()
    dsn = asyncio.run(fresh_database(admin, f"ops_{os.getpid()}"))
    yield base_env(POSTGRES_DSN=dsn)
    asyncio.run(drop_database(admin, dsn))


def sql(env: dict[str, str], query: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(env["POSTGRES_DSN"])
        try:
            return await conn.fetch(query)
        finally:
            await conn.close()

    return asyncio.run(run())


def add_execution(env: dict[str, str], execution_id: str, status: str) -> None:
    sql(
        env,
        "INSERT INTO executions (execution_id, status, attempt, last_seq)"
        f" VALUES ('{execution_id}', '{status}', 0, 0)",
    )


def test_backup_and_restore_bring_back_the_database(
    database: dict[str, str], tmp_path: Path
) -> None:
    add_execution(database, "kept-by-the-backup", "completed")
    dump = tmp_path / "nightly.dump"
    backup = make("db-backup", database, f"BACKUP={dump}")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert f"backup written to {dump}" in backup.stdout and dump.stat().st_size > 0

    sql(database, "DELETE FROM executions")
    add_execution(database, "written-after-the-backup", "queued")

    refused = make("db-restore", database, f"BACKUP={dump}")  # no terminal, no YES=1
    assert refused.returncode != 0 and "--yes" in refused.stderr
    assert [r["execution_id"] for r in sql(database, "SELECT execution_id FROM executions")] == [
        "written-after-the-backup"
    ]

    restored = make("db-restore", database, f"BACKUP={dump}", "YES=1")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    rows = sql(database, "SELECT execution_id, status FROM executions")
    assert [(r["execution_id"], r["status"]) for r in rows] == [("kept-by-the-backup", "completed")]


def test_restore_names_what_is_missing(database: dict[str, str], tmp_path: Path) -> None:
    no_file = make("db-restore", database)
    assert no_file.returncode != 0 and "make db-restore BACKUP=" in no_file.stdout
    absent = make("db-restore", database, f"BACKUP={tmp_path / 'absent.dump'}", "YES=1")
    assert absent.returncode != 0 and "no backup file at" in absent.stderr


def test_a_failed_backup_says_why_and_never_prints_the_password(
    database: dict[str, str], tmp_path: Path
) -> None:
    env = database | {
        "POSTGRES_DSN": "postgresql://coderunner:not-the-password-s3cret@127.0.0.1:5432/coderunner"
    }
    dump = tmp_path / "never.dump"
    failed = make("db-backup", env, f"BACKUP={dump}")
    assert failed.returncode != 0
    assert "the backup of 127.0.0.1:5432/coderunner failed" in failed.stderr
    assert "password authentication failed" in failed.stderr
    assert "not-the-password-s3cret" not in failed.stdout + failed.stderr
    assert not dump.exists() and not list(tmp_path.glob("*.partial"))


def test_db_shell_db_migrate_and_replay(database: dict[str, str]) -> None:
    shell = make(
        "db-shell", database, stdin="SELECT count(*) AS migrations FROM schema_migrations;\n"
    )
    assert shell.returncode == 0, shell.stderr
    applied = int(shell.stdout.split("\n")[2].strip())
    assert applied >= 3

    migrate = make("db-migrate", database)
    assert migrate.returncode == 0 and "schema is up to date" in migrate.stdout

    add_execution(database, "only-in-the-table", "completed")
    replay = make("replay", database, "FROM=archive")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    # the archive holds no event for that row: a rebuild from it leaves the table empty
    assert sql(database, "SELECT execution_id FROM executions") == []


# --- down, last: it stops the local stack ---------------------------------------------------


def test_down_stops_the_service_and_the_stack_and_up_brings_them_back(
    service_env: dict[str, str],
) -> None:
    up = make("up", service_env, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    pid = service_pid(service_env)
    try:
        down = make("down", service_env, timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        for port in (9092, 5432):
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    finally:
        back = make("stack-up", base_env(), timeout=600)
        assert back.returncode == 0, back.stdout + back.stderr
