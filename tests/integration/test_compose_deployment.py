"""The whole compose deployment, run for real with the operator's commands (`DEPLOY=compose`).

`make up DEPLOY=compose` builds the service and DinD images, saves the runtime images for the
daemon, starts Kafka, PostgreSQL, DinD, the API, the projector and two workers, and waits for
every healthcheck. A program submitted over the published gRPC port runs in the DinD daemon and
is projected; `docker compose up -d --scale worker=4` adds workers that take work; backup,
replay, restore, migrate, logs, restart, health and down act on the deployment.

No registry is reachable here, so Kafka and PostgreSQL are local stand-ins for the upstream
images the compose file names (images/local, the same environment contract), and the service
and DinD images are built FROM the local Debian bases through the compose file's build args.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from coderunner.proto.coderunner.v1 import coderunner_pb2 as pb
from coderunner.proto.coderunner.v1 import coderunner_pb2_grpc as pb_grpc
from coderunner.settings import Settings
from tests.integration.images import EXTRA_CA_DIR
from tests.integration.workers import REPO, base_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

KAFKA_IMAGE = "coderunner/kafka:deploy-test"
POSTGRES_IMAGE = "coderunner/postgres:deploy-test"
REVERSE = "print(input()[::-1])\n"


@dataclass
class Deployment:
    env: dict[str, str]
    grpc_target: str
    workdir: Path

    def make(self, target: str, *args: str, timeout: float = 300, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["make", "--no-print-directory", target, "DEPLOY=compose", *args],
            cwd=REPO, env=self.env, input=stdin, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"make {target} DEPLOY=compose exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            f"\n{self.logs()}"
        )
        return done.stdout + done.stderr

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", *args], cwd=REPO, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def logs(self) -> str:
        ps = self.compose("ps", "--all", timeout=60)
        api = self.compose("logs", "--no-color", "--tail", "60", "api", timeout=60)
        rest = self.compose("logs", "--no-color", "--tail", "20", timeout=60)
        return (
            f"--- docker compose ps --all:\n{ps.stdout}\n--- api's log:\n{api.stdout[-6000:]}"
            f"\n--- every service (last 20 lines each):\n{rest.stdout[-8000:]}"
        )

    def submit_and_wait(self, count: int = 1) -> list[pb.Execution]:
        try:
            return submit_and_wait(self.grpc_target, count)
        except grpc.RpcError as exc:
            pytest.fail(f"gRPC call failed: {exc}\n{self.logs()}")

    def running(self, service: str) -> list[dict[str, object]]:
        done = self.compose("ps", "--format", "json", service, timeout=60)
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return [r for r in rows if r.get("State") == "running"]


def build_stand_ins() -> None:
    done = subprocess.run(
        ["bash", "scripts/build-local-images.sh", "--kafka-tag", KAFKA_IMAGE,
         "--postgres-tag", POSTGRES_IMAGE],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(
            f"building the Kafka/PostgreSQL stand-ins failed:\n{done.stdout}\n{done.stderr}"
        )
    print(done.stdout)


@pytest.fixture(scope="module")
def deployment(
    docker_engine: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    build_stand_ins()
    workdir = tmp_path_factory.mktemp("deployment")
    grpc_port, http_port = free_port(), free_port()
    extra_ca = "".join(p.read_text() for p in sorted(EXTRA_CA_DIR.glob("*.crt")))
    env = base_env(
        COMPOSE_PROJECT_NAME=f"coderunner-deploy-{uuid.uuid4().hex[:8]}",
        KAFKA_IMAGE=KAFKA_IMAGE,
        POSTGRES_IMAGE=POSTGRES_IMAGE,
        CODERUNNER_IMAGE="coderunner:deploy-test",
        CODERUNNER_BASE_IMAGE="coderunner/runtime-python:bookworm",
        DIND_IMAGE="coderunner/dind:deploy-test",
        DIND_BASE_IMAGE="coderunner/base:bookworm",
        EXTRA_CA_CERTS=extra_ca,
        DOCKER_BUILDKIT="0",  # the classic builder resolves FROM against local images
        RUNTIME_IMAGES_DIR=str(workdir / "runtime-images"),
        RUNTIMES="python",
        POSTGRES_PASSWORD=f"pw-{uuid.uuid4().hex[:12]}",
        GRPC_PUBLISH_PORT=str(grpc_port),
        HTTP_PUBLISH_PORT=str(http_port),
    )
    deployment = Deployment(env, f"127.0.0.1:{grpc_port}", workdir)
    try:
        started = time.monotonic()
        up = deployment.make("up", timeout=1200)
        print(f"make up DEPLOY=compose: {time.monotonic() - started:.0f} s\n{up[-3000:]}")
        yield deployment
    finally:
        deployment.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=300)


def submit_and_wait(target: str, count: int = 1, within: float = 240) -> list[pb.Execution]:
    """Submit `count` programs over gRPC, follow each to its end, return them as projected."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.CodeRunnerStub(channel)
        ids = [
            stub.SubmitExecution(
                pb.SubmitExecutionRequest(
                    language="python", source=REVERSE, client="test_compose_deployment",
                    tests=[pb.TestCase(name="reversed", input=f"abc{i}\n",
                                       expected_output=f"{i}cba\n")],
                ),
                timeout=30,
            ).execution_id
            for i in range(count)
        ]  # fmt: skip
        deadline = time.monotonic() + within
        done: dict[str, pb.Execution] = {}
        while len(done) < count:
            assert time.monotonic() < deadline, (
                f"not completed in {within} s: {set(ids) - set(done)}"
            )
            for execution_id in set(ids) - set(done):
                try:
                    execution = stub.GetExecution(
                        pb.GetExecutionRequest(execution_id=execution_id), timeout=10
                    )
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:  # not projected yet
                        raise
                    continue
                if execution.status == pb.EXECUTION_STATUS_COMPLETED:
                    done[execution_id] = execution
            time.sleep(0.5)
        return [done[i] for i in ids]


def test_up_starts_every_service_healthy_and_a_program_runs_end_to_end(
    deployment: Deployment,
) -> None:
    status = deployment.make("status")
    for service in ("kafka", "postgres", "dind", "api"):
        assert any(service in line and "(healthy)" in line for line in status.splitlines()), (
            f"{service} is not healthy:\n{status}"
        )
    assert len(deployment.running("worker")) == 2
    health = deployment.make("health")
    assert "/ready: 200" in health and '"docker": "ok"' in health
    [execution] = deployment.submit_and_wait()
    assert execution.verdict == pb.VERDICT_ACCEPTED, execution
    assert execution.test_results[0].actual_output == "0cba\n"


def test_workers_scale_out_and_share_the_work(deployment: Deployment) -> None:
    # The README's line, in the deployment's environment.
    scaled = deployment.compose("up", "-d", "--scale", "worker=4", timeout=600)
    assert scaled.returncode == 0, scaled.stderr
    print(scaled.stderr)
    assert len(deployment.running("worker")) == 4
    executions = deployment.submit_and_wait(count=8)
    assert [e.verdict for e in executions] == [pb.VERDICT_ACCEPTED] * 8


def test_backup_replay_restore_and_migrate_act_on_the_deployment(deployment: Deployment) -> None:
    [kept] = deployment.submit_and_wait()
    dump = deployment.workdir / "deployment.dump"
    backup = deployment.make("db-backup", f"BACKUP={dump}")
    assert f"backup written to {dump}" in backup and dump.stat().st_size > 0
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

    replay = deployment.make("replay")
    assert "rebuilt from kafka" in replay

    count = "SELECT count(*) FROM executions;\n"
    before = deployment.make("db-shell", stdin=count)
    with pytest.raises(AssertionError, match="not confirmed"):  # no terminal, no YES=1
        deployment.make("db-restore", f"BACKUP={dump}")
    deployment.make("db-restore", f"BACKUP={dump}", "YES=1")
    after = deployment.make("db-shell", stdin=count)
    assert before.split() == after.split(), (before, after)
    with grpc.insecure_channel(deployment.grpc_target) as channel:
        found = pb_grpc.CodeRunnerStub(channel).GetExecution(
            pb.GetExecutionRequest(execution_id=kept.execution_id), timeout=10
        )
    assert found.verdict == pb.VERDICT_ACCEPTED

    assert "schema is up to date" in deployment.make("db-migrate")


def test_logs_restart_and_health_after_it(deployment: Deployment) -> None:
    logs = deployment.make("logs", "FOLLOW=0")
    assert "api-1" in logs and "worker-1" in logs
    deployment.make("restart", timeout=600)
    deadline = time.monotonic() + 180
    while True:
        done = subprocess.run(
            ["make", "--no-print-directory", "health", "DEPLOY=compose"],
            cwd=REPO, env=deployment.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode == 0:
            break
        assert time.monotonic() < deadline, f"not healthy after restart:\n{done.stdout}"
        time.sleep(2)
    [execution] = deployment.submit_and_wait()
    assert execution.verdict == pb.VERDICT_ACCEPTED


def test_down_stops_everything_and_keeps_the_data(deployment: Deployment) -> None:
    deployment.make("down", timeout=600)
    assert deployment.running("api") == [] and deployment.running("worker") == []
    volumes = subprocess.run(
        ["docker", "volume", "ls", "--format", "{{.Name}}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    project = deployment.env["COMPOSE_PROJECT_NAME"]
    assert f"{project}_postgres-data" in volumes and f"{project}_kafka-data" in volumes
