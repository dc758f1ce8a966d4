"""The one settings object: read once from the environment at start-up and passed down."""

from __future__ import annotations

import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_STACK_DIR = REPO_ROOT / ".stack"

Port = Annotated[int, Field(ge=1, le=65535)]


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class ImageSet(StrEnum):
    """Which runtime images the sandbox uses: locally built ones, or the official ones."""

    LOCAL = "local"
    OFFICIAL = "official"


class Settings(BaseSettings):
    """Every knob of the service. Environment variable = field name in upper case."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # --- Kafka / Azure Event Hubs -------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: str = "PLAIN"
    # Event Hubs wants the literal user name `$ConnectionString` and the whole string as password.
    kafka_sasl_username: str = "$ConnectionString"
    kafka_connection_string: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_topic_submissions: str = "coderunner.submissions"
    kafka_topic_events: str = "coderunner.events"
    kafka_topic_deadletter: str = "coderunner.deadletter"
    kafka_topic_partitions: int = Field(default=4, ge=1)
    kafka_consumer_group: str = "coderunner"

    # --- PostgreSQL ---------------------------------------------------------------------------
    postgres_dsn: SecretStr = SecretStr(
        "postgresql://coderunner:coderunner@127.0.0.1:5432/coderunner"
    )

    # --- Docker sandbox -----------------------------------------------------------------------
    # The engine is whatever DOCKER_HOST points at (the docker SDK reads it): a DinD daemon in
    # production, the local daemon here.
    docker_host: str | None = None
    sandbox_image_set: ImageSet = ImageSet.LOCAL
    sandbox_max_in_flight: int = Field(default=4, ge=1, le=64)
    sandbox_max_source_bytes: int = Field(default=64 * 1024, ge=1)
    sandbox_max_stdin_bytes: int = Field(default=1024 * 1024, ge=0)
    sandbox_max_tests: int = Field(default=64, ge=0)
    # Server maxima: a submission may ask for less, never for more.
    sandbox_max_wall_time_ms: int = Field(default=30_000, ge=100)
    sandbox_max_cpu_time_ms: int = Field(default=30_000, ge=100)
    sandbox_max_memory_mb: int = Field(default=1024, ge=16)
    sandbox_max_processes: int = Field(default=256, ge=1)
    sandbox_max_output_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Live output is published in log-chunk events of at most this size (Event Hubs: 1 MB max).
    sandbox_log_chunk_bytes: int = Field(default=16 * 1024, ge=256, le=64 * 1024)
    # A sandbox failure that is not the engine being down (e.g. an image missing) is retried as
    # a new attempt this many times before the execution ends with INTERNAL_ERROR.
    sandbox_max_attempts: int = Field(default=3, ge=1)
    worker_name: str = Field(default_factory=socket.gethostname)

    # --- Servers ------------------------------------------------------------------------------
    grpc_port: Port = 9084
    http_port: Port = 8084
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _sasl_needs_a_password(self) -> Settings:
        if (
            self.kafka_security_protocol is SecurityProtocol.SASL_SSL
            and not self.kafka_connection_string
        ):
            raise ValueError(
                "KAFKA_CONNECTION_STRING is required when KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )
        return self


def load_settings() -> Settings:
    """Read the settings from the environment (and a `.env` file in the working directory)."""
    return Settings(_env_file=".env")  # type: ignore[call-arg]
