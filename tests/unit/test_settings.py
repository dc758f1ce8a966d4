"""The settings object: profiles, DSN assembly, secrets kept out of sight, validation, docs."""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from coderunner.config_check import settings_problems, validation_problems
from coderunner.log_format import JsonFormatter
from coderunner.settings import SecurityProtocol, Settings
from coderunner.settings_docs import outputs
from coderunner.streams.app import create_app
from coderunner.streams.kafka_config import aiokafka_kwargs, producer_kwargs

KEY = "s3cret-KEY-value="
LOCAL_STRING = (
    f"Endpoint=sb://localhost/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={KEY}"
)


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def event_hubs(**values: Any) -> Settings:
    return make(
        kafka_bootstrap_servers="127.0.0.1:9093", kafka_connection_string=LOCAL_STRING, **values
    )


def problems_of(settings: Settings) -> list[str]:
    return [str(p) for p in settings_problems(settings)]


# --- profiles -------------------------------------------------------------------------------


def test_defaults_are_the_local_stack() -> None:
    s = make()
    assert s.kafka_security_protocol is SecurityProtocol.PLAINTEXT and not s.event_hubs
    assert s.postgres_dsn.get_secret_value() == (
        "postgresql://coderunner:coderunner@127.0.0.1:5432/coderunner?sslmode=disable"
    )
    assert problems_of(s) == []
    assert "metadata_max_age_ms" not in aiokafka_kwargs(s)


def test_a_connection_string_alone_switches_to_sasl_ssl_with_event_hubs_client_settings() -> None:
    s = event_hubs()
    assert s.kafka_security_protocol is SecurityProtocol.SASL_SSL and s.event_hubs
    kwargs = producer_kwargs(s)
    assert kwargs["sasl_mechanism"] == "PLAIN"
    assert kwargs["sasl_plain_username"] == "$ConnectionString"
    assert kwargs["sasl_plain_password"] == LOCAL_STRING
    assert kwargs["metadata_max_age_ms"] == kwargs["connections_max_idle_ms"] == 180_000
    assert kwargs["request_timeout_ms"] >= 60_000
    assert kwargs["max_request_size"] < 1_046_528
    assert "max_request_size" not in aiokafka_kwargs(s)  # consumers do not take it
    assert kwargs["ssl_context"].minimum_version >= ssl.TLSVersion.TLSv1_2


def test_the_faust_app_gets_the_event_hubs_settings_and_declares_no_topics() -> None:
    conf = create_app(event_hubs(), "unit-eh").conf
    assert conf.consumer_metadata_max_age_ms == conf.producer_metadata_max_age_ms == 180_000
    assert conf.consumer_connections_max_idle_ms == 180_000
    assert conf.producer_connections_max_idle_ms == 180_000
    assert conf.producer_max_request_size < 1_046_528
    assert conf.broker_request_timeout >= 60 and conf.producer_request_timeout >= 60
    assert conf.topic_allow_declare is False
    assert create_app(make(), "unit-plain").conf.topic_allow_declare is True


def test_plaintext_with_a_connection_string_is_refused_naming_the_variables() -> None:
    with pytest.raises(ValidationError) as caught:
        event_hubs(kafka_security_protocol="PLAINTEXT")
    [problem] = validation_problems(caught.value)
    assert problem.variable == "KAFKA_SECURITY_PROTOCOL"
    assert KEY not in str(problem)


# --- PostgreSQL -----------------------------------------------------------------------------


def test_the_dsn_is_assembled_from_parts_with_escaping() -> None:
    s = make(postgres_host="db.example", postgres_password="p@ss/w:rd", postgres_sslmode="require")
    assert s.postgres_dsn.get_secret_value() == (
        "postgresql://coderunner:p%40ss%2Fw%3Ard@db.example:5432/coderunner?sslmode=require"
    )


def test_an_explicit_dsn_wins_and_mixing_both_is_a_problem() -> None:
    s = make(postgres_dsn="postgresql://u:pw@h:6543/d", postgres_host="ignored")
    assert s.postgres_dsn.get_secret_value() == "postgresql://u:pw@h:6543/d"
    assert any("POSTGRES_DSN: is set together with POSTGRES_HOST" in p for p in problems_of(s))


def test_a_dsn_without_database_or_with_another_scheme_is_a_problem() -> None:
    assert any("POSTGRES_DSN" in p for p in problems_of(make(postgres_dsn="mysql://h/d")))
    assert any("POSTGRES_DSN" in p for p in problems_of(make(postgres_dsn="postgresql://h")))


# --- secrets --------------------------------------------------------------------------------


def test_secrets_never_appear_in_the_repr() -> None:
    s = event_hubs(postgres_password="pg-secret-pw", api_tokens="tok-secret")
    text = repr(s) + str(s)
    for secret in (KEY, "pg-secret-pw", "tok-secret"):
        assert secret not in text


def test_validation_problems_never_echo_input_values() -> None:
    with pytest.raises(ValidationError) as caught:
        make(api_tokens=["not", KEY], postgres_port="nope")
    text = "\n".join(map(str, validation_problems(caught.value)))
    assert "API_TOKENS" in text and "POSTGRES_PORT" in text
    assert KEY not in text and "nope" not in text


# --- config validate ------------------------------------------------------------------------


def test_the_local_look_alike_validates_clean(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    assert problems_of(event_hubs(kafka_ssl_cafile=ca)) == []


def test_event_hubs_problems_name_the_variable_and_fix_without_the_secret() -> None:
    s = make(
        kafka_bootstrap_servers="other.servicebus.windows.net:9093",
        kafka_connection_string=LOCAL_STRING.replace("localhost", "acme.servicebus.windows.net")
        + ";EntityPath=one",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_ssl_cafile="/nonexistent/ca.pem",
    )
    found = problems_of(s)
    text = "\n".join(found)
    assert "KAFKA_BOOTSTRAP_SERVERS" in text and "acme.servicebus.windows.net:9093" in text
    assert "KAFKA_CONNECTION_STRING: is scoped to one event hub" in text
    assert "KAFKA_SASL_MECHANISM" in text
    assert "KAFKA_SSL_CAFILE: file /nonexistent/ca.pem does not exist" in text
    assert all("Fix: " in line for line in found)
    assert KEY not in text


def test_an_unparsable_connection_string_is_one_clear_problem() -> None:
    found = problems_of(make(kafka_connection_string=f"SharedAccessKey={KEY}"))
    assert len(found) == 1 and found[0].startswith("KAFKA_CONNECTION_STRING: cannot be parsed")
    assert KEY not in found[0]


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"kafka_bootstrap_servers": "broker"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"kafka_bootstrap_servers": "broker:70000"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"kafka_topic_events": "coderunner.submissions"}, "KAFKA_TOPIC_"),
        ({"docker_host": "localhost:2375"}, "DOCKER_HOST"),
        ({"docker_host": "tcp://dind:2376", "docker_tls_verify": True}, "DOCKER_CERT_PATH"),
        ({"grpc_port": 8084}, "HTTP_PORT"),
    ],
)
def test_each_mistake_is_reported_under_its_variable(values: dict[str, Any], variable: str) -> None:
    assert any(p.startswith(variable) for p in problems_of(make(**values)))


# --- logging and docs -----------------------------------------------------------------------


def test_json_log_lines_are_objects() -> None:
    record = logging.LogRecord("coderunner.x", logging.INFO, __file__, 1, "hi %s", ("there",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hi there" and entry["level"] == "INFO"
    assert entry["logger"] == "coderunner.x" and entry["time"].endswith("+00:00")


def test_every_setting_is_documented() -> None:
    assert all(field.description for field in Settings.model_fields.values())


def test_the_committed_configuration_docs_are_up_to_date() -> None:
    for path, text in outputs().items():
        assert path.exists() and path.read_text() == text, (
            f"{path.name} is stale: run `coderunner config docs` (python -m"
            " coderunner.settings_docs) and commit the result"
        )
