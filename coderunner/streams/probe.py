"""Is the Kafka broker reachable with these settings? Used by readiness checks and tests."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError

from coderunner.errors import LOCAL_STACK_HINT, ServiceUnavailable
from coderunner.settings import Settings
from coderunner.streams.kafka_config import aiokafka_kwargs, producer_kwargs

# What one broker connection takes of the client kwargs (no metadata or idle settings).
_CONNECTION_OPTIONS = (
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
)


async def ping_kafka(settings: Settings, timeout_ms: int = 5000) -> None:
    """Connect and fetch cluster metadata, or raise ServiceUnavailable saying what failed."""
    producer = AIOKafkaProducer(**producer_kwargs(settings) | {"request_timeout_ms": timeout_ms})
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KafkaConnectionError) and "sasl_mechanism" in (
            kwargs := aiokafka_kwargs(settings)
        ):
            reason = await _explain_bootstrap_failure(kwargs, timeout_ms) or reason
        raise ServiceUnavailable(
            "Kafka",
            f"{settings.kafka_bootstrap_servers} ({settings.kafka_security_protocol.value})",
            reason,
            LOCAL_STACK_HINT,
        ) from None
    finally:
        await producer.stop()


async def _explain_bootstrap_failure(kwargs: dict[str, Any], timeout_ms: int) -> str | None:
    """aiokafka reports a rejected password only as "Unable to bootstrap" (and a log line).
    One direct connection to the first broker brings out the real cause."""
    host, _, port = kwargs["bootstrap_servers"].split(",")[0].strip().rpartition(":")
    options = {k: v for k, v in kwargs.items() if k in _CONNECTION_OPTIONS}
    try:
        conn = await create_conn(host, int(port), request_timeout_ms=timeout_ms, **options)
    except KafkaError as exc:
        if "Authentication" in type(exc).__name__ + str(exc):
            # Never echo the credentials: name the setting to check instead.
            return (
                "authentication failed (SASL PLAIN rejected the credentials);"
                " check KAFKA_CONNECTION_STRING"
            )
        return f"{type(exc).__name__}: {exc}"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    conn.close()
    return None
