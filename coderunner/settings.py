"""The one settings object: read once from the environment at start-up and passed down."""

from __future__ import annotations

import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_STACK_DIR = REPO_ROOT / ".stack"

Port = Annotated[int, Field(ge=1, le=65535)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
PostgresSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

# Event Hubs wants the literal user name `$ConnectionString` and the whole string as password.
EVENT_HUBS_USERNAME = "$ConnectionString"
DEFAULT_POSTGRES_DSN = (
    "postgresql://coderunner:coderunner@127.0.0.1:5432/coderunner?sslmode=disable"
)


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class ImageSet(StrEnum):
    """Which runtime images the sandbox uses: locally built ones, or the official ones."""

    LOCAL = "local"
    OFFICIAL = "official"


class Settings(BaseSettings):
    """Every knob of the service. Environment variable = field name in upper case.

    Each field's `description` is the documentation: `coderunner config docs` renders it into
    docs/configuration.md and .env.example.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # --- Kafka / Azure Event Hubs -------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Comma-separated host:port list of Kafka brokers. Event Hubs:"
        " `NAMESPACE.servicebus.windows.net:9093`.",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default=SecurityProtocol.PLAINTEXT,
        description="PLAINTEXT or SASL_SSL. Defaults to SASL_SSL when KAFKA_CONNECTION_STRING is"
        " set (the Event Hubs profile), else PLAINTEXT.",
    )
    kafka_sasl_mechanism: str = Field(
        default="PLAIN", description="SASL mechanism; Event Hubs requires PLAIN."
    )
    kafka_sasl_username: str = Field(
        default=EVENT_HUBS_USERNAME,
        description="SASL user name. Event Hubs wants the literal `$ConnectionString`.",
    )
    kafka_connection_string: SecretStr | None = Field(
        default=None,
        description="Event Hubs connection string (Endpoint=sb://NAMESPACE.servicebus.windows.net/;"
        "SharedAccessKeyName=...;SharedAccessKey=...), sent as the SASL password. Setting it"
        " switches on the Event Hubs profile: SASL_SSL/PLAIN, TLS 1.2+, Event Hubs client"
        " timeouts and no topic auto-creation. Secret.",
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CA that signs the broker's certificate; unset = the system"
        " CAs (right for Event Hubs).",
    )
    kafka_topic_submissions: str = Field(
        default="coderunner.submissions", description="Topic the submissions arrive on."
    )
    kafka_topic_events: str = Field(
        default="coderunner.events", description="Topic the execution events are published to."
    )
    kafka_topic_deadletter: str = Field(
        default="coderunner.deadletter",
        description="Topic for messages that could not be processed, with the reason.",
    )
    kafka_topic_partitions: int = Field(
        default=4,
        ge=1,
        description="Partitions of each topic when the service creates it (never changed later).",
    )
    kafka_consumer_group: str = Field(
        default="coderunner",
        description="Consumer group of the workers (the projector uses it + `-projector`).",
    )

    # --- PostgreSQL ---------------------------------------------------------------------------
    # Either a whole DSN, or the parts it is assembled from (Azure portals hand out the parts).
    # The local stack's server takes plain and TLS connections; the default is plain (loopback),
    # production sets sslmode=require or stricter.
    postgres_dsn: SecretStr = Field(
        default=SecretStr(DEFAULT_POSTGRES_DSN),
        description="PostgreSQL connection URL (postgresql://user:password@host:port/db?"
        "sslmode=...). When unset it is assembled from the POSTGRES_HOST/PORT/DB/USER/PASSWORD/"
        "SSLMODE parts. Secret.",
    )
    postgres_host: str = Field(default="127.0.0.1", description="PostgreSQL host (no DSN).")
    postgres_port: Port = Field(default=5432, description="PostgreSQL port (no DSN).")
    postgres_db: str = Field(default="coderunner", description="PostgreSQL database (no DSN).")
    postgres_user: str = Field(default="coderunner", description="PostgreSQL user (no DSN).")
    postgres_password: SecretStr = Field(
        default=SecretStr("coderunner"), description="PostgreSQL password (no DSN). Secret."
    )
    postgres_sslmode: PostgresSslMode = Field(
        default="disable",
        description="libpq sslmode (no DSN): disable, allow, prefer, require, verify-ca or"
        " verify-full. Azure Database for PostgreSQL needs require or stricter.",
    )
    postgres_sslrootcert: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) the server's certificate must chain to: needed by"
        " sslmode verify-ca and verify-full (Azure: its published root CA bundle; the local"
        " stack: .stack/postgres/tls/ca.pem). Used with the parts, and added to a POSTGRES_DSN"
        " that has no sslrootcert of its own.",
    )
    postgres_pool_size: int = Field(
        default=10, ge=1, le=1000, description="Largest PostgreSQL connection pool per process."
    )

    # --- Docker sandbox -----------------------------------------------------------------------
    docker_host: str | None = Field(
        default=None,
        description="Docker engine URL (unix://..., tcp://host:2376). Production: the DinD"
        " daemon; unset = the local engine (the docker SDK's defaults).",
    )
    docker_tls_verify: bool = Field(
        default=False,
        description="Verify the engine's TLS certificate against DOCKER_CERT_PATH/ca.pem and"
        " present the client certificate (tcp:// DOCKER_HOST only).",
    )
    docker_cert_path: Path | None = Field(
        default=None,
        description="Directory with ca.pem, cert.pem and key.pem for a TLS DOCKER_HOST.",
    )
    sandbox_image_set: ImageSet = Field(
        default=ImageSet.LOCAL,
        description="Runtime images: `local` (built by scripts/images) or `official`.",
    )
    sandbox_max_in_flight: int = Field(
        default=4, ge=1, le=64, description="Executions one worker runs at once."
    )
    sandbox_max_source_bytes: int = Field(
        default=64 * 1024, ge=1, description="Largest accepted source file."
    )
    sandbox_max_stdin_bytes: int = Field(
        default=1024 * 1024, ge=0, description="Largest accepted standard input."
    )
    sandbox_max_tests: int = Field(default=64, ge=0, description="Most test cases per submission.")
    # Server maxima: a submission may ask for less, never for more.
    sandbox_max_wall_time_ms: int = Field(
        default=30_000, ge=100, description="Wall-clock limit maximum per run (ms)."
    )
    sandbox_max_cpu_time_ms: int = Field(
        default=30_000, ge=100, description="CPU time limit maximum per run (ms)."
    )
    sandbox_max_memory_mb: int = Field(
        default=1024, ge=16, description="Memory limit maximum per container (MiB)."
    )
    sandbox_max_processes: int = Field(
        default=256, ge=1, description="Process (pids) limit maximum per container."
    )
    sandbox_max_output_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Output limit maximum per run (bytes)."
    )
    sandbox_log_chunk_bytes: int = Field(
        default=16 * 1024,
        ge=256,
        le=64 * 1024,
        description="Largest live-output chunk per event (Event Hubs caps messages at 1 MB).",
    )
    sandbox_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Attempts at an execution whose sandbox failed (not the engine being down)"
        " before it ends with INTERNAL_ERROR.",
    )
    worker_name: str = Field(
        default_factory=socket.gethostname,
        description="Name of this worker in events and logs (default: the host name).",
    )

    # --- Projections (events -> PostgreSQL read models) ----------------------------------------
    projection_enabled: bool = Field(
        default=True,
        description="The worker also runs the projection (events -> tables); `coderunner"
        " projector` runs it alone, in consumer group KAFKA_CONSUMER_GROUP + `-projector`.",
    )
    projection_reader: Literal["agent", "consumer"] = Field(
        default="consumer",
        description="How the projection reads Kafka: a plain aiokafka `consumer` (default), or"
        " a Faust `agent` (several times slower: see coderunner/streams/projector.py).",
    )
    projection_batch_size: int = Field(
        default=10_000,
        ge=1,
        le=100_000,
        description="Most events fetched at once; the consumer reader splits them into its"
        " lanes, one PostgreSQL transaction each (the agent: one transaction).",
    )
    projection_batch_seconds: float = Field(
        default=0.1, gt=0, le=10, description="Longest wait to fill a projection batch (s)."
    )
    projection_lanes: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Consumer reader: batches of different partitions (partition number modulo"
        " this) applied concurrently, each in its own transaction and connection.",
    )

    # --- Servers ------------------------------------------------------------------------------
    api_host: str = Field(
        default="0.0.0.0",  # noqa: S104 -- a server: it listens on every interface by default
        description="Interface the gRPC and HTTP servers listen on.",
    )
    grpc_port: Port = Field(default=9084, description="gRPC API port.")
    http_port: Port = Field(default=8084, description="HTTP port (/health /ready /metrics).")
    api_tokens: SecretStr | None = Field(
        default=None,
        description="Bearer tokens the gRPC API accepts, comma-separated; unset = no"
        " authentication (the health service stays open either way). Secret.",
    )
    grpc_tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate for gRPC TLS (with GRPC_TLS_KEY_FILE)."
    )
    grpc_tls_key_file: Path | None = Field(
        default=None, description="PEM private key for gRPC TLS (with GRPC_TLS_CERT_FILE)."
    )
    api_shutdown_grace_seconds: float = Field(
        default=5.0, ge=0, description="On SIGTERM, how long running calls get to finish (s)."
    )

    # --- Logging ------------------------------------------------------------------------------
    log_level: LogLevel = Field(
        default="INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text` for people, `json` (one object per line) for log collectors.",
    )
    heartbeat_file: Path | None = Field(
        default=None,
        description="A file the worker and projector touch every 5 s while they run, for"
        " `coderunner health --heartbeat FILE` (their container healthcheck; they have no"
        " HTTP port). Unset: no heartbeat.",
    )

    @model_validator(mode="before")
    @classmethod
    def _connection_string_means_event_hubs(cls, data: Any) -> Any:
        """KAFKA_CONNECTION_STRING alone selects SASL_SSL (an explicit protocol still wins)."""
        if isinstance(data, dict) and data.get("kafka_connection_string"):
            data.setdefault("kafka_security_protocol", SecurityProtocol.SASL_SSL)
        return data

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _sasl_needs_a_password(self) -> Settings:
        if (
            self.kafka_security_protocol is SecurityProtocol.SASL_SSL
            and not self.kafka_connection_string
        ):
            raise ValueError(
                "KAFKA_CONNECTION_STRING is required when KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )
        if self.kafka_connection_string and (
            self.kafka_security_protocol is not SecurityProtocol.SASL_SSL
        ):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL must be SASL_SSL when KAFKA_CONNECTION_STRING is set"
                " (unset KAFKA_SECURITY_PROTOCOL, or set it to SASL_SSL)"
            )
        return self

    @model_validator(mode="after")
    def _tls_needs_both_files(self) -> Settings:
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            raise ValueError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together: set both")
        return self

    @model_validator(mode="after")
    def _assemble_postgres_dsn(self) -> Settings:
        if "postgres_dsn" not in self.model_fields_set:
            dsn = postgres_dsn_from_parts(self)
        else:
            dsn = self.postgres_dsn.get_secret_value()
        if self.postgres_sslrootcert is not None and "sslrootcert" not in _dsn_query(dsn):
            dsn = _with_query_param(dsn, "sslrootcert", str(self.postgres_sslrootcert))
        # frozen model: this runs once, while the object is being built
        object.__setattr__(self, "postgres_dsn", SecretStr(dsn))
        return self

    @property
    def event_hubs(self) -> bool:
        """The Event Hubs profile: a connection string is set."""
        return self.kafka_connection_string is not None

    def postgres_dsn_param(self, name: str) -> str | None:
        """A query parameter of the DSN in use (sslmode, sslrootcert ...), None when absent."""
        return _dsn_query(self.postgres_dsn.get_secret_value()).get(name)

    def postgres_parts_set(self) -> list[str]:
        """The POSTGRES_* part variables given explicitly (ignored when POSTGRES_DSN is set)."""
        return sorted(name.upper() for name in self.model_fields_set & set(_POSTGRES_PARTS))

    def api_token_set(self) -> frozenset[str]:
        """The accepted bearer tokens (empty: authentication is off)."""
        if self.api_tokens is None:
            return frozenset()
        tokens = self.api_tokens.get_secret_value().split(",")
        return frozenset(t.strip() for t in tokens if t.strip())


_POSTGRES_PARTS = (
    "postgres_host",
    "postgres_port",
    "postgres_db",
    "postgres_user",
    "postgres_password",
    "postgres_sslmode",
)


def postgres_dsn_from_parts(settings: Settings) -> str:
    """postgresql://user:password@host:port/db?sslmode=... from the POSTGRES_* parts."""
    user = quote(settings.postgres_user, safe="")
    password = quote(settings.postgres_password.get_secret_value(), safe="")
    host = (
        f"[{settings.postgres_host}]" if ":" in settings.postgres_host else settings.postgres_host
    )
    return (
        f"postgresql://{user}:{password}@{host}:{settings.postgres_port}"
        f"/{quote(settings.postgres_db, safe='')}?sslmode={settings.postgres_sslmode}"
    )


def _dsn_query(dsn: str) -> dict[str, str]:
    # the last value wins, as in asyncpg and libpq
    return dict(parse_qsl(urlsplit(dsn).query, keep_blank_values=True))


def _with_query_param(dsn: str, name: str, value: str) -> str:
    parts = urlsplit(dsn)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=f"{query}{name}={quote(value, safe='/')}"))


def load_settings() -> Settings:
    """Read the settings from the environment (and a `.env` file in the working directory)."""
    return Settings(_env_file=".env")  # type: ignore[call-arg]
