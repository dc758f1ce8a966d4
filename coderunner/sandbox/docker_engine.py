"""The Docker engine the sandbox talks to: DOCKER_HOST (a DinD daemon in production) or local."""

from __future__ import annotations

import docker
import requests
from docker.errors import DockerException
from docker.tls import TLSConfig

from coderunner.errors import LOCAL_STACK_HINT, ServiceUnavailable
from coderunner.settings import Settings

# Docker 20.10's API (Debian bookworm's docker.io, the DinD image); newer engines accept it too.
ENGINE_API_VERSION = "1.41"


def docker_client(settings: Settings, timeout: int = 60) -> docker.DockerClient:
    """A client for the configured engine: DOCKER_HOST with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH
    from the settings, or the docker SDK's own defaults when DOCKER_HOST is unset."""
    try:
        if settings.docker_host:
            # The API version is given, not negotiated: negotiation is a request made while the
            # client is built, before trust_env can be switched off (below).
            client = docker.DockerClient(
                base_url=settings.docker_host,
                timeout=timeout,
                tls=tls_config(settings),
                version=ENGINE_API_VERSION,
            )
            # requests would let REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace DOCKER_CERT_PATH's
            # ca.pem and HTTPS_PROXY reroute the engine's traffic (docker/docker-py#2433).
            client.api.trust_env = False
            return client
        return docker.from_env(timeout=timeout)
    except DockerException as exc:
        raise _unavailable(settings, exc) from None


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for a tcp:// DOCKER_HOST: the client certificate from DOCKER_CERT_PATH, and the
    engine's certificate checked against its ca.pem when DOCKER_TLS_VERIFY is on."""
    if settings.docker_cert_path is None:
        return bool(settings.docker_tls_verify)
    certs = settings.docker_cert_path
    return TLSConfig(
        client_cert=(str(certs / "cert.pem"), str(certs / "key.pem")),
        ca_cert=str(certs / "ca.pem") if settings.docker_tls_verify else None,
        verify=settings.docker_tls_verify,
    )


def ping_docker(settings: Settings) -> None:
    """Blocking: raise ServiceUnavailable unless the engine answers a ping."""
    client = docker_client(settings, timeout=5)
    try:
        client.ping()
    except (DockerException, requests.RequestException) as exc:  # a refused TLS handshake too
        raise _unavailable(settings, exc) from None
    finally:
        client.close()


def _unavailable(settings: Settings, exc: Exception) -> ServiceUnavailable:
    where = settings.docker_host or "the local socket (DOCKER_HOST unset)"
    return ServiceUnavailable("Docker", where, f"{type(exc).__name__}: {exc}", LOCAL_STACK_HINT)
