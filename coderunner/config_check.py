"""`coderunner config validate`: what a deployment's settings get wrong, one problem per line.

The checks are pure (no network): `settings_problems` looks at a Settings object,
`validation_problems` translates pydantic's errors. Neither ever repeats a value that could be a
secret — problems name the variable and the fix instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import get_args
from urllib.parse import urlsplit

from pydantic import ValidationError

from coderunner.event_hubs import (
    ConnectionStringError,
    bootstrap_mismatches,
    parse_connection_string,
    split_host_port,
    split_servers,
)
from coderunner.settings import (
    EVENT_HUBS_USERNAME,
    PostgresSslMode,
    SecurityProtocol,
    Settings,
)

_VARIABLE = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")
DOCKER_SCHEMES = ("unix", "tcp", "ssh", "npipe", "http", "https")
DOCKER_CERT_FILES = ("ca.pem", "cert.pem", "key.pem")
SSLMODES: tuple[str, ...] = get_args(PostgresSslMode)
VERIFYING_SSLMODES = ("verify-ca", "verify-full")
# never look at a root certificate (asyncpg and libpq alike); require does when one is given
UNVERIFIED_SSLMODES = ("disable", "allow", "prefer")


@dataclass(frozen=True)
class Problem:
    variable: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}. Fix: {self.fix}"


def validation_problems(error: ValidationError) -> list[Problem]:
    """pydantic's errors as problems, without the input values (they may be secrets)."""
    problems = []
    for err in error.errors(include_input=False, include_url=False):
        loc = [str(part) for part in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        if loc:
            problems.append(Problem(loc[0].upper(), msg, f"set {loc[0].upper()} to a valid value"))
        else:  # a rule across several variables (a model validator): its message names them
            named = _VARIABLE.search(msg)
            variable = named.group(0) if named else "settings"
            problems.append(Problem(variable, msg, "change the variables the message names"))
    return problems


def settings_problems(settings: Settings) -> list[Problem]:
    return [
        *_kafka_problems(settings),
        *_event_hubs_problems(settings),
        *_postgres_problems(settings),
        *_postgres_tls_problems(settings),
        *_docker_problems(settings),
        *_server_problems(settings),
        *_file_problems(settings),
    ]


def _kafka_problems(s: Settings) -> list[Problem]:
    problems = []
    servers = split_servers(s.kafka_bootstrap_servers)
    if not servers:
        problems.append(
            Problem("KAFKA_BOOTSTRAP_SERVERS", "is empty", "set it to host:port[,host:port...]")
        )
    for server in servers:
        host, port = split_host_port(server)
        if not host or port is None or not 1 <= port <= 65535:
            problems.append(
                Problem(
                    "KAFKA_BOOTSTRAP_SERVERS",
                    f"'{server}' is not host:port with a port from 1 to 65535",
                    "write each server as host:port, comma-separated",
                )
            )
    topics = [s.kafka_topic_submissions, s.kafka_topic_events, s.kafka_topic_deadletter]
    if len(set(topics)) != len(topics):
        problems.append(
            Problem(
                "KAFKA_TOPIC_SUBMISSIONS/EVENTS/DEADLETTER",
                "two of the topics have the same name",
                "give each topic its own name",
            )
        )
    if not s.kafka_consumer_group.strip():
        problems.append(Problem("KAFKA_CONSUMER_GROUP", "is empty", "set a consumer group name"))
    return problems


def _event_hubs_problems(s: Settings) -> list[Problem]:
    if s.kafka_connection_string is None:
        return []
    var = "KAFKA_CONNECTION_STRING"
    try:
        conn = parse_connection_string(s.kafka_connection_string.get_secret_value())
    except ConnectionStringError as exc:
        return [
            Problem(
                var,
                f"cannot be parsed: {exc}",
                "copy the connection string of a shared access policy of the namespace"
                " (Endpoint=sb://NAMESPACE.servicebus.windows.net/;SharedAccessKeyName=...;"
                "SharedAccessKey=...)",
            )
        ]
    problems = [
        Problem(
            "KAFKA_BOOTSTRAP_SERVERS",
            mismatch,
            f"set KAFKA_BOOTSTRAP_SERVERS={conn.host}:9093 (the namespace of the connection"
            " string)",
        )
        for mismatch in bootstrap_mismatches(conn, s.kafka_bootstrap_servers)
    ]
    if conn.entity_path:
        problems.append(
            Problem(
                var,
                f"is scoped to one event hub (EntityPath={conn.entity_path}) but the service"
                " uses three topics",
                "use a namespace-level shared access policy's connection string (no EntityPath)",
            )
        )
    if s.kafka_security_protocol is not SecurityProtocol.SASL_SSL:
        problems.append(
            Problem(
                "KAFKA_SECURITY_PROTOCOL",
                "must be SASL_SSL with a connection string",
                "unset it or set SASL_SSL",
            )
        )
    if s.kafka_sasl_mechanism != "PLAIN":
        problems.append(
            Problem("KAFKA_SASL_MECHANISM", "Event Hubs takes only PLAIN", "set it to PLAIN")
        )
    if s.kafka_sasl_username != EVENT_HUBS_USERNAME:
        problems.append(
            Problem(
                "KAFKA_SASL_USERNAME",
                f"Event Hubs expects the literal {EVENT_HUBS_USERNAME}",
                "unset it",
            )
        )
    return problems


def _postgres_problems(s: Settings) -> list[Problem]:
    problems = []
    if "postgres_dsn" in s.model_fields_set and (parts := s.postgres_parts_set()):
        problems.append(
            Problem(
                "POSTGRES_DSN",
                f"is set together with {', '.join(parts)}, which it overrides",
                "set either POSTGRES_DSN or the POSTGRES_* parts, not both",
            )
        )
    dsn = urlsplit(s.postgres_dsn.get_secret_value())
    fix = "write it as postgresql://USER:PASSWORD@HOST:5432/DATABASE?sslmode=require"
    if dsn.scheme not in ("postgresql", "postgres"):
        problems.append(Problem("POSTGRES_DSN", "does not start with postgresql://", fix))
    else:
        try:
            port_ok = dsn.port is None or 1 <= dsn.port <= 65535
        except ValueError:
            port_ok = False
        if not dsn.hostname or not dsn.path.strip("/") or not port_ok:
            problems.append(
                Problem("POSTGRES_DSN", "needs a host, a valid port and a database name", fix)
            )
    return problems


def _postgres_tls_problems(s: Settings) -> list[Problem]:
    """sslmode and sslrootcert as the DSN in use carries them (POSTGRES_SSL* are merged into it)."""
    sslmode = s.postgres_dsn_param("sslmode") or "prefer"  # the default of asyncpg and libpq
    if sslmode not in SSLMODES:
        return [
            Problem("POSTGRES_DSN", f"sslmode={sslmode} is unknown", f"use {', '.join(SSLMODES)}")
        ]
    rootcert = s.postgres_dsn_param("sslrootcert")
    if s.postgres_sslrootcert is not None and rootcert != str(s.postgres_sslrootcert):
        return [
            Problem(
                "POSTGRES_SSLROOTCERT",
                "is ignored: POSTGRES_DSN has an sslrootcert of its own",
                "drop sslrootcert from POSTGRES_DSN, or unset POSTGRES_SSLROOTCERT",
            )
        ]
    if rootcert is not None:
        return _root_certificate_problems(s, sslmode, rootcert)
    if sslmode in VERIFYING_SSLMODES:
        return [
            Problem(
                "POSTGRES_SSLROOTCERT",
                f"sslmode={sslmode} checks the server's certificate but no root certificate is set",
                "set POSTGRES_SSLROOTCERT to the PEM file of the CA that signed it (Azure Database"
                " for PostgreSQL: the root CA bundle Azure publishes)",
            )
        ]
    return []


def _root_certificate_problems(s: Settings, sslmode: str, rootcert: str) -> list[Problem]:
    variable = "POSTGRES_SSLROOTCERT" if s.postgres_sslrootcert is not None else "POSTGRES_DSN"
    fix = "point it at the PEM file of the CA that signed the server's certificate"
    if not Path(rootcert).is_file():
        return [Problem(variable, f"root certificate {rootcert} does not exist", fix)]
    if not os.access(rootcert, os.R_OK):
        return [Problem(variable, f"root certificate {rootcert} is not readable", fix)]
    if sslmode in UNVERIFIED_SSLMODES:
        stricter = (
            "sslmode=verify-full in POSTGRES_DSN"
            if "postgres_dsn" in s.model_fields_set
            else "POSTGRES_SSLMODE=verify-full"
        )
        return [
            Problem(
                variable,
                f"is not used with sslmode={sslmode}, which never checks the server's certificate",
                f"set {stricter} (or verify-ca), or unset {variable}",
            )
        ]
    return []


def _docker_problems(s: Settings) -> list[Problem]:
    problems = []
    scheme = urlsplit(s.docker_host).scheme if s.docker_host else None
    if s.docker_host and scheme not in DOCKER_SCHEMES:
        problems.append(
            Problem(
                "DOCKER_HOST",
                f"'{s.docker_host}' has no known scheme ({', '.join(DOCKER_SCHEMES)})",
                "write it as unix:///var/run/docker.sock or tcp://HOST:2376",
            )
        )
    if (s.docker_tls_verify or s.docker_cert_path) and scheme not in ("tcp", "https"):
        problems.append(
            Problem(
                "DOCKER_TLS_VERIFY",
                "TLS settings need a tcp:// DOCKER_HOST",
                "set DOCKER_HOST=tcp://HOST:2376, or unset DOCKER_TLS_VERIFY and DOCKER_CERT_PATH",
            )
        )
    if s.docker_tls_verify and s.docker_cert_path is None:
        problems.append(
            Problem(
                "DOCKER_CERT_PATH",
                "is required when DOCKER_TLS_VERIFY is on",
                "point it at the directory with ca.pem, cert.pem and key.pem",
            )
        )
    return problems


def _server_problems(s: Settings) -> list[Problem]:
    if s.grpc_port == s.http_port:
        return [Problem("HTTP_PORT", f"is the same as GRPC_PORT ({s.grpc_port})", "pick another")]
    return []


def _file_problems(s: Settings) -> list[Problem]:
    files: list[tuple[str, Path | None]] = [
        ("KAFKA_SSL_CAFILE", s.kafka_ssl_cafile),
        ("GRPC_TLS_CERT_FILE", s.grpc_tls_cert_file),
        ("GRPC_TLS_KEY_FILE", s.grpc_tls_key_file),
    ]
    if s.docker_cert_path is not None:
        needed = DOCKER_CERT_FILES if s.docker_tls_verify else DOCKER_CERT_FILES[1:]
        files += [("DOCKER_CERT_PATH", s.docker_cert_path / name) for name in needed]
    return [
        Problem(variable, f"file {path} does not exist", "point it at an existing PEM file")
        for variable, path in files
        if path is not None and not path.is_file()
    ]
