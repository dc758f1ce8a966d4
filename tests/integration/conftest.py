"""Fixtures shared by the end-to-end modules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from coderunner.streams.client import ExecutionClient
from tests.integration.workers import WorkerProcess


@pytest.fixture
async def client(worker: WorkerProcess) -> AsyncIterator[ExecutionClient]:
    """A Kafka client on the topics of the module's own `worker` fixture."""
    async with ExecutionClient(worker.settings) as c:
        yield c
