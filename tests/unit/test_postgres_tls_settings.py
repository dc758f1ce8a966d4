"""PostgreSQL TLS settings: the root certificate joins the DSN, and `config validate` checks it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coderunner.config_check import settings_problems
from coderunner.settings import Settings

PASSWORD = "pg-s3cret-pw"


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def problems_of(settings: Settings) -> list[str]:
    return [str(p) for p in settings_problems(settings)]


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "root ca.pem"  # a space, to see it escaped in the DSN
    path.write_text("pem")
    return path


# --- the DSN in use -------------------------------------------------------------------------


def test_the_root_certificate_joins_the_dsn_assembled_from_parts(ca: Path) -> None:
    s = make(postgres_sslmode="verify-full", postgres_sslrootcert=ca)
    dsn = s.postgres_dsn.get_secret_value()
    assert dsn.endswith(f"?sslmode=verify-full&sslrootcert={str(ca).replace(' ', '%20')}")
    assert s.postgres_dsn_param("sslmode") == "verify-full"
    assert s.postgres_dsn_param("sslrootcert") == str(ca)
    assert problems_of(s) == []


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://u:pw@db.example/d?sslmode=verify-ca", "postgresql://u:pw@db.example/d"],
)
def test_the_root_certificate_is_added_to_a_dsn_without_one(dsn: str, ca: Path) -> None:
    s = make(postgres_dsn=dsn, postgres_sslrootcert=ca)
    assert s.postgres_dsn.get_secret_value().startswith(dsn)
    assert s.postgres_dsn_param("sslrootcert") == str(ca)


def test_a_dsn_with_its_own_root_certificate_keeps_it_and_the_variable_is_reported(
    ca: Path,
) -> None:
    dsn = f"postgresql://u:{PASSWORD}@h/d?sslmode=verify-full&sslrootcert={ca}"
    s = make(postgres_dsn=dsn, postgres_sslrootcert="/elsewhere/ca.pem")
    assert s.postgres_dsn.get_secret_value() == dsn
    [problem] = problems_of(s)
    assert problem.startswith("POSTGRES_SSLROOTCERT: is ignored") and PASSWORD not in problem


def test_without_a_root_certificate_the_dsn_is_unchanged() -> None:
    s = make(postgres_sslmode="require")
    assert s.postgres_dsn_param("sslrootcert") is None
    assert s.postgres_dsn.get_secret_value().endswith("?sslmode=require")


def test_the_root_certificate_path_is_in_no_repr_beside_a_secret(ca: Path) -> None:
    s = make(postgres_password=PASSWORD, postgres_sslrootcert=ca)
    assert PASSWORD not in repr(s) + str(s)


# --- config validate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"postgres_sslmode": "verify-full"},
        {"postgres_sslmode": "verify-ca"},
        {"postgres_dsn": f"postgresql://u:{PASSWORD}@h/d?sslmode=verify-full"},
    ],
)
def test_verifying_without_a_root_certificate_is_one_problem_with_the_fix(
    values: dict[str, Any],
) -> None:
    [problem] = problems_of(make(**values))
    assert problem.startswith("POSTGRES_SSLROOTCERT: sslmode=verify-")
    assert "Fix: set POSTGRES_SSLROOTCERT to the PEM file of the CA" in problem
    assert PASSWORD not in problem


def test_a_root_certificate_that_does_not_exist_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    [problem] = problems_of(make(postgres_sslmode="verify-full", postgres_sslrootcert=missing))
    assert problem.startswith(f"POSTGRES_SSLROOTCERT: root certificate {missing} does not exist")
    assert "Fix: point it at" in problem


def test_a_missing_root_certificate_inside_the_dsn_is_reported_under_the_dsn(
    tmp_path: Path,
) -> None:
    dsn = f"postgresql://u:{PASSWORD}@h/d?sslmode=verify-ca&sslrootcert={tmp_path}/nope.pem"
    [problem] = problems_of(make(postgres_dsn=dsn))
    assert problem.startswith("POSTGRES_DSN: root certificate") and PASSWORD not in problem


@pytest.mark.parametrize("sslmode", ["require", "verify-ca", "verify-full"])
def test_a_readable_root_certificate_is_fine_with_modes_that_use_it(sslmode: str, ca: Path) -> None:
    assert problems_of(make(postgres_sslmode=sslmode, postgres_sslrootcert=ca)) == []


def test_a_root_certificate_with_a_mode_that_ignores_it_is_a_problem(ca: Path) -> None:
    [problem] = problems_of(make(postgres_sslrootcert=ca))  # sslmode defaults to disable
    assert problem.startswith("POSTGRES_SSLROOTCERT: is not used with sslmode=disable")
    assert "POSTGRES_SSLMODE=verify-full" in problem


def test_an_unknown_sslmode_in_the_dsn_is_a_problem() -> None:
    [problem] = problems_of(make(postgres_dsn=f"postgresql://u:{PASSWORD}@h/d?sslmode=requir"))
    assert problem.startswith("POSTGRES_DSN: sslmode=requir is unknown") and PASSWORD not in problem
