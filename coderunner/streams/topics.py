"""Creates the service's topics where the broker allows it (Event Hubs: create them in Azure)."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from coderunner.errors import MissingTopics
from coderunner.settings import Settings
from coderunner.streams.kafka_config import aiokafka_kwargs

log = logging.getLogger(__name__)


def topic_names(settings: Settings) -> list[str]:
    return [
        settings.kafka_topic_submissions,
        settings.kafka_topic_events,
        settings.kafka_topic_deadletter,
    ]


async def ensure_topics(settings: Settings, create: bool | None = None) -> list[str]:
    """Create the missing topics (partitions from settings, retention left to the broker).

    Returns the names created. Existing topics are never changed: repartitioning a live topic
    would break per-execution ordering. In the Event Hubs profile (unless `create` says
    otherwise) nothing is created: a missing topic raises MissingTopics naming it.
    """
    if create is None:
        create = not settings.event_hubs
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        if missing and not create:
            raise MissingTopics(missing, settings.kafka_bootstrap_servers)
        if missing:
            partitions = settings.kafka_topic_partitions
            new = [NewTopic(n, partitions, replication_factor=1) for n in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(new)
            log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        await admin.close()
