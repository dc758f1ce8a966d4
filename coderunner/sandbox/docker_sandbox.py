"""The Sandbox port on a Docker engine: one fresh, locked-down container per execution.

Design (measured on Docker 20.10, cgroup v1): a `docker exec` costs ~55 ms (runc starts a
process in the container), about a third of a whole bare `docker run`. So the container's PID 1
is a small bash supervisor (see `supervisor`, which also holds the protocol) that the session
talks to over the container's attached stdin/stdout/stderr; files, stdin and every run go
through that one stream and no exec is needed at all.

PID 1 is immune to every signal a program can send it (the kernel drops signals to a PID
namespace's init that it has no handler for, and it ignores those bash would handle), so after
each run it can always SIGKILL every
process the program left behind (`kill -9 -1`) and reap them. The host side enforces what a
program could still escape: the output cap and a wall-clock backstop (SIGUSR1 to PID 1 through
the engine, which makes the supervisor kill the run; then removing the container).

A container never outlives its worker for long, and a worker never touches another live
worker's containers (several may share one engine):
- the engine closes the supervisor's stdin when the worker's attach connection ends (the
  container is created with StdinOnce), so a killed worker's idle supervisor exits at once
  (measured: the container is gone ~50 ms after a kill -9), a busy one when its run ends; the
  engine then removes the container (AutoRemove);
- the supervisor exits on its own after `lifetime_s` (the longest a legitimate session can
  take), in case the end of the connection never reaches it (e.g. a worker host that vanished
  from the network);
- containers are labelled with the worker's host name and pid: `remove_leftovers()` at a
  worker's start removes those of this host whose worker process is gone. Only this catches a
  supervisor that a program froze (ptrace, a stopped `timeout`) just as its worker died.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import requests
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit

from coderunner.domain import AppliedLimits
from coderunner.errors import SandboxError
from coderunner.handlers.ports import SandboxInfo
from coderunner.languages import Language
from coderunner.sandbox.docker_engine import docker_client
from coderunner.sandbox.docker_session import (
    BACKSTOP_GRACE_S,
    QUIT_TIMEOUT_S,
    REMOVE_GRACE_S,
    SETUP_TIMEOUT_S,
    DockerSandboxSession,
    StartedContainer,
    close_socket,
)
from coderunner.sandbox.supervisor import (
    WORK_DIR,
    WORK_DIR_BYTES,
    memory_bytes,
    supervisor_command,
    tar_archive,
)
from coderunner.settings import ImageSet, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

SHM_BYTES = 16 * 1024 * 1024
OPEN_FILES = 256
SANDBOX_USER = "65534:65534"  # nobody:nogroup, owner of the /work tmpfs
# During a run, PID 1 and `timeout` count against the pids limit besides the program; before
# it, storing stdin or files takes PID 1 and up to 4 helpers (head, a subshell, cat/tar, cat).
RUN_OVERHEAD_PROCESSES = 2
MIN_PIDS = 6
LABEL_MANAGED = "coderunner.managed"
LABEL_EXECUTION = "coderunner.execution"
LABEL_WORKER_HOST = "coderunner.worker.host"  # settings.worker_name
LABEL_WORKER_PID = "coderunner.worker.pid"  # the worker process on that host
IMAGE_CACHE_S = 60.0  # how long a resolved image id is reused
# Added to the supervisor's lifetime for the host's own work between runs (publishing events,
# engine calls): generous, since a healthy session cut short fails its attempt.
LIFETIME_SLACK_S = 300.0

_WORK_DIR_OWNER = "uid=65534,gid=65534,mode=0700"

# --- The engine ---------------------------------------------------------------------------------


class DockerSandbox:
    """Opens sandbox sessions on the configured Docker engine. One per worker process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Each in-flight execution holds at most one blocked read plus one engine call.
        self._executor = ThreadPoolExecutor(
            max_workers=2 * settings.sandbox_max_in_flight + 2, thread_name_prefix="sandbox"
        )
        self._client = docker_client(settings)
        self.api: Any = self._client.api  # the low-level APIClient: no per-call reload/inspect
        # image name -> (id, digest, when resolved): one inspect per image a minute, not per run
        self._images: dict[str, tuple[str, str, float]] = {}

    async def open(
        self,
        language: Language,
        files: dict[str, bytes],
        limits: AppliedLimits,
        *,
        execution_id: str | None = None,
    ) -> DockerSandboxSession:
        """A started container with the files in /work (see `Sandbox.open`).

        `execution_id` labels the container (`coderunner.execution`); a random id otherwise.
        """
        image = language.image(self._settings.sandbox_image_set)
        archive = tar_archive(files)
        label = execution_id or uuid.uuid4().hex
        start = functools.partial(self._start_container, image, limits, label)
        container = await self.call(start, on_abandon=self._discard)
        session = DockerSandboxSession(self, container, limits)
        try:
            await session.deliver(archive)
        except BaseException:
            await session.close()
            raise
        return session

    def lifetime_s(self, limits: AppliedLimits) -> int:
        """How long a container's supervisor lives at most: a compile and the most tests a
        submission may have, each to its wall limit and the host's backstops, plus slack."""
        runs = max(self._settings.sandbox_max_tests, 1) + 1
        per_run_s = limits.wall_time_ms / 1000 + BACKSTOP_GRACE_S + REMOVE_GRACE_S
        return math.ceil(SETUP_TIMEOUT_S + runs * per_run_s + LIFETIME_SLACK_S)

    async def remove_leftovers(self, execution_id: str | None = None) -> int:
        """Remove containers left behind; returns how many.

        With an execution id: that execution's containers, whoever made them. Without (at a
        worker's start): this host's containers whose worker process is gone — never those of
        a live worker sharing the engine, nor this process's own.
        """
        labels = [f"{LABEL_MANAGED}=true"]
        if execution_id is not None:
            labels.append(f"{LABEL_EXECUTION}={execution_id}")
        else:
            labels.append(f"{LABEL_WORKER_HOST}={self._settings.worker_name}")
        listing = functools.partial(self.api.containers, all=True, filters={"label": labels})
        found = await self.call(listing)
        if execution_id is None:
            found = [entry for entry in found if _owner_gone(entry.get("Labels") or {})]
        for entry in found:
            await self.call(functools.partial(self.remove_container, entry["Id"]))
        if found:
            log.info("removed %d leftover sandbox container(s)", len(found))
        return len(found)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._client.close)

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """A blocking call in the pool, as a future the caller may leave pending."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def call(self, fn: Callable[[], T], on_abandon: Callable[[T], None] | None = None) -> T:
        """Run a blocking engine call in the pool. If the caller is cancelled meanwhile, the call
        still completes and `on_abandon` disposes of what it made (e.g. a created container)."""
        future = self.submit(fn)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if on_abandon is not None:
                future.add_done_callback(functools.partial(self._abandoned, on_abandon))
            raise

    def _abandoned(self, dispose: Callable[[T], None], future: asyncio.Future[T]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._executor.submit(dispose, future.result())

    # Blocking helpers, run in the pool ------------------------------------------------------

    def _start_container(self, image: str, limits: AppliedLimits, label: str) -> StartedContainer:
        image_id, digest = self._resolve_image(image)
        container_id = self._create(image_id, image, limits, label)
        try:
            sock = self.api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self.api.start(container_id)
        except BaseException as exc:
            self.remove_container(container_id)
            if isinstance(exc, DockerException | requests.RequestException):
                raise SandboxError(f"the Docker engine could not start {image}: {exc}") from exc
            raise
        raw = getattr(sock, "_sock", sock)  # a plain socket under the SDK's SocketIO; TLS as is
        raw.settimeout(None)  # runs are bounded by our own deadlines, not the client's timeout
        return StartedContainer(container_id, raw, SandboxInfo(image, digest), label)

    def _create(self, image_id: str, image: str, limits: AppliedLimits, label: str) -> str:
        labels = {
            LABEL_MANAGED: "true",
            LABEL_EXECUTION: label,
            LABEL_WORKER_HOST: self._settings.worker_name,
            LABEL_WORKER_PID: str(os.getpid()),
        }
        try:
            created = self.api.create_container(
                image_id,
                command=supervisor_command(self.lifetime_s(limits)),
                user=SANDBOX_USER,
                working_dir=WORK_DIR,
                environment={"HOME": WORK_DIR, "TMPDIR": WORK_DIR},
                # With stdin_open (and not detached) the SDK sets StdinOnce: the engine closes
                # the supervisor's stdin when our attach connection ends.
                stdin_open=True,
                network_disabled=True,
                labels=labels,
                host_config=self._host_config(limits),
            )
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(
                f"the Docker engine could not create a container of {image}: {exc}"
            ) from exc
        return str(created["Id"])

    def _resolve_image(self, image: str) -> tuple[str, str]:
        """The image id to create from (so the digest we report is what runs) and its digest.

        Cached for IMAGE_CACHE_S: a tag rebuilt meanwhile is picked up within that time, and a
        container is always created from the id that is reported.
        """
        cached = self._images.get(image)
        if cached is not None and time.monotonic() - cached[2] < IMAGE_CACHE_S:
            return cached[0], cached[1]
        try:
            attrs = self.api.inspect_image(image)
        except ImageNotFound:
            raise SandboxError(_missing_image_message(image, self._settings)) from None
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(f"the Docker engine could not inspect image {image}: {exc}") from exc
        digests = attrs.get("RepoDigests") or []
        resolved = attrs["Id"], digests[0] if digests else attrs["Id"]
        self._images[image] = (*resolved, time.monotonic())
        return resolved

    def _host_config(self, limits: AppliedLimits) -> Any:
        memory = memory_bytes(limits.memory_mb)
        # tmpfs pages are charged to the container's memory: keep the work dir at most half of
        # it, so filling the disk fails as a full disk (ENOSPC/EFBIG), not as an OOM kill.
        work_bytes = min(WORK_DIR_BYTES, memory // 2)
        return self.api.create_host_config(
            auto_remove=True,  # a container whose supervisor exited goes, even if we are gone
            network_mode="none",
            read_only=True,
            tmpfs={WORK_DIR: f"rw,exec,nosuid,nodev,size={work_bytes},{_WORK_DIR_OWNER}"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=max(limits.processes + RUN_OVERHEAD_PROCESSES, MIN_PIDS),
            mem_limit=memory,
            memswap_limit=memory,  # no swap: the memory limit is the limit
            nano_cpus=1_000_000_000,
            shm_size=SHM_BYTES,
            ulimits=[
                Ulimit(name="fsize", soft=work_bytes, hard=work_bytes),
                Ulimit(name="nofile", soft=OPEN_FILES, hard=OPEN_FILES),
                Ulimit(name="core", soft=0, hard=0),
            ],
            log_config=LogConfig(type=LogConfig.types.NONE),  # output goes to us, not to disk
        )

    def remove_container(self, container_id: str) -> None:
        """Kill and remove; a container that is already gone is fine."""
        try:
            self.api.remove_container(container_id, v=True, force=True)
        except NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "in progress" in str(exc):
                self._wait_removed(container_id)  # the engine's auto-remove, or another caller
                return
            raise SandboxError(
                f"could not remove sandbox container {container_id[:12]}: {exc}"
            ) from exc
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(
                f"could not remove sandbox container {container_id[:12]}: {exc}"
            ) from exc

    def _wait_removed(self, container_id: str) -> None:
        """Until the container is gone (or QUIT_TIMEOUT_S passed): removal is not instant."""
        with contextlib.suppress(DockerException, requests.RequestException):
            self.api.wait(container_id, timeout=QUIT_TIMEOUT_S, condition="removed")

    def _discard(self, container: StartedContainer) -> None:
        close_socket(container.sock)
        try:
            self.remove_container(container.id)
        except SandboxError:
            log.warning("could not remove abandoned container %s", container.id[:12], exc_info=True)


def _missing_image_message(image: str, settings: Settings) -> str:
    if settings.sandbox_image_set is ImageSet.LOCAL:
        how = "build it with `make stack-up` (scripts/stack/images.sh up)"
    else:
        how = f"pull it with `docker pull {image}`"
    return f"image {image} not found on the Docker engine — {how}"


def _owner_gone(labels: Mapping[str, str]) -> bool:
    """Whether the worker process that made a container on this host no longer runs."""
    pid = labels.get(LABEL_WORKER_PID, "")
    if not pid.isdigit() or int(pid) in (0, os.getpid()):
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    return False
