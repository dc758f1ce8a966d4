"""The HTTP side of the API (aiohttp): /health (liveness), /ready (backends), /metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from coderunner.api.metrics import CONTENT_TYPE, ApiMetrics
from coderunner.errors import ServiceUnavailable
from coderunner.projections.database import ping_postgres
from coderunner.sandbox.docker_engine import ping_docker
from coderunner.settings import Settings
from coderunner.streams.probe import ping_kafka

READY_TIMEOUT_SECONDS = 6.0
Check = Callable[[], Awaitable[None]]


def readiness_checks(settings: Settings) -> dict[str, Check]:
    """One ping per backend the service needs; each raises ServiceUnavailable when down."""
    return {
        "kafka": lambda: ping_kafka(settings, timeout_ms=5000),
        "postgresql": lambda: ping_postgres(settings),
        "docker": lambda: asyncio.to_thread(ping_docker, settings),  # the docker SDK blocks
    }


async def check_all(checks: dict[str, Check]) -> dict[str, str]:
    """ "ok" or why not, per backend; all pinged at once."""

    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), READY_TIMEOUT_SECONDS)
        except ServiceUnavailable as exc:
            return f"unavailable: {exc.reason}"
        except TimeoutError:
            return f"unavailable: no answer within {READY_TIMEOUT_SECONDS:.0f} s"
        return "ok"

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    return dict(zip(checks, results, strict=True))


def build_http_app(
    checks: dict[str, Check], metrics: ApiMetrics, pool: asyncpg.Pool
) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        results = await check_all(checks)
        failed = sorted(name for name, result in results.items() if result != "ok")
        body = {"status": "ready" if not failed else "unavailable", "failed": failed, **results}
        return web.json_response(body, status=503 if failed else 200, dumps=json.dumps)

    async def prometheus(request: web.Request) -> web.Response:
        body = await metrics.render(pool)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", prometheus)
    return app
