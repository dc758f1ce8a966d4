"""The service image: the repository's Dockerfile, built FROM the locally built Debian runtime
image (no registry here; classic builder), run with `--network host` against the local stack.

It must serve: /health answers, a real gRPC call answers, it runs as a non-root user with a
healthcheck that passes, and `coderunner config validate` exits 0 inside it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import grpc
import pytest

from coderunner.proto.coderunner.v1 import coderunner_pb2 as pb
from coderunner.proto.coderunner.v1 import coderunner_pb2_grpc as pb_grpc
from coderunner.settings import Settings
from tests.integration.images import build_service_image, docker_cli
from tests.integration.workers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

IMAGE = "coderunner:test"


@pytest.fixture(scope="module")
def image(docker_engine: Settings) -> str:
    """Build twice: the second build runs from cached layers and must be quick."""
    first = build_service_image(IMAGE)
    second = build_service_image(IMAGE)
    print(f"docker build: {first:.1f} s, then {second:.1f} s from the cache")
    assert second < 60, f"a rebuild without changes took {second:.0f} s: the layer cache is unused"
    return IMAGE


def container_env(settings: Settings, grpc_port: int, http_port: int) -> list[str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
        "API_HOST": "127.0.0.1",
        "GRPC_PORT": str(grpc_port),
        "HTTP_PORT": str(http_port),
        "LOG_LEVEL": "INFO",
    }
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


class Api:
    def __init__(self, name: str, grpc_port: int, http_port: int) -> None:
        self.name, self.grpc_port, self.http_port = name, grpc_port, http_port


def wait_for_health(api: Api, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{api.http_port}/health"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status: int = response.status
                return status
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        state = docker_cli("inspect", "--format", "{{.State.Status}}", api.name).stdout.strip()
        if state != "running" or time.monotonic() > deadline:
            logs = docker_cli("logs", "--tail", "60", api.name, check=False)
            output = logs.stdout + logs.stderr
            pytest.fail(f"the API container ({state}) never answered {url}:\n{output}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def api(image: str, kafka: Settings, postgres: Settings) -> Iterator[Api]:
    grpc_port, http_port = free_port(), free_port()
    name = f"coderunner-test-{uuid.uuid4().hex[:8]}"
    try:
        docker_cli(
            "run", "-d", "--name", name, "--network", "host",
            *container_env(kafka, grpc_port, http_port),
            image, "api",
        )  # fmt: skip
        api = Api(name, grpc_port, http_port)
        assert wait_for_health(api) == 200
        yield api
    finally:
        docker_cli("rm", "-f", "-v", name, check=False)


def test_health_answers(api: Api) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{api.http_port}/health", timeout=5) as response:
        assert response.status == 200


def test_grpc_list_languages_answers(api: Api) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{api.grpc_port}") as channel:
        stub = pb_grpc.CodeRunnerStub(channel)
        response = stub.ListLanguages(pb.ListLanguagesRequest(), timeout=15)
    ids = {language.id for language in response.languages}
    assert {"python", "c", "javascript"} <= ids, ids


def test_runs_as_non_root_with_a_passing_healthcheck(api: Api) -> None:
    config = json.loads(
        docker_cli("image", "inspect", "--format", "{{json .Config}}", IMAGE).stdout
    )
    assert config["User"] and config["User"].split(":")[0] not in ("root", "0"), config["User"]
    test = (config.get("Healthcheck") or {}).get("Test") or []
    assert test and test[0] == "CMD", test
    assert config["Entrypoint"] == ["coderunner"] and config["Cmd"] == ["serve"]
    assert {"9084/tcp", "8084/tcp"} <= set(config["ExposedPorts"])
    assert docker_cli("exec", api.name, "id", "-u").stdout.strip() != "0"
    # The image's own healthcheck command, run now (its first scheduled run is 30 s away).
    result = docker_cli("exec", api.name, *test[1:], check=False)
    assert result.returncode == 0, result.stderr


def test_config_validate_passes_inside_the_image(image: str, kafka: Settings) -> None:
    result = docker_cli(
        "run", "--rm", "--network", "host",
        *container_env(kafka, free_port(), free_port()),
        image, "config", "validate",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config: OK" in result.stdout
