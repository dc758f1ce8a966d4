"""The production Docker-in-Docker topology, for real: the DinD daemon image (images/dind), built
FROM the local Debian base and started WITHOUT --privileged, loads the runtime images that
scripts/export-runtime-images.sh saved; a `coderunner worker` on the host reaches it over
mutual TLS (DOCKER_HOST=tcp://<its IP>:2376) and runs submissions from Kafka in it.

It proves that:
- the image becomes healthy (dockerd answers, the runtime images are loaded) and lays out its
  certificates for the worker's uid, with no key readable by anyone else;
- dockerd refuses a client without TLS, one without a client certificate and one whose
  certificate another CA signed, and the server certificate names the container's IP;
- a submission gets ACCEPTED with the right output, the image it reports is the exported one,
  and its container was created by the nested daemon and never by the host's;
- the limits hold inside the nested daemon (a memory bomb, an infinite loop), the worker goes on
  afterwards, and the nested containers sit in the DinD container's own cgroup;
- a restart keeps the CA and the client certificate and issues a new server certificate, and
  SIGTERM reaches dockerd: the container stops at once with status 0.
About 25 s once the image is built (a first build: about 15 s more).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from docker.errors import DockerException
from docker.tls import TLSConfig

from coderunner.domain import Stream, Verdict
from coderunner.errors import ServiceUnavailable
from coderunner.sandbox.docker_engine import ENGINE_API_VERSION, docker_client, ping_docker
from coderunner.schemas import events as ev
from coderunner.settings import Settings
from coderunner.streams.client import ExecutionClient, new_submission
from tests.conftest import local_settings
from tests.integration.images import build_dind_image, docker_cli
from tests.integration.workers import WorkerProcess, isolated_settings, run_all

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "coderunner/dind:test"
RUNTIMES = ("python", "bash")
PYTHON_IMAGE = "coderunner/runtime-python:bookworm"
LABEL_EXECUTION = "coderunner.execution"  # what coderunner.sandbox puts on its containers
HEALTHY_TIMEOUT = 180
# ENVIRONMENT.md: what DinD needs here instead of --privileged (CAP_SYS_RESOURCE is missing).
UNPRIVILEGED_DIND = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "--device-cgroup-rule", "a *:* rwm",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
)  # fmt: skip
# A CA bundle for requests that does not hold the DinD daemon's CA: the engine client must
# still verify against DOCKER_CERT_PATH/ca.pem (docker/docker-py#2433; this VM sets both for
# its proxy, and a worker image behind such a proxy would too).
FOREIGN_CA_BUNDLE = {
    "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    "CURL_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
}
SMALL = {"wall_time_ms": 2000, "cpu_time_ms": 2000, "memory_mb": 64, "processes": 32}


def engine_settings(url: str, cert_path: Path) -> Settings:
    """Settings that point coderunner's own engine client at the DinD daemon over TLS."""
    return local_settings(docker_host=url, docker_tls_verify=True, docker_cert_path=cert_path)


@dataclass
class Dind:
    name: str
    id: str
    ip: str
    certs: Path

    @property
    def url(self) -> str:
        return f"tcp://{self.ip}:2376"

    def docker(self, *args: str, timeout: float = 60) -> str:
        """The docker CLI inside the DinD container, on its local socket."""
        return docker_cli("exec", self.name, "docker", *args, timeout=timeout).stdout

    def logs(self) -> str:
        result = docker_cli("logs", "--tail", "80", self.name, check=False)
        return result.stdout + result.stderr


# --- the daemon -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dind_image(docker_engine: Settings) -> str:
    build_dind_image(IMAGE)
    return IMAGE


@pytest.fixture(scope="module")
def runtime_tars(docker_engine: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime images as tars; a second export finds them unchanged and saves nothing."""
    out = tmp_path_factory.mktemp("runtime-images")
    script = str(REPO / "scripts" / "export-runtime-images.sh")
    for attempt in ("first", "again"):
        started = time.monotonic()
        result = subprocess.run(
            [script, str(out), *RUNTIMES], capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        print(f"export ({attempt}, {time.monotonic() - started:.1f} s):", *lines, sep="\n  ")
        assert len(lines) == len(RUNTIMES)
    assert all("unchanged" in line for line in lines), lines
    assert sorted(p.name for p in out.glob("*.tar")) == sorted(f"{r}.tar" for r in RUNTIMES)
    return out


@pytest.fixture(scope="module")
def dind(
    dind_image: str, runtime_tars: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dind]:
    tag = uuid.uuid4().hex[:8]
    name = volume = f"coderunner-dind-test-{tag}"
    certs = tmp_path_factory.mktemp("certs")
    started = time.monotonic()
    try:
        docker_cli(
            "run", "-d", "--name", name, "--label", f"coderunner.test=dind-{tag}",
            *UNPRIVILEGED_DIND,
            "-v", f"{volume}:/var/lib/docker",
            "-v", f"{runtime_tars}:/runtime-images:ro",
            "-v", f"{certs}:/certs",
            "-e", f"DIND_CLIENT_UID={os.getuid()}",
            dind_image,
        )  # fmt: skip
        wait_until_healthy(name)
        inspect = "{{.Id}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        container_id, ip = docker_cli("inspect", "--format", inspect, name).stdout.split()
        daemon = Dind(name, container_id, ip, certs)
        progress = [line for line in daemon.logs().splitlines() if " dind: " in line]
        print(f"dind healthy {time.monotonic() - started:.1f} s after docker run:", *progress,
              sep="\n  ")  # fmt: skip
        yield daemon
    finally:
        docker_cli("rm", "-f", name, check=False)
        docker_cli("volume", "rm", volume, check=False)


def wait_until_healthy(name: str) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while True:
        state = docker_cli(
            "inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", name
        ).stdout.split()
        if state == ["running", "healthy"]:
            return
        if state[0] != "running" or time.monotonic() > deadline:
            logs = docker_cli("logs", "--tail", "80", name, check=False)
            pytest.fail(
                f"the DinD container never became healthy (state {state}):\n"
                f"{logs.stdout}{logs.stderr}"
            )
        time.sleep(0.5)


# --- the worker on the host -------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker(
    dind: Dind, kafka: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    settings = isolated_settings(sandbox_max_in_flight=2, projection_enabled=False)
    tls = {
        "DOCKER_HOST": dind.url,
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(dind.certs / "client"),
    }
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = WorkerProcess(settings, log, extra_env=tls | FOREIGN_CA_BUNDLE).start()
    yield process
    process.stop()


def stdout_of(events: list[Any]) -> str:
    return "".join(
        e.content for e in events if isinstance(e, ev.LogChunk) and e.stream is Stream.STDOUT
    )


def container_events(execution_id: str, since: float, until: float, inside: Dind | None) -> str:
    """`docker events` of one engine for the containers labelled with this execution."""
    args = (
        "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
        "--filter", f"label={LABEL_EXECUTION}={execution_id}",
        "--format", "{{.Type}} {{.Action}}",
    )  # fmt: skip
    if inside is not None:
        return inside.docker(*args)
    return docker_cli(*args).stdout


# --- the certificates and TLS -----------------------------------------------------------------


def test_certificates_are_laid_out_for_the_worker_and_no_key_is_exposed(dind: Dind) -> None:
    for part in ("server", "client"):
        assert {p.name for p in (dind.certs / part).iterdir()} == {"ca.pem", "cert.pem", "key.pem"}
    client_key = (dind.certs / "client" / "key.pem").stat()
    assert client_key.st_uid == os.getuid()
    for key in ("client/key.pem", "server/key.pem", "ca/key.pem"):
        mode = (dind.certs / key).stat().st_mode
        assert mode & 0o077 == 0, f"{key} has mode {oct(mode)}"
    assert (dind.certs / "ca").stat().st_mode & 0o077 == 0
    san = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName",
         "-in", str(dind.certs / "server" / "cert.pem")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names = set(re.findall(r"(?:DNS:|IP Address:)([^,\s]+)", san))
    assert {"dind", "localhost", "127.0.0.1", dind.ip, dind.id[:12]} <= names, san


def test_a_client_without_tls_is_refused(dind: Dind, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(tmp_path)  # no ~/.docker certificates to fall back on
    result = docker_cli(
        "-H", dind.url, "version", "--format", "{{.Server.Version}}", check=False, env=env
    )
    assert result.returncode != 0, result.stdout
    assert "HTTP request to an HTTPS server" in result.stderr, result.stderr


def test_a_client_without_a_certificate_of_its_ca_is_refused(
    dind: Dind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in FOREIGN_CA_BUNDLE.items():
        monkeypatch.setenv(name, value)
    issued = dind.certs / "client"
    intruder = tmp_path / "intruder"
    intruder.mkdir()
    shutil.copy(issued / "ca.pem", intruder / "ca.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-subj", "/CN=intruder", "-days", "1",
         "-keyout", str(intruder / "key.pem"), "-out", str(intruder / "cert.pem")],
        capture_output=True, check=True,
    )  # fmt: skip
    # A certificate of another CA is refused in the TLS handshake...
    with pytest.raises(ServiceUnavailable) as refused:
        ping_docker(engine_settings(dind.url, intruder))
    assert "SSLError" in str(refused.value), refused.value
    # ...and so is no client certificate at all (the daemon's CA trusted, nothing presented).
    bare = docker.DockerClient(
        base_url=dind.url,
        tls=TLSConfig(ca_cert=str(issued / "ca.pem"), verify=True),
        version=ENGINE_API_VERSION,
        timeout=10,
    )
    bare.api.trust_env = False
    with pytest.raises((DockerException, requests.RequestException)) as refused_bare:
        bare.ping()
    assert "SSLError" in str(refused_bare.value), refused_bare.value
    # The certificate the entrypoint issued goes through, whatever REQUESTS_CA_BUNDLE says.
    ping_docker(engine_settings(dind.url, issued))


# --- executions in the nested daemon ----------------------------------------------------------


async def test_a_submission_runs_in_the_nested_daemon_and_not_on_the_host(
    client: ExecutionClient, dind: Dind
) -> None:
    since = time.time() - 1
    submission = new_submission(
        "python",
        "print(input()[::-1])",
        tests=[{"name": "reverse", "input": "stressed\n", "expected_output": "desserts"}],
    )
    [events] = await run_all(client, [submission])
    done = events[-1]
    assert isinstance(done, ev.ExecutionCompleted), done
    assert (done.verdict, done.tests_passed, done.tests_total) == (Verdict.ACCEPTED, 1, 1)
    [result] = [e for e in events if isinstance(e, ev.TestCompleted)]
    assert result.actual_output == "desserts\n"
    # The image that ran is the one exported from the host, loaded by the entrypoint.
    assert done.image == PYTHON_IMAGE
    loaded = dind.docker("image", "inspect", "--format", "{{.Id}}", PYTHON_IMAGE).strip()
    exported = docker_cli("image", "inspect", "--format", "{{.Id}}", PYTHON_IMAGE).stdout.strip()
    assert done.image_digest == loaded == exported

    until = time.time() + 1
    inside = container_events(submission.execution_id, since, until, inside=dind)
    on_host = container_events(submission.execution_id, since, until, inside=None)
    assert {"container create", "container start", "container destroy"} <= set(
        inside.splitlines()
    ), inside
    assert on_host == "", on_host


async def test_limits_hold_in_the_nested_daemon_and_the_worker_goes_on(
    client: ExecutionClient,
) -> None:
    bomb = new_submission(
        "python", "a = []\nwhile True: a.append(bytearray(10 * 2**20))", limits=SMALL
    )
    loop = new_submission("python", "while True: pass", limits=SMALL)
    results = await run_all(client, [bomb, loop])
    verdicts = [(events[-1].verdict, events[-1].message) for events in results]
    assert [v for v, _ in verdicts] == [
        Verdict.MEMORY_LIMIT_EXCEEDED,
        Verdict.TIME_LIMIT_EXCEEDED,
    ], verdicts
    after = new_submission("bash", 'read line; echo "got $line"', stdin="it")
    [events] = await run_all(client, [after])
    assert (events[-1].verdict, stdout_of(events)) == (Verdict.ACCEPTED, "got it\n")


def test_nested_containers_live_in_the_dind_containers_cgroup(dind: Dind) -> None:
    """The entrypoint gives dockerd this container's cgroup as parent (cgroup v1 with the host's
    /sys/fs/cgroup mounted): the DinD container's own limits cover every sandbox."""
    cgroups = dind.docker(
        "run", "--rm", "--network", "none", PYTHON_IMAGE, "cat", "/proc/self/cgroup"
    )
    memory = [line.split(":", 2)[2] for line in cgroups.splitlines() if ":memory:" in line]
    if memory:  # cgroup v1
        assert dind.id in memory[0] and "/dind/" in memory[0], cgroups
    else:  # cgroup v2 with a namespace of its own: the container sees only its own cgroup
        assert cgroups.strip() == "0::/", cgroups


# --- restart and stop (last: they restart and then stop the module's daemon) -----------------


def openssl_x509(cert: Path, *fields: str) -> str:
    return subprocess.run(
        ["openssl", "x509", "-noout", *fields, "-in", str(cert)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_a_restart_keeps_the_ca_and_issues_a_new_server_certificate(dind: Dind) -> None:
    before = {p: (dind.certs / p).read_bytes() for p in ("ca/cert.pem", "client/cert.pem")}
    serial = openssl_x509(dind.certs / "server" / "cert.pem", "-serial")
    docker_cli("restart", "--time", "30", dind.name, timeout=90)
    wait_until_healthy(dind.name)
    assert {p: (dind.certs / p).read_bytes() for p in before} == before
    assert openssl_x509(dind.certs / "server" / "cert.pem", "-serial") != serial
    issued = dind.certs / "client"
    ip = docker_cli(
        "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", dind.name
    ).stdout.strip()
    engine = docker_client(engine_settings(f"tcp://{ip}:2376", issued), timeout=10)
    try:
        assert PYTHON_IMAGE in {t for image in engine.images.list() for t in image.tags}
    finally:
        engine.close()


def test_sigterm_stops_dockerd_and_the_container_exits_0(dind: Dind) -> None:
    started = time.monotonic()
    docker_cli("stop", "--time", "30", dind.name, timeout=90)
    took = time.monotonic() - started
    exit_code = docker_cli("inspect", "--format", "{{.State.ExitCode}}", dind.name).stdout.strip()
    logs = dind.logs()
    assert exit_code == "0", logs
    assert "SIGTERM: stopping dockerd" in logs and "exiting with status 0" in logs, logs
    assert took < 25, f"docker stop took {took:.1f} s: SIGTERM did not reach dockerd"
