"""The one settings object: read once from the environment at start-up and passed down."""

from __future__ import annotations

import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

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
    # The local stack's server is on loopback: no TLS there (production sets sslmode=require).
    postgres_dsn: SecretStr = SecretStr(
        "postgresql://coderunner:coderunner@127.0.0.1:5432/coderunner?sslmode=disable"
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

    # --- Projections (events -> PostgreSQL read models) ----------------------------------------
    # The worker also runs the projection agent unless this is false (`coderunner projector`
    # runs it alone, in the consumer group KAFKA_CONSUMER_GROUP + "-projector").
    projection_enabled: bool = True
    # How the projection reads Kafka: a Faust agent, or a plain aiokafka consumer run by the
    # same worker (several times faster: see coderunner/streams/projector.py and the bench).
    projection_reader: Literal["agent", "consumer"] = "agent"
    # Events per PostgreSQL transaction, and how long to wait to fill a batch.
    projection_batch_size: int = Field(default=5000, ge=1, le=100_000)
    projection_batch_seconds: float = Field(default=0.1, gt=0, le=10)

    # --- Servers ------------------------------------------------------------------------------
    api_host: str = "0.0.0.0"  # noqa: S104 -- a server: it listens on every interface by default
    grpc_port: Port = 9084
    http_port: Port = 8084
    # Bearer tokens the gRPC API accepts, comma-separated; unset = no authentication. The
    # health service stays open either way.
    api_tokens: SecretStr | None = None
    # TLS for the gRPC port: both set = TLS only (PEM files); unset = plaintext.
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    # On SIGTERM, running calls (e.g. WatchExecution streams) get this long to finish.
    api_shutdown_grace_seconds: float = Field(default=5.0, ge=0)
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

    @model_validator(mode="after")
    def _tls_needs_both_files(self) -> Settings:
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            raise ValueError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together: set both")
        return self

    def api_token_set(self) -> frozenset[str]:
        """The accepted bearer tokens (empty: authentication is off)."""
        if self.api_tokens is None:
            return frozenset()
        tokens = self.api_tokens.get_secret_value().split(",")
        return frozenset(t.strip() for t in tokens if t.strip())


def load_settings() -> Settings:
    """Read the settings from the environment (and a `.env` file in the working directory)."""
    return Settings(_env_file=".env")  # type: ignore[call-arg]
