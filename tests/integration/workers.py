"""Real worker processes (`coderunner worker`) on topics of their own, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

from coderunner.schemas import events as ev
from coderunner.settings import Settings
from coderunner.streams.client import ExecutionClient
from tests.conftest import local_settings

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """One `coderunner worker` subprocess; its log goes to a file the test can show."""

    def __init__(self, settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None):
        self.settings = settings
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SANDBOX_"))}
        env |= {
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
            "KAFKA_TOPIC_SUBMISSIONS": s.kafka_topic_submissions,
            "KAFKA_TOPIC_EVENTS": s.kafka_topic_events,
            "KAFKA_TOPIC_DEADLETTER": s.kafka_topic_deadletter,
            "KAFKA_CONSUMER_GROUP": s.kafka_consumer_group,
            "SANDBOX_MAX_IN_FLIGHT": str(s.sandbox_max_in_flight),
            "PROJECTION_ENABLED": str(s.projection_enabled).lower(),
            "LOG_LEVEL": "INFO",
        }
        return env | self.extra_env

    def start(self, ready_timeout: float = 90.0) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        offset = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coderunner.cli", "worker"],
            env=self.env(),
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if "ready: up to" in text:
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker did not become ready; its log:\n{self.tail()}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


ISOLATED_FIELDS = (
    "kafka_topic_submissions",
    "kafka_topic_events",
    "kafka_topic_deadletter",
    "kafka_consumer_group",
)


def isolation_of(settings: Settings) -> dict[str, str]:
    """The topic names and consumer group that isolate these settings, to reuse elsewhere."""
    return {name: getattr(settings, name) for name in ISOLATED_FIELDS}


def isolated_settings(**overrides: object) -> Settings:
    """Settings with topics and a consumer group no other test shares."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "kafka_topic_submissions": f"test-{tag}.submissions",
        "kafka_topic_events": f"test-{tag}.events",
        "kafka_topic_deadletter": f"test-{tag}.deadletter",
        "kafka_consumer_group": f"test-{tag}",
    }
    return local_settings(**(values | overrides))


async def run_all(
    client: ExecutionClient, submissions: list[ev.ExecutionSubmitted], within: float = 240
) -> list[list[Any]]:
    """Publish every submission at once (the worker runs them side by side), collect events."""
    for s in submissions:
        await client.submit(s)

    async def collect(execution_id: str) -> list[Any]:
        return [e async for e in client.events(execution_id)]

    return await asyncio.wait_for(
        asyncio.gather(*(collect(s.execution_id) for s in submissions)), within
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The isolating settings as the environment variables a subprocess reads."""
    return {name.upper(): value for name, value in isolation_of(settings).items()}


def base_env(**values: str) -> dict[str, str]:
    """The test's environment without any coderunner setting a developer may have exported."""
    prefixes = ("KAFKA_", "POSTGRES_", "SANDBOX_", "DOCKER_", "GRPC_", "HTTP_", "API_", "SERVICE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return env | values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
