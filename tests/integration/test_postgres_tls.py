"""PostgreSQL over TLS, as against Azure Database for PostgreSQL, on the local server.

`scripts/stack/postgres.sh` gives the local server a certificate for localhost and 127.0.0.1
signed by a CA of the stack's own (.stack/postgres/tls/ca.pem), and keeps plain connections
working. These tests connect the way the service does (the settings' DSN, through
`coderunner.projections.database` or a pool) and check on the server's side whether the session
is encrypted.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from coderunner.errors import ServiceUnavailable
from coderunner.projections.database import connection
from coderunner.settings import LOCAL_STACK_DIR, Settings
from tests.conftest import local_settings

pytestmark = pytest.mark.integration

STACK_CA = LOCAL_STACK_DIR / "postgres" / "tls" / "ca.pem"
ENCRYPTED = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
CLI = Path(sys.executable).parent / "coderunner"
# The handshake fails before the server checks a password, so any password shows a leak.
UNUSED_PASSWORD = "tls-test-s3cret-pw"


@pytest.fixture(scope="module")
def stack_ca(postgres: Settings) -> Path:
    if not STACK_CA.is_file():
        pytest.fail(
            f"{STACK_CA} is missing: the local PostgreSQL has no TLS certificate of the stack's."
            " Run `make stack-up`.",
            pytrace=False,
        )
    return STACK_CA


async def encrypted(settings: Settings) -> bool:
    """Whether the server sees this connection's session as TLS."""
    async with connection(settings) as conn:
        return bool(await conn.fetchval(ENCRYPTED))


async def encrypted_over_tls(settings: Settings) -> bool:
    """`encrypted`, failing with how to fix the stack when the server does not do TLS as set up."""
    try:
        return await encrypted(settings)
    except ServiceUnavailable as exc:
        pytest.fail(
            f"{exc}\nThe local PostgreSQL does not take TLS with the stack's certificate"
            f" ({STACK_CA}): run `make stack-up`.",
            pytrace=False,
        )


def other_ca(directory: Path) -> Path:
    """A self-signed CA that signed nothing the server has."""
    ca, key = directory / "other-ca.pem", directory / "other-ca.key"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=not the local stack's CA", "-keyout", str(key), "-out", str(ca)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return ca


# --- the service's own connections ----------------------------------------------------------


async def test_sslmode_require_gives_an_encrypted_session(stack_ca: Path) -> None:
    settings = local_settings(postgres_sslmode="require")
    assert await encrypted_over_tls(settings) is True


@pytest.mark.parametrize("form", ["parts", "dsn"])
async def test_verify_full_with_the_stack_ca_to_localhost_works(stack_ca: Path, form: str) -> None:
    if form == "parts":
        settings = local_settings(
            postgres_host="localhost", postgres_sslmode="verify-full", postgres_sslrootcert=stack_ca
        )
    else:  # a DSN without sslrootcert gets POSTGRES_SSLROOTCERT's
        settings = local_settings(
            postgres_dsn="postgresql://coderunner:coderunner@localhost:5432/coderunner"
            "?sslmode=verify-full",
            postgres_sslrootcert=stack_ca,
        )
    assert await encrypted_over_tls(settings) is True


async def test_a_pool_honours_sslmode_and_sslrootcert_too(stack_ca: Path) -> None:
    settings = local_settings(
        postgres_host="localhost", postgres_sslmode="verify-full", postgres_sslrootcert=stack_ca
    )
    # as the worker, projector and API build theirs: from the settings' DSN
    pool = await asyncpg.create_pool(settings.postgres_dsn.get_secret_value(), min_size=1)
    try:
        assert await pool.fetchval(ENCRYPTED) is True
    finally:
        await pool.close()


async def test_verify_full_with_another_ca_fails_naming_the_certificate_problem(
    stack_ca: Path, tmp_path: Path
) -> None:
    settings = local_settings(
        postgres_host="localhost",
        postgres_password=UNUSED_PASSWORD,
        postgres_sslmode="verify-full",
        postgres_sslrootcert=other_ca(tmp_path),
    )
    with pytest.raises(ServiceUnavailable) as caught:
        await encrypted(settings)
    message = str(caught.value)
    assert "certificate verify failed" in message, message
    assert "POSTGRES_SSLROOTCERT" in message, message
    assert UNUSED_PASSWORD not in message


async def test_sslmode_disable_still_gives_a_plain_session(postgres: Settings) -> None:
    assert await encrypted(local_settings(postgres_sslmode="disable")) is False


# --- the CLI, end to end --------------------------------------------------------------------


@pytest.fixture
def empty_database(postgres: Settings) -> Iterator[str]:
    """A database of the test's own, dropped afterwards: `db migrate` fills it from nothing."""
    name = f"tls_{uuid.uuid4().hex[:8]}"
    admin = postgres.postgres_dsn.get_secret_value()
    run_sql(admin, f'CREATE DATABASE "{name}"')
    yield name
    run_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_sql(dsn: str, sql: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def postgres_env(**parts: str) -> dict[str, str]:
    """The environment without a developer's POSTGRES_* or libpq PG* variables, plus `parts`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "PG"))}
    return env | {f"POSTGRES_{name.upper()}": value for name, value in parts.items()}


@pytest.mark.parametrize(
    ("sslmode", "host", "rootcert"),
    [("require", "127.0.0.1", None), ("verify-full", "localhost", STACK_CA)],
)
def test_the_cli_migrates_and_validates_over_tls(
    kafka: Settings,
    docker_engine: Settings,
    stack_ca: Path,
    empty_database: str,
    tmp_path: Path,
    sslmode: str,
    host: str,
    rootcert: Path | None,
) -> None:
    env = postgres_env(host=host, db=empty_database, sslmode=sslmode)
    if rootcert is not None:
        env["POSTGRES_SSLROOTCERT"] = str(rootcert)
    # in tmp_path, so no .env of the developer's joins in

    migrated = cli(env, tmp_path, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("db: applied"), migrated.stdout
    dsn = local_settings(postgres_db=empty_database).postgres_dsn.get_secret_value()
    assert run_sql(dsn, "SELECT count(*) FROM schema_migrations") > 0  # type: ignore[operator]

    validated = cli(env, tmp_path, "config", "validate", "--check-connectivity")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "config: OK" in validated.stdout


def test_the_cli_reports_a_certificate_it_cannot_verify(
    stack_ca: Path, tmp_path: Path, kafka: Settings, docker_engine: Settings
) -> None:
    env = postgres_env(
        host="localhost",
        password=UNUSED_PASSWORD,
        sslmode="verify-full",
        sslrootcert=str(other_ca(tmp_path)),
    )
    validated = cli(env, tmp_path, "config", "validate", "--check-connectivity")
    output = validated.stdout + validated.stderr
    assert validated.returncode != 0, output
    assert "POSTGRES_DSN" in output and "certificate verify failed" in output, output
    assert UNUSED_PASSWORD not in output
