"""The Docker engine the sandbox talks to: DOCKER_HOST (a DinD daemon in production) or local."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from coderunner.errors import LOCAL_STACK_HINT, ServiceUnavailable
from coderunner.settings import Settings


def docker_client(settings: Settings, timeout: int = 60) -> docker.DockerClient:
    """A client for the configured engine; TLS settings come from DOCKER_TLS_VERIFY/CERT_PATH."""
    try:
        if settings.docker_host:
            return docker.DockerClient(base_url=settings.docker_host, timeout=timeout)
        return docker.from_env(timeout=timeout)
    except DockerException as exc:
        raise _unavailable(settings, exc) from None


def ping_docker(settings: Settings) -> None:
    """Blocking: raise ServiceUnavailable unless the engine answers a ping."""
    client = docker_client(settings, timeout=5)
    try:
        client.ping()
    except DockerException as exc:
        raise _unavailable(settings, exc) from None
    finally:
        client.close()


def _unavailable(settings: Settings, exc: Exception) -> ServiceUnavailable:
    where = settings.docker_host or "the local socket (DOCKER_HOST unset)"
    return ServiceUnavailable("Docker", where, f"{type(exc).__name__}: {exc}", LOCAL_STACK_HINT)
