"""docker-compose.yml, the one-host deployment, checked statically and then for real.

Statically, from `docker compose config --format json` (which must exit 0 with no warning; run
with a clean environment, no .env, and RUNTIME_IMAGES_DIR set to a scratch directory), it proves:
- no service gets the host's Docker: no *.sock (or the directory of docker.sock) is mounted, no
  service is privileged or shares the host's network or PID namespace;
- worker, api and projector reach the `dind` service over mutual TLS: DOCKER_HOST
  tcp://dind:2376, DOCKER_TLS_VERIFY on, DOCKER_CERT_PATH inside a read-only mount of the
  dind-certs volume, at the place where dind writes the client certificate into that volume;
- dind's 2376 is published on no host port (internal network only);
- the worker is scalable: no container_name, no published port, replicas from WORKER_REPLICAS
  (2 by default, 3 when set), PROJECTION_ENABLED false (the projector service projects);
- kafka, postgres and dind have healthchecks (api: the service image's HEALTHCHECK, not
  disabled), and worker and api start only once dind, kafka and postgres are healthy;
- Kafka's, PostgreSQL's and dockerd's data are on named volumes;
- CODERUNNER_IMAGE, DIND_IMAGE and RUNTIME_IMAGES_DIR choose the images and the tar directory.
(Compose does not need RUNTIME_IMAGES_DIR to exist: the short bind syntax lets the engine create
it, empty and root-owned, on `up`, and dind then starts healthy with no runtime image.)

For real, on this machine: the two images built FROM the local bases (tests/integration/images.py),
the Python runtime image exported as a tar, `docker compose -p <unique> up --wait dind`, then a
one-off `worker` container from the compose file (`docker compose run --no-deps`) that uses
coderunner's own engine client, configured only by the compose file's environment. It proves:
- dind becomes healthy without --privileged and loads the runtime image from the tar (the same
  image id as on the host), and its 2376 is not bound on the host;
- the worker runs as uid 10001, can read the client key that dind handed to that uid (mode 0600)
  and can not write to the certificates;
- the TLS handshake with `dind` succeeds (the service name is in the server certificate), the
  engine answering is the dind container's, and a program runs there: print(6*7) gives 42 in a
  container with no network, removed afterwards.
`docker compose down -v` removes the containers, the network and the volumes, whatever happens.
About 15 s once the images are built (a first build: a minute or two more).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coderunner.settings import Settings
from tests.integration.images import REPO, build_dind_image, build_service_image, docker_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICE_IMAGE = "coderunner:compose-test"
DIND_IMAGE = "coderunner/dind:compose-test"
PYTHON_IMAGE = "coderunner/runtime-python:bookworm"
APP_UID = 10001  # the service image's user (Dockerfile APP_UID), dind's DIND_CLIENT_UID
CODERUNNER_SERVICES = ("worker", "api", "projector")
DIND_URL = "tcp://dind:2376"
UP_TIMEOUT = 180
TEST_PASSWORD = "compose-test-password"
# What the compose CLI itself needs from this process's environment; nothing else is passed, so
# a developer's KAFKA_BOOTSTRAP_SERVERS, WORKER_REPLICAS or COMPOSE_* can not change the result.
CLI_ENV = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG")
TRUE = ("1", "true", "yes", "on")


def compose(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`docker compose` on the repository's compose file; `--env-file /dev/null` keeps a
    developer's .env out of the interpolation."""
    base = {k: v for k, v in os.environ.items() if k in CLI_ENV}
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "--env-file", os.devnull, *args],
        env=base | env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0 and "is not a docker command" in result.stderr:
        pytest.fail("the docker compose v2 plugin is missing: run `make stack-up`", pytrace=False)
    return result


def render(images_dir: Path, **variables: str) -> dict[str, Any]:
    """`docker compose config --format json`: it must exit 0 and warn about nothing."""
    env = {
        "RUNTIME_IMAGES_DIR": str(images_dir),
        "CODERUNNER_IMAGE": SERVICE_IMAGE,
        "DIND_IMAGE": DIND_IMAGE,
        "POSTGRES_PASSWORD": TEST_PASSWORD,
    }
    result = compose("config", "--format", "json", env=env | variables)
    assert result.returncode == 0, (
        f"docker compose config exited {result.returncode}:\n{result.stderr}"
    )
    assert result.stderr.strip() == "", result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    return list(service.get("volumes") or [])


# --- static: docker compose config ----------------------------------------------------------


@pytest.fixture(scope="module")
def scratch_images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch-runtime-images")


@pytest.fixture(scope="module")
def config(scratch_images_dir: Path) -> dict[str, Any]:
    return render(scratch_images_dir)


def test_config_passes_and_takes_the_images_and_the_tar_directory_from_the_environment(
    config: dict[str, Any], scratch_images_dir: Path
) -> None:
    services = config["services"]
    assert set(services) == {"kafka", "postgres", "dind", *CODERUNNER_SERVICES}, set(services)
    assert {name: services[name]["image"] for name in (*CODERUNNER_SERVICES, "dind")} == {
        "worker": SERVICE_IMAGE,
        "api": SERVICE_IMAGE,
        "projector": SERVICE_IMAGE,
        "dind": DIND_IMAGE,
    }
    [tars] = [m for m in mounts(services["dind"]) if m["target"] == "/runtime-images"]
    assert (tars["type"], tars["source"], tars.get("read_only")) == (
        "bind",
        str(scratch_images_dir),
        True,
    ), tars


def test_no_service_gets_the_host_docker_socket_or_privileges(config: dict[str, Any]) -> None:
    socket_dirs = {"/var/run", "/run", "/var/run/docker", "/run/docker"}
    for name, service in config["services"].items():
        for mount in mounts(service):
            for path in (str(mount.get("source") or ""), str(mount["target"])):
                assert not path.endswith(".sock"), f"{name} mounts a socket: {mount}"
                assert path.rstrip("/") not in socket_dirs, f"{name} mounts {path}: {mount}"
        assert service.get("privileged") is not True, f"{name} is privileged"
        assert service.get("network_mode") != "host", f"{name} is on the host's network"
        assert service.get("pid") != "host", f"{name} shares the host's PID namespace"


def test_the_services_reach_dind_over_mutual_tls_with_the_shared_certificates(
    config: dict[str, Any],
) -> None:
    services = config["services"]
    [dind_certs] = [m for m in mounts(services["dind"]) if m["target"] == "/certs"]
    assert (dind_certs["type"], dind_certs["source"]) == ("volume", "dind-certs"), dind_certs
    assert "dind-certs" in config["volumes"]
    for name in CODERUNNER_SERVICES:
        env = environment(services[name])
        assert env.get("DOCKER_HOST") == DIND_URL, (name, env)
        assert env.get("DOCKER_TLS_VERIFY", "").lower() in TRUE, (name, env)
        cert_path = Path(env["DOCKER_CERT_PATH"])
        holding = [m for m in mounts(services[name]) if cert_path.is_relative_to(m["target"])]
        assert len(holding) == 1, f"{name}: no mount holds DOCKER_CERT_PATH {cert_path}"
        certs = holding[0]
        assert (certs["type"], certs["source"], certs.get("read_only")) == (
            "volume",
            "dind-certs",
            True,
        ), (name, certs)
        # The entrypoint writes the client certificate to /certs/client in that volume.
        assert cert_path.relative_to(certs["target"]) == Path("client"), (name, cert_path)


def test_dind_is_reachable_only_on_the_internal_network(config: dict[str, Any]) -> None:
    assert not config["services"]["dind"].get("ports"), config["services"]["dind"]["ports"]
    for name, service in config["services"].items():
        for port in service.get("ports") or []:
            assert 2376 not in (int(port["target"]), int(port.get("published") or 0)), (name, port)


def test_the_worker_is_scalable_and_leaves_projection_to_the_projector(
    config: dict[str, Any], scratch_images_dir: Path
) -> None:
    worker = config["services"]["worker"]
    assert "container_name" not in worker, worker["container_name"]
    assert not worker.get("ports"), worker["ports"]  # N replicas can not share a host port
    assert worker["deploy"]["replicas"] == 2, worker["deploy"]
    assert environment(worker)["PROJECTION_ENABLED"].lower() == "false"
    assert environment(config["services"]["projector"]).get("PROJECTION_ENABLED") != "false"
    scaled = render(scratch_images_dir, WORKER_REPLICAS="3")
    assert scaled["services"]["worker"]["deploy"]["replicas"] == 3, scaled["services"]["worker"]


def test_healthchecks_and_start_order(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in ("kafka", "postgres", "dind"):
        check = services[name].get("healthcheck") or {}
        assert not check.get("disable") and check.get("test", [""])[0] == "CMD", (name, check)
    # api's healthcheck is the service image's own (GET /health on HTTP_PORT): not disabled here.
    assert not (services["api"].get("healthcheck") or {}).get("disable"), services["api"]
    # worker and projector have no HTTP port: their check is the heartbeat file they renew
    for name in ("worker", "projector"):
        check = services[name].get("healthcheck") or {}
        heartbeat = environment(services[name]).get("HEARTBEAT_FILE")
        assert heartbeat and check.get("test") == [
            "CMD", "coderunner", "health", "--heartbeat", heartbeat
        ], (name, check)  # fmt: skip
    runtime_stage = (REPO / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert re.search(r"^HEALTHCHECK .*\\\n\s+CMD ", runtime_stage, re.M), "no HEALTHCHECK"
    for name in ("worker", "api"):
        depends = services[name].get("depends_on") or {}
        assert {d: depends.get(d, {}).get("condition") for d in ("dind", "kafka", "postgres")} == {
            "dind": "service_healthy",
            "kafka": "service_healthy",
            "postgres": "service_healthy",
        }, (name, depends)


def test_state_is_on_named_volumes(config: dict[str, Any]) -> None:
    services = config["services"]
    wanted = {
        "kafka": environment(services["kafka"])["KAFKA_LOG_DIRS"],
        "postgres": "/var/lib/postgresql/data",
        "dind": "/var/lib/docker",  # overlay2 needs a real file system, not a tmpfs
    }
    for name, target in wanted.items():
        found = [m for m in mounts(services[name]) if m["target"] == target]
        assert len(found) == 1, f"{name}: nothing mounted at {target}"
        assert found[0]["type"] == "volume", (name, found[0])
        assert found[0]["source"] in config["volumes"], (name, found[0])


# --- real: up dind, run a one-off worker ----------------------------------------------------

WORKER_SNIPPET = f"""
import json, os
from coderunner.sandbox.docker_engine import docker_client
from coderunner.settings import load_settings

settings = load_settings()
engine = docker_client(settings, timeout=60)
key = os.stat(os.path.join(settings.docker_cert_path, "key.pem"))
with open(os.path.join(settings.docker_cert_path, "key.pem"), "rb") as f:
    key_readable = b"PRIVATE KEY" in f.read()
output = engine.containers.run(
    {PYTHON_IMAGE!r}, ["python3", "-c", "print(6*7)"], network_disabled=True, remove=True
)
print(json.dumps({{
    "uid": os.getuid(),
    "docker_host": settings.docker_host,
    "ping": engine.ping(),
    "engine_name": engine.info()["Name"],
    "images": {{t: i.id for i in engine.images.list() for t in i.tags}},
    "key_uid": key.st_uid,
    "key_mode": key.st_mode & 0o777,
    "key_readable": key_readable,
    "certs_writable": os.access(str(settings.docker_cert_path), os.W_OK),
    "output": output.decode(),
    "left": len(engine.containers.list(all=True)),
}}))
"""


@dataclass
class Project:
    name: str
    env: dict[str, str]

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return compose("-p", self.name, *args, env=self.env, timeout=timeout)

    def dind_logs(self) -> str:
        result = self.compose("logs", "--no-color", "--tail", "100", "dind")
        return result.stdout + result.stderr


@pytest.fixture(scope="module")
def runtime_tars(docker_engine: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runtime-images")
    started = time.monotonic()
    result = subprocess.run(
        [str(REPO / "scripts" / "export-runtime-images.sh"), str(out), "python"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"\nexport ({time.monotonic() - started:.1f} s): {result.stdout.strip()}")
    assert [p.name for p in out.glob("*.tar")] == ["python.tar"]
    return out


@pytest.fixture(scope="module")
def project(docker_engine: Settings, runtime_tars: Path) -> Iterator[Project]:
    build_service_image(SERVICE_IMAGE)
    build_dind_image(DIND_IMAGE)
    project = Project(
        f"coderunner-compose-test-{uuid.uuid4().hex[:8]}",
        {
            "CODERUNNER_IMAGE": SERVICE_IMAGE,
            "DIND_IMAGE": DIND_IMAGE,
            "RUNTIME_IMAGES_DIR": str(runtime_tars),
            "POSTGRES_PASSWORD": TEST_PASSWORD,
        },
    )
    try:
        started = time.monotonic()
        up = project.compose(
            "up", "-d", "--no-build", "--pull", "never",
            "--wait", "--wait-timeout", str(UP_TIMEOUT), "dind",
            timeout=UP_TIMEOUT + 60,
        )  # fmt: skip
        if up.returncode != 0:
            pytest.fail(
                f"docker compose up --wait dind exited {up.returncode}:\n{up.stderr}\n"
                f"--- docker compose logs dind:\n{project.dind_logs()}"
            )
        progress = [line for line in project.dind_logs().splitlines() if " dind: " in line]
        print(f"dind healthy {time.monotonic() - started:.1f} s after up:", *progress, sep="\n  ")
        yield project
    finally:
        started = time.monotonic()
        down = project.compose("down", "-v", "--remove-orphans", "--timeout", "30", timeout=180)
        print(f"down -v: {time.monotonic() - started:.1f} s")
        assert down.returncode == 0, (
            f"docker compose down -v exited {down.returncode}:\n{down.stderr}"
        )


def test_dind_is_unprivileged_unpublished_and_loaded_the_runtime_image(project: Project) -> None:
    [container] = project.compose("ps", "-q", "dind").stdout.split()
    inspect = json.loads(docker_cli("inspect", container).stdout)[0]
    assert inspect["HostConfig"]["Privileged"] is False
    assert not inspect["HostConfig"]["PortBindings"], inspect["HostConfig"]["PortBindings"]
    assert not (inspect["NetworkSettings"]["Ports"] or {}).get("2376/tcp")
    assert inspect["State"]["Health"]["Status"] == "healthy"
    logs = project.dind_logs()
    assert "Loaded image: coderunner/runtime-python:bookworm" in logs, logs


def test_a_one_off_worker_runs_a_program_in_dind_over_mutual_tls(project: Project) -> None:
    started = time.monotonic()
    run = project.compose(
        "run", "--rm", "--no-deps", "-T", "--pull", "never",
        "--entrypoint", "python", "worker", "-c", WORKER_SNIPPET,
        timeout=180,
    )  # fmt: skip
    took = time.monotonic() - started
    context = (
        f"docker compose run worker exited {run.returncode} after {took:.1f} s\n"
        f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}\n"
        f"--- docker compose logs dind:\n{project.dind_logs()}"
    )
    assert run.returncode == 0, context
    print(f"\none-off worker: {took:.1f} s: {run.stdout.strip()}")
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["uid"] == APP_UID, context
    assert seen["docker_host"] == DIND_URL and seen["ping"] is True, context
    # The certificates dind handed to the worker's uid: readable by it alone, not writable.
    assert (seen["key_uid"], seen["key_mode"], seen["key_readable"]) == (APP_UID, 0o600, True)
    assert seen["certs_writable"] is False, context
    # The engine that answered is the dind container's (its host name is its short id)...
    [container] = project.compose("ps", "-q", "dind").stdout.split()
    assert container.startswith(seen["engine_name"]), (container, seen["engine_name"])
    # ...with the runtime image loaded from the tar: the host's image, same id.
    host_id = docker_cli("image", "inspect", "--format", "{{.Id}}", PYTHON_IMAGE).stdout.strip()
    assert seen["images"].get(PYTHON_IMAGE) == host_id, context
    assert "42" in seen["output"] and seen["output"].strip() == "42", context
    assert seen["left"] == 0, "the program's container was not removed"


def test_a_mistyped_runtime_images_dir_fails_up_instead_of_starting_an_empty_engine(
    docker_engine: Settings, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-dir"
    project = Project(
        f"coderunner-compose-typo-{uuid.uuid4().hex[:8]}",
        {
            "DIND_IMAGE": DIND_IMAGE,
            "RUNTIME_IMAGES_DIR": str(missing),
            "POSTGRES_PASSWORD": TEST_PASSWORD,
        },
    )
    build_dind_image(DIND_IMAGE)
    try:
        up = project.compose("up", "-d", "--no-build", "--pull", "never", "dind", timeout=120)
        assert up.returncode != 0
        assert f"bind source path does not exist: {missing}" in up.stderr, up.stderr
        assert not missing.exists()  # the engine did not create it
    finally:
        project.compose("down", "-v", "--remove-orphans", timeout=120)


def test_there_is_no_default_database_password(scratch_images_dir: Path) -> None:
    env = {"RUNTIME_IMAGES_DIR": str(scratch_images_dir)}
    result = compose("config", "--quiet", env=env)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr and "make env" in result.stderr, result.stderr


def test_the_service_image_is_built_by_one_service_only(config: dict[str, Any]) -> None:
    # Three services building one tag give it three IDs on a cold build; the next `up` (a
    # --scale) then recreates the containers whose ID the tag no longer names.
    services = config["services"]
    builders = [name for name in CODERUNNER_SERVICES if "build" in services[name]]
    assert builders == ["api"], builders
    for name in CODERUNNER_SERVICES:
        assert services[name]["image"] == SERVICE_IMAGE
        assert services[name]["pull_policy"] in ("build", "never"), (name, services[name])
