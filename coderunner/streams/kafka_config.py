"""Kafka client settings for plain local brokers and Azure Event Hubs (SASL_SSL, PLAIN)."""

from __future__ import annotations

import ssl
from typing import Any

from coderunner.settings import SecurityProtocol, Settings

# Client settings Event Hubs needs where they differ from Kafka's defaults (DESIGN-NOTES): it
# drops idle connections after 240 s, so metadata and idle connections must turn over sooner.
EVENT_HUBS_METADATA_MAX_AGE_MS = 180_000
EVENT_HUBS_CONNECTIONS_MAX_IDLE_MS = 180_000
EVENT_HUBS_REQUEST_TIMEOUT_MS = 60_000
# Event Hubs rejects requests of 1046528 bytes or more; stay clearly below.
EVENT_HUBS_MAX_REQUEST_SIZE = 1_000_000


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A TLS 1.2+ context that trusts the system CAs, or only KAFKA_SSL_CAFILE when set."""
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by every aiokafka producer, consumer and admin client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol.value,
    }
    if settings.kafka_security_protocol is SecurityProtocol.SASL_SSL:
        assert settings.kafka_connection_string is not None  # enforced by Settings
        kwargs |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_connection_string.get_secret_value(),
            "ssl_context": ssl_context(settings),
        }
    if settings.event_hubs:
        kwargs |= {
            "metadata_max_age_ms": EVENT_HUBS_METADATA_MAX_AGE_MS,
            "connections_max_idle_ms": EVENT_HUBS_CONNECTIONS_MAX_IDLE_MS,
            "request_timeout_ms": EVENT_HUBS_REQUEST_TIMEOUT_MS,
        }
    return kwargs


def producer_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka_kwargs plus what only a producer takes (the request size cap of Event Hubs)."""
    kwargs = aiokafka_kwargs(settings)
    if settings.event_hubs:
        kwargs["max_request_size"] = EVENT_HUBS_MAX_REQUEST_SIZE
    return kwargs


def faust_broker_settings(settings: Settings) -> dict[str, Any]:
    """The same Event Hubs client settings, under the names the Faust app takes."""
    if not settings.event_hubs:
        return {}
    return {
        "consumer_metadata_max_age_ms": EVENT_HUBS_METADATA_MAX_AGE_MS,
        "consumer_connections_max_idle_ms": EVENT_HUBS_CONNECTIONS_MAX_IDLE_MS,
        "producer_metadata_max_age_ms": EVENT_HUBS_METADATA_MAX_AGE_MS,
        "producer_connections_max_idle_ms": EVENT_HUBS_CONNECTIONS_MAX_IDLE_MS,
        "producer_max_request_size": EVENT_HUBS_MAX_REQUEST_SIZE,
        # Faust counts these in seconds.
        "broker_request_timeout": EVENT_HUBS_REQUEST_TIMEOUT_MS / 1000,
        "producer_request_timeout": EVENT_HUBS_REQUEST_TIMEOUT_MS / 1000,
        # Topics are pre-created in Azure: Faust must not try to declare them.
        "topic_allow_declare": False,
    }
