"""Fixtures for the real local stack. A missing service FAILS the test with how to start it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coderunner.errors import ServiceUnavailable
from coderunner.projections.database import ping_postgres
from coderunner.sandbox.docker_engine import ping_docker
from coderunner.settings import LOCAL_STACK_DIR, SecurityProtocol, Settings
from coderunner.streams.probe import ping_kafka

SASL_ENV = LOCAL_STACK_DIR / "kafka" / "sasl.env"
KAFKA_CA = LOCAL_STACK_DIR / "kafka" / "tls" / "ca.pem"


def local_settings(**overrides: object) -> Settings:
    """The local stack's settings, ignoring any .env or environment of the developer."""
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def read_sasl_env(path: Path = SASL_ENV) -> dict[str, str]:
    """The credentials `scripts/stack/kafka.sh` generated for the SASL_SSL listener."""
    if not path.exists():
        pytest.fail(f"{path} is missing: the SASL_SSL listener is not set up. Run `make stack-up`.")
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def sasl_settings(connection_string: str | None = None) -> Settings:
    """Settings for the local Event Hubs look-alike: SASL_SSL/PLAIN on 127.0.0.1:9093."""
    secret = connection_string or read_sasl_env()["KAFKA_CONNECTION_STRING"]
    return local_settings(
        kafka_bootstrap_servers="127.0.0.1:9093",
        kafka_security_protocol=SecurityProtocol.SASL_SSL,
        kafka_connection_string=secret,
        kafka_ssl_cafile=KAFKA_CA,
    )


def _require(check: object) -> None:
    try:
        if asyncio.iscoroutine(check):
            asyncio.run(check)
    except ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return local_settings()


@pytest.fixture(scope="session")
def kafka(settings: Settings) -> Settings:
    """The broker answers on the PLAINTEXT listener, or the test fails saying how to start it."""
    _require(ping_kafka(settings))
    return settings


@pytest.fixture(scope="session")
def postgres(settings: Settings) -> Settings:
    _require(ping_postgres(settings))
    return settings


@pytest.fixture(scope="session")
def docker_engine(settings: Settings) -> Settings:
    try:
        ping_docker(settings)
    except ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    return settings
