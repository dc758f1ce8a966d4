"""Kafka client settings for plain local brokers and Azure Event Hubs (SASL_SSL, PLAIN)."""

from __future__ import annotations

import ssl
from typing import Any

from coderunner.settings import SecurityProtocol, Settings


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
    return kwargs
