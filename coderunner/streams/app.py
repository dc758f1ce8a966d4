"""The Faust application and its topics, configured from Settings."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from coderunner.settings import SecurityProtocol, Settings
from coderunner.streams.kafka_config import faust_broker_settings, ssl_context


@dataclass(frozen=True)
class Topics:
    submissions: Any
    events: Any
    deadletter: Any


def create_app(settings: Settings, app_id: str | None = None) -> faust.App:
    """A Faust app whose consumer group is KAFKA_CONSUMER_GROUP (or `app_id`)."""
    servers = ";".join(f"kafka://{s.strip()}" for s in settings.kafka_bootstrap_servers.split(","))
    return faust.App(
        app_id or settings.kafka_consumer_group,
        broker=servers,
        broker_credentials=_credentials(settings),
        # Our own codec decodes the bytes, so a malformed message reaches our code (and the
        # dead-letter topic) instead of failing inside Faust.
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.kafka_topic_partitions,
        # No leader-election topic: Event Hubs has no admin API to create it for us.
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # A worker that died is noticed in seconds, so its partitions (and the executions it
        # held) move to a live worker quickly; the default is a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        # A few ms of linger batches the events of concurrent executions into one request.
        producer_linger_ms=5,
        web_enabled=False,
        # Faust's local state folder (tables, which we do not use): out of the working directory.
        datadir=str(Path(tempfile.gettempdir()) / "coderunner-faust-{conf.name}"),
        # Event Hubs profile: its client timeouts, request size cap, and no topic declaration.
        **faust_broker_settings(settings),
    )


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    def topic(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.kafka_topic_partitions,
        )

    return Topics(
        submissions=topic(settings.kafka_topic_submissions),
        events=topic(settings.kafka_topic_events),
        deadletter=topic(settings.kafka_topic_deadletter),
    )


def _credentials(settings: Settings) -> faust.SASLCredentials | None:
    if settings.kafka_security_protocol is not SecurityProtocol.SASL_SSL:
        return None
    assert settings.kafka_connection_string is not None  # enforced by Settings
    # Without an ssl_context Faust would speak SASL_PLAINTEXT: pass one (DESIGN-NOTES).
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_connection_string.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=ssl_context(settings),
    )
