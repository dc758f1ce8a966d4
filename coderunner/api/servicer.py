"""The CodeRunner gRPC servicer: protobuf in, a plain function, protobuf out.

Errors are translated at one boundary (`_status`): each CoderunnerError names its gRPC status
(`grpc_status` in coderunner/errors.py); anything else is INTERNAL with no detail.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from coderunner.api import convert, executions
from coderunner.api.executions import Backends
from coderunner.api.metrics import ApiMetrics
from coderunner.api.queries import ExecutionFilter
from coderunner.errors import CoderunnerError, InvalidRequest
from coderunner.proto.coderunner.v1 import coderunner_pb2 as pb
from coderunner.proto.coderunner.v1 import coderunner_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
R = TypeVar("R")


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, CoderunnerError):
        await context.abort(grpc.StatusCode[exc.grpc_status], str(exc))
    log.exception("unexpected error in a gRPC call", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def _status(
    method: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except Exception as exc:
            await _abort(context, exc)
            raise  # unreachable: abort raises

    return wrapper


def _require_id(execution_id: str) -> str:
    if not execution_id:
        raise InvalidRequest("execution_id", "is required")
    return execution_id


class CodeRunnerServicer(pb_grpc.CodeRunnerServicer):
    def __init__(self, backends: Backends, metrics: ApiMetrics) -> None:
        self._b = backends
        self._metrics = metrics

    @_status
    async def SubmitExecution(
        self, request: pb.SubmitExecutionRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitExecutionResponse:
        try:
            execution_id = await executions.submit(self._b, convert.submission(request))
        except CoderunnerError:
            self._metrics.submission(request.language, "invalid")
            raise
        self._metrics.submission(request.language, "published")
        return pb.SubmitExecutionResponse(execution_id=execution_id)

    @_status
    async def GetExecution(
        self, request: pb.GetExecutionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Execution:
        row = await executions.get_execution(self._b, _require_id(request.execution_id))
        return convert.execution(row, details=True)

    @_status
    async def ListExecutions(
        self, request: pb.ListExecutionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListExecutionsResponse:
        filters = ExecutionFilter(
            statuses=convert.status_names(request.statuses),
            verdicts=convert.verdict_names(request.verdicts),
            languages=tuple(request.languages),
            submitted_from=convert.timestamp_or_none(request, "submitted_from"),
            submitted_to=convert.timestamp_or_none(request, "submitted_to"),
        )
        rows, token = await executions.list_executions(
            self._b, filters, request.page_size, request.page_token
        )
        return pb.ListExecutionsResponse(
            executions=[convert.execution(r) for r in rows], next_page_token=token
        )

    @_status
    async def GetExecutionLogs(
        self, request: pb.GetExecutionLogsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExecutionLogsResponse:
        rows, token = await executions.execution_logs(
            self._b,
            _require_id(request.execution_id),
            convert.stream_name(request.stream),
            request.step or None,
            request.page_size,
            request.page_token,
        )
        return pb.GetExecutionLogsResponse(
            chunks=[convert.log_chunk(r) for r in rows], next_page_token=token
        )

    async def WatchExecution(
        self, request: pb.WatchExecutionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExecutionEvent]:
        try:
            execution_id = _require_id(request.execution_id)
            async for event in executions.watch(self._b, execution_id):
                yield convert.event(event)
        except Exception as exc:  # noqa: BLE001 -- translated (and logged when unexpected)
            await _abort(context, exc)

    @_status
    async def CancelExecution(
        self, request: pb.CancelExecutionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelExecutionResponse:
        await executions.cancel(
            self._b, _require_id(request.execution_id), request.reason, by=context.peer()
        )
        return pb.CancelExecutionResponse()

    @_status
    async def ListLanguages(
        self, request: pb.ListLanguagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListLanguagesResponse:
        return pb.ListLanguagesResponse(
            languages=[convert.language(lang) for lang in executions.list_languages()]
        )
