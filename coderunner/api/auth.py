"""Optional bearer-token authentication for the gRPC API (a server interceptor).

`authorization: Bearer <token>` must carry one of API_TOKENS; the standard health service
stays open so orchestrators can probe without a secret. Tokens are compared in constant time
and never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

OPEN_SERVICES = ("/grpc.health.v1.Health/",)


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def token_accepted(token: str | None, tokens: frozenset[str]) -> bool:
    if token is None:
        return False
    # Check every token (no early exit): the time taken says nothing about which matched.
    matches = [hmac.compare_digest(token.encode(), t.encode()) for t in tokens]
    return any(matches)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, tokens: frozenset[str]) -> None:
        self._tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if details.method.startswith(OPEN_SERVICES) or handler is None:
            return handler
        if token_accepted(bearer_token(details.invocation_metadata), self._tokens):
            return handler
        return _refusing(handler)


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that answers UNAUTHENTICATED."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "a valid bearer token is required (metadata `authorization: Bearer <token>`)",
        )

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **kwargs)
    return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)
