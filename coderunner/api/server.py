"""The API's servers, built from Settings: gRPC (CodeRunner, health, reflection) and HTTP.

`ApiServers` owns every resource the API uses and starts/stops them in order; `ApiService`
runs it inside a Faust/mode worker (`coderunner serve`), `run_api` alone (`coderunner api`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import mode
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from coderunner.api.auth import BearerTokenInterceptor
from coderunner.api.executions import Backends
from coderunner.api.http import Check, build_http_app, readiness_checks
from coderunner.api.live import LiveEvents
from coderunner.api.metrics import ApiMetrics
from coderunner.api.servicer import CodeRunnerServicer
from coderunner.proto.coderunner.v1 import coderunner_pb2 as pb
from coderunner.proto.coderunner.v1 import coderunner_pb2_grpc as pb_grpc
from coderunner.schemas.codec import SchemaRegistry
from coderunner.settings import Settings
from coderunner.streams.client import ExecutionClient

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CodeRunner"].full_name


@dataclass(frozen=True, slots=True)
class Listening:
    grpc: str
    http: str
    tls: bool
    auth: bool

    def describe(self) -> str:
        scheme = "TLS" if self.tls else "plaintext"
        auth = "bearer tokens required" if self.auth else "no authentication"
        return f"gRPC {self.grpc} ({scheme}, {auth}); HTTP http://{self.http}"


class ApiServers:
    """`await ApiServers(settings).start()` ... `await servers.stop()`."""

    def __init__(self, settings: Settings, checks: dict[str, Check] | None = None) -> None:
        self.settings = settings
        self._checks = checks or readiness_checks(settings)
        self.metrics = ApiMetrics(settings)
        self._pool: asyncpg.Pool | None = None
        self._client: ExecutionClient | None = None
        self._live: LiveEvents | None = None
        self._grpc: grpc.aio.Server | None = None
        self._health: HealthServicer | None = None
        self._http: web.AppRunner | None = None
        self.listening: Listening | None = None

    async def start(self) -> ApiServers:
        try:
            return await self._start()
        except BaseException:
            await self.stop()  # whatever did start is closed again
            raise

    async def _start(self) -> ApiServers:
        s = self.settings
        # min_size=0: the API starts (and /ready says why) while PostgreSQL is down.
        self._pool = await asyncpg.create_pool(
            s.postgres_dsn.get_secret_value(), min_size=0, max_size=s.postgres_pool_size
        )
        self._client = ExecutionClient(s)
        await self._client.__aenter__()
        self._live = LiveEvents(self._client)
        backends = Backends(s, self._pool, self._client, self._live, SchemaRegistry())
        grpc_address = await self._start_grpc(backends)
        self._http = web.AppRunner(build_http_app(self._checks, self.metrics, self._pool))
        await self._http.setup()
        site = web.TCPSite(self._http, s.api_host, s.http_port)
        await site.start()
        self.listening = Listening(
            grpc=grpc_address,
            http=f"{s.api_host}:{s.http_port}",
            tls=s.grpc_tls_cert_file is not None,
            auth=bool(s.api_token_set()),
        )
        log.info("API listening: %s", self.listening.describe())
        return self

    async def _start_grpc(self, backends: Backends) -> str:
        s = self.settings
        tokens = s.api_token_set()
        server = grpc.aio.server(interceptors=[BearerTokenInterceptor(tokens)] if tokens else [])
        servicer = CodeRunnerServicer(backends, self.metrics)
        pb_grpc.add_CodeRunnerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        self._health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        address = f"{s.api_host}:{s.grpc_port}"
        if s.grpc_tls_cert_file is not None and s.grpc_tls_key_file is not None:
            credentials = grpc.ssl_server_credentials(
                [(s.grpc_tls_key_file.read_bytes(), s.grpc_tls_cert_file.read_bytes())]
            )
            server.add_secure_port(address, credentials)
        else:
            server.add_insecure_port(address)
        await server.start()
        for service in ("", SERVICE_NAME):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._grpc = server
        return address

    async def stop(self) -> None:
        """Say NOT_SERVING, let running calls finish within the grace period, then close."""
        grace = self.settings.api_shutdown_grace_seconds
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._live is not None:
            self._live.close()
        if self._grpc is not None:
            await self._grpc.stop(grace)
        if self._http is not None:
            await self._http.cleanup()
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
        await self.metrics.close()
        if self._pool is not None:
            await self._pool.close()


class ApiService(mode.Service):
    """The API as a mode service, so `coderunner serve` runs it beside the Faust worker."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.servers = ApiServers(settings)
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        await self.servers.start()

    async def on_stop(self) -> None:
        await self.servers.stop()


async def run_api(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully."""
    servers = await ApiServers(settings).start()
    assert servers.listening is not None
    print(f"coderunner api: {servers.listening.describe()}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("API stopping")
        with contextlib.suppress(Exception):
            await servers.stop()
