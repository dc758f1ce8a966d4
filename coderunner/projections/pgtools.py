"""PostgreSQL's own client programs (psql, pg_dump, pg_restore) pointed at the service's database.

The connection goes to them as libpq environment variables built from the effective DSN, so the
password is never on a command line (where `ps` would show it) and never printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from coderunner.errors import ToolFailed
from coderunner.projections.database import describe_dsn
from coderunner.settings import Settings

# DSN query parameters that libpq also reads from the environment.
_QUERY_TO_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
}


def libpq_env(settings: Settings) -> dict[str, str]:
    """PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE… for the effective DSN."""
    parts = urlsplit(settings.postgres_dsn.get_secret_value())
    env = {
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "PGDATABASE": unquote(parts.path.lstrip("/")) or "postgres",
    }
    if parts.username:
        env["PGUSER"] = unquote(parts.username)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    for key, value in parse_qsl(parts.query):
        if key in _QUERY_TO_ENV:
            env[_QUERY_TO_ENV[key]] = value
    return env


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolFailed(
            f"{name} is not installed: install PostgreSQL's client programs"
            " (Debian: apt-get install postgresql-client), or run `make stack-up`"
        )
    return path


def _run(settings: Settings, argv: list[str], what: str) -> None:
    env = os.environ | libpq_env(settings)
    result = subprocess.run(argv, env=env, stderr=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise ToolFailed(
            f"{what} of {describe_dsn(settings)} failed (exit {result.returncode}):"
            f" {result.stderr.strip()}"
        )


def shell(settings: Settings) -> int:
    """An interactive psql session on the service's database."""
    env = os.environ | libpq_env(settings)
    return subprocess.run([_program("psql")], env=env, check=False).returncode


def default_backup_path(directory: Path = Path("backups")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"coderunner-{stamp}.dump"


def backup(settings: Settings, output: Path) -> Path:
    """pg_dump's custom format (compressed, restorable table by table) to `output`.

    Written next to the target first and renamed at the end: a failed dump never leaves a
    half-written file under the final name.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    try:
        _run(
            settings,
            [_program("pg_dump"), "--format=custom", "--no-owner", f"--file={partial}"],
            "the backup",
        )
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def restore(settings: Settings, dump: Path) -> None:
    """Replace the database's objects with those in `dump`, in one transaction (all or nothing).

    The projection positions are in the dump with the tables they describe, so the projector
    resumes from where the backup was taken and re-projects what Kafka still holds after it.
    """
    if not dump.is_file():
        raise ToolFailed(f"no backup file at {dump}")
    _run(
        settings,
        [
            _program("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={libpq_env(settings)['PGDATABASE']}",
            str(dump),
        ],
        "the restore",
    )
