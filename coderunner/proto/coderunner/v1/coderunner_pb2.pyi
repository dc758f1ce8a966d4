import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecutionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATUS_UNSPECIFIED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_QUEUED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_RUNNING: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_COMPLETED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_REJECTED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_CANCELLED: _ClassVar[ExecutionStatus]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ACCEPTED: _ClassVar[Verdict]
    VERDICT_WRONG_ANSWER: _ClassVar[Verdict]
    VERDICT_COMPILATION_ERROR: _ClassVar[Verdict]
    VERDICT_RUNTIME_ERROR: _ClassVar[Verdict]
    VERDICT_TIME_LIMIT_EXCEEDED: _ClassVar[Verdict]
    VERDICT_MEMORY_LIMIT_EXCEEDED: _ClassVar[Verdict]
    VERDICT_OUTPUT_LIMIT_EXCEEDED: _ClassVar[Verdict]
    VERDICT_INTERNAL_ERROR: _ClassVar[Verdict]

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATUS_UNSPECIFIED: _ClassVar[StepStatus]
    STEP_STATUS_RUNNING: _ClassVar[StepStatus]
    STEP_STATUS_SUCCEEDED: _ClassVar[StepStatus]
    STEP_STATUS_FAILED: _ClassVar[StepStatus]
    STEP_STATUS_SKIPPED: _ClassVar[StepStatus]

class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_UNSPECIFIED: _ClassVar[Stream]
    STREAM_STDOUT: _ClassVar[Stream]
    STREAM_STDERR: _ClassVar[Stream]
    STREAM_SYSTEM: _ClassVar[Stream]

class Comparison(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPARISON_UNSPECIFIED: _ClassVar[Comparison]
    COMPARISON_TRIMMED: _ClassVar[Comparison]
    COMPARISON_EXACT: _ClassVar[Comparison]
EXECUTION_STATUS_UNSPECIFIED: ExecutionStatus
EXECUTION_STATUS_QUEUED: ExecutionStatus
EXECUTION_STATUS_RUNNING: ExecutionStatus
EXECUTION_STATUS_COMPLETED: ExecutionStatus
EXECUTION_STATUS_REJECTED: ExecutionStatus
EXECUTION_STATUS_CANCELLED: ExecutionStatus
VERDICT_UNSPECIFIED: Verdict
VERDICT_ACCEPTED: Verdict
VERDICT_WRONG_ANSWER: Verdict
VERDICT_COMPILATION_ERROR: Verdict
VERDICT_RUNTIME_ERROR: Verdict
VERDICT_TIME_LIMIT_EXCEEDED: Verdict
VERDICT_MEMORY_LIMIT_EXCEEDED: Verdict
VERDICT_OUTPUT_LIMIT_EXCEEDED: Verdict
VERDICT_INTERNAL_ERROR: Verdict
STEP_STATUS_UNSPECIFIED: StepStatus
STEP_STATUS_RUNNING: StepStatus
STEP_STATUS_SUCCEEDED: StepStatus
STEP_STATUS_FAILED: StepStatus
STEP_STATUS_SKIPPED: StepStatus
STREAM_UNSPECIFIED: Stream
STREAM_STDOUT: Stream
STREAM_STDERR: Stream
STREAM_SYSTEM: Stream
COMPARISON_UNSPECIFIED: Comparison
COMPARISON_TRIMMED: Comparison
COMPARISON_EXACT: Comparison

class SourceFile(_message.Message):
    __slots__ = ("name", "content")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    content: str
    def __init__(self, name: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class TestCase(_message.Message):
    __slots__ = ("name", "input", "expected_output")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    input: str
    expected_output: str
    def __init__(self, name: _Optional[str] = ..., input: _Optional[str] = ..., expected_output: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("wall_time_ms", "cpu_time_ms", "memory_mb", "processes", "output_bytes")
    WALL_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    wall_time_ms: int
    cpu_time_ms: int
    memory_mb: int
    processes: int
    output_bytes: int
    def __init__(self, wall_time_ms: _Optional[int] = ..., cpu_time_ms: _Optional[int] = ..., memory_mb: _Optional[int] = ..., processes: _Optional[int] = ..., output_bytes: _Optional[int] = ...) -> None: ...

class AppliedLimits(_message.Message):
    __slots__ = ("wall_time_ms", "cpu_time_ms", "memory_mb", "processes", "output_bytes")
    WALL_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    wall_time_ms: int
    cpu_time_ms: int
    memory_mb: int
    processes: int
    output_bytes: int
    def __init__(self, wall_time_ms: _Optional[int] = ..., cpu_time_ms: _Optional[int] = ..., memory_mb: _Optional[int] = ..., processes: _Optional[int] = ..., output_bytes: _Optional[int] = ...) -> None: ...

class SubmitExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "language", "source", "extra_files", "stdin", "compiler_options", "args", "tests", "limits", "comparison", "client")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FILES_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    COMPILER_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    language: str
    source: str
    extra_files: _containers.RepeatedCompositeFieldContainer[SourceFile]
    stdin: str
    compiler_options: _containers.RepeatedScalarFieldContainer[str]
    args: _containers.RepeatedScalarFieldContainer[str]
    tests: _containers.RepeatedCompositeFieldContainer[TestCase]
    limits: Limits
    comparison: Comparison
    client: str
    def __init__(self, execution_id: _Optional[str] = ..., language: _Optional[str] = ..., source: _Optional[str] = ..., extra_files: _Optional[_Iterable[_Union[SourceFile, _Mapping]]] = ..., stdin: _Optional[str] = ..., compiler_options: _Optional[_Iterable[str]] = ..., args: _Optional[_Iterable[str]] = ..., tests: _Optional[_Iterable[_Union[TestCase, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., comparison: _Optional[_Union[Comparison, str]] = ..., client: _Optional[str] = ...) -> None: ...

class SubmitExecutionResponse(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("name", "status", "started_at", "completed_at", "duration_us", "exit_code", "signal", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: StepStatus
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    duration_us: int
    exit_code: int
    signal: int
    message: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[StepStatus, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_us: _Optional[int] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class TestResult(_message.Message):
    __slots__ = ("index", "name", "verdict", "input", "expected_output", "actual_output", "output_truncated", "exit_code", "signal", "time_ms", "peak_memory_kb")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_KB_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    verdict: Verdict
    input: str
    expected_output: str
    actual_output: str
    output_truncated: bool
    exit_code: int
    signal: int
    time_ms: int
    peak_memory_kb: int
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., input: _Optional[str] = ..., expected_output: _Optional[str] = ..., actual_output: _Optional[str] = ..., output_truncated: _Optional[bool] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., time_ms: _Optional[int] = ..., peak_memory_kb: _Optional[int] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("execution_id", "status", "attempt", "language", "language_version", "client", "submitted_at", "started_at", "completed_at", "verdict", "message", "reject_field", "exit_code", "signal", "tests_passed", "tests_total", "duration_us", "compile_time_us", "run_time_us", "peak_memory_kb", "image", "image_digest", "worker", "limits", "compile_limits", "steps", "test_results", "source")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    TESTS_PASSED_FIELD_NUMBER: _ClassVar[int]
    TESTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    COMPILE_TIME_US_FIELD_NUMBER: _ClassVar[int]
    RUN_TIME_US_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_KB_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    COMPILE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TEST_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    status: ExecutionStatus
    attempt: int
    language: str
    language_version: str
    client: str
    submitted_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    verdict: Verdict
    message: str
    reject_field: str
    exit_code: int
    signal: int
    tests_passed: int
    tests_total: int
    duration_us: int
    compile_time_us: int
    run_time_us: int
    peak_memory_kb: int
    image: str
    image_digest: str
    worker: str
    limits: AppliedLimits
    compile_limits: AppliedLimits
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    test_results: _containers.RepeatedCompositeFieldContainer[TestResult]
    source: str
    def __init__(self, execution_id: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus, str]] = ..., attempt: _Optional[int] = ..., language: _Optional[str] = ..., language_version: _Optional[str] = ..., client: _Optional[str] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., message: _Optional[str] = ..., reject_field: _Optional[str] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., tests_passed: _Optional[int] = ..., tests_total: _Optional[int] = ..., duration_us: _Optional[int] = ..., compile_time_us: _Optional[int] = ..., run_time_us: _Optional[int] = ..., peak_memory_kb: _Optional[int] = ..., image: _Optional[str] = ..., image_digest: _Optional[str] = ..., worker: _Optional[str] = ..., limits: _Optional[_Union[AppliedLimits, _Mapping]] = ..., compile_limits: _Optional[_Union[AppliedLimits, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., test_results: _Optional[_Iterable[_Union[TestResult, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ("statuses", "verdicts", "languages", "submitted_from", "submitted_to", "page_size", "page_token")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FROM_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_TO_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[ExecutionStatus]
    verdicts: _containers.RepeatedScalarFieldContainer[Verdict]
    languages: _containers.RepeatedScalarFieldContainer[str]
    submitted_from: _timestamp_pb2.Timestamp
    submitted_to: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[ExecutionStatus, str]]] = ..., verdicts: _Optional[_Iterable[_Union[Verdict, str]]] = ..., languages: _Optional[_Iterable[str]] = ..., submitted_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., submitted_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions", "next_page_token")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    next_page_token: str
    def __init__(self, executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("attempt", "chunk_index", "step", "stream", "content", "truncated", "occurred_at")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    chunk_index: int
    step: str
    stream: Stream
    content: str
    truncated: bool
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, attempt: _Optional[int] = ..., chunk_index: _Optional[int] = ..., step: _Optional[str] = ..., stream: _Optional[_Union[Stream, str]] = ..., content: _Optional[str] = ..., truncated: _Optional[bool] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetExecutionLogsRequest(_message.Message):
    __slots__ = ("execution_id", "stream", "step", "page_size", "page_token")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    stream: Stream
    step: str
    page_size: int
    page_token: str
    def __init__(self, execution_id: _Optional[str] = ..., stream: _Optional[_Union[Stream, str]] = ..., step: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetExecutionLogsResponse(_message.Message):
    __slots__ = ("chunks", "next_page_token")
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[LogChunk]
    next_page_token: str
    def __init__(self, chunks: _Optional[_Iterable[_Union[LogChunk, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchExecutionRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class ExecutionEvent(_message.Message):
    __slots__ = ("event_id", "execution_id", "attempt", "seq", "occurred_at", "submitted", "cancel_requested", "accepted", "rejected", "step_started", "step_completed", "log_chunk", "test_completed", "completed", "cancelled")
    class Submitted(_message.Message):
        __slots__ = ("language", "tests", "client")
        LANGUAGE_FIELD_NUMBER: _ClassVar[int]
        TESTS_FIELD_NUMBER: _ClassVar[int]
        CLIENT_FIELD_NUMBER: _ClassVar[int]
        language: str
        tests: int
        client: str
        def __init__(self, language: _Optional[str] = ..., tests: _Optional[int] = ..., client: _Optional[str] = ...) -> None: ...
    class CancelRequested(_message.Message):
        __slots__ = ("reason", "requested_by")
        REASON_FIELD_NUMBER: _ClassVar[int]
        REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
        reason: str
        requested_by: str
        def __init__(self, reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...
    class Accepted(_message.Message):
        __slots__ = ("language", "language_version", "image", "image_digest", "limits", "compile_limits", "worker")
        LANGUAGE_FIELD_NUMBER: _ClassVar[int]
        LANGUAGE_VERSION_FIELD_NUMBER: _ClassVar[int]
        IMAGE_FIELD_NUMBER: _ClassVar[int]
        IMAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
        LIMITS_FIELD_NUMBER: _ClassVar[int]
        COMPILE_LIMITS_FIELD_NUMBER: _ClassVar[int]
        WORKER_FIELD_NUMBER: _ClassVar[int]
        language: str
        language_version: str
        image: str
        image_digest: str
        limits: AppliedLimits
        compile_limits: AppliedLimits
        worker: str
        def __init__(self, language: _Optional[str] = ..., language_version: _Optional[str] = ..., image: _Optional[str] = ..., image_digest: _Optional[str] = ..., limits: _Optional[_Union[AppliedLimits, _Mapping]] = ..., compile_limits: _Optional[_Union[AppliedLimits, _Mapping]] = ..., worker: _Optional[str] = ...) -> None: ...
    class Rejected(_message.Message):
        __slots__ = ("field", "reason")
        FIELD_FIELD_NUMBER: _ClassVar[int]
        REASON_FIELD_NUMBER: _ClassVar[int]
        field: str
        reason: str
        def __init__(self, field: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
    class StepStarted(_message.Message):
        __slots__ = ("step",)
        STEP_FIELD_NUMBER: _ClassVar[int]
        step: str
        def __init__(self, step: _Optional[str] = ...) -> None: ...
    class StepCompleted(_message.Message):
        __slots__ = ("step", "status", "duration_us", "exit_code", "signal", "message")
        STEP_FIELD_NUMBER: _ClassVar[int]
        STATUS_FIELD_NUMBER: _ClassVar[int]
        DURATION_US_FIELD_NUMBER: _ClassVar[int]
        EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
        SIGNAL_FIELD_NUMBER: _ClassVar[int]
        MESSAGE_FIELD_NUMBER: _ClassVar[int]
        step: str
        status: StepStatus
        duration_us: int
        exit_code: int
        signal: int
        message: str
        def __init__(self, step: _Optional[str] = ..., status: _Optional[_Union[StepStatus, str]] = ..., duration_us: _Optional[int] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
    class TestCompleted(_message.Message):
        __slots__ = ("result",)
        RESULT_FIELD_NUMBER: _ClassVar[int]
        result: TestResult
        def __init__(self, result: _Optional[_Union[TestResult, _Mapping]] = ...) -> None: ...
    class Completed(_message.Message):
        __slots__ = ("verdict", "message", "exit_code", "signal", "tests_passed", "tests_total", "duration_us", "compile_time_us", "run_time_us", "peak_memory_kb", "image", "image_digest")
        VERDICT_FIELD_NUMBER: _ClassVar[int]
        MESSAGE_FIELD_NUMBER: _ClassVar[int]
        EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
        SIGNAL_FIELD_NUMBER: _ClassVar[int]
        TESTS_PASSED_FIELD_NUMBER: _ClassVar[int]
        TESTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
        DURATION_US_FIELD_NUMBER: _ClassVar[int]
        COMPILE_TIME_US_FIELD_NUMBER: _ClassVar[int]
        RUN_TIME_US_FIELD_NUMBER: _ClassVar[int]
        PEAK_MEMORY_KB_FIELD_NUMBER: _ClassVar[int]
        IMAGE_FIELD_NUMBER: _ClassVar[int]
        IMAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
        verdict: Verdict
        message: str
        exit_code: int
        signal: int
        tests_passed: int
        tests_total: int
        duration_us: int
        compile_time_us: int
        run_time_us: int
        peak_memory_kb: int
        image: str
        image_digest: str
        def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., message: _Optional[str] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., tests_passed: _Optional[int] = ..., tests_total: _Optional[int] = ..., duration_us: _Optional[int] = ..., compile_time_us: _Optional[int] = ..., run_time_us: _Optional[int] = ..., peak_memory_kb: _Optional[int] = ..., image: _Optional[str] = ..., image_digest: _Optional[str] = ...) -> None: ...
    class Cancelled(_message.Message):
        __slots__ = ("reason",)
        REASON_FIELD_NUMBER: _ClassVar[int]
        reason: str
        def __init__(self, reason: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    STEP_STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    LOG_CHUNK_FIELD_NUMBER: _ClassVar[int]
    TEST_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    execution_id: str
    attempt: int
    seq: int
    occurred_at: _timestamp_pb2.Timestamp
    submitted: ExecutionEvent.Submitted
    cancel_requested: ExecutionEvent.CancelRequested
    accepted: ExecutionEvent.Accepted
    rejected: ExecutionEvent.Rejected
    step_started: ExecutionEvent.StepStarted
    step_completed: ExecutionEvent.StepCompleted
    log_chunk: LogChunk
    test_completed: ExecutionEvent.TestCompleted
    completed: ExecutionEvent.Completed
    cancelled: ExecutionEvent.Cancelled
    def __init__(self, event_id: _Optional[str] = ..., execution_id: _Optional[str] = ..., attempt: _Optional[int] = ..., seq: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., submitted: _Optional[_Union[ExecutionEvent.Submitted, _Mapping]] = ..., cancel_requested: _Optional[_Union[ExecutionEvent.CancelRequested, _Mapping]] = ..., accepted: _Optional[_Union[ExecutionEvent.Accepted, _Mapping]] = ..., rejected: _Optional[_Union[ExecutionEvent.Rejected, _Mapping]] = ..., step_started: _Optional[_Union[ExecutionEvent.StepStarted, _Mapping]] = ..., step_completed: _Optional[_Union[ExecutionEvent.StepCompleted, _Mapping]] = ..., log_chunk: _Optional[_Union[LogChunk, _Mapping]] = ..., test_completed: _Optional[_Union[ExecutionEvent.TestCompleted, _Mapping]] = ..., completed: _Optional[_Union[ExecutionEvent.Completed, _Mapping]] = ..., cancelled: _Optional[_Union[ExecutionEvent.Cancelled, _Mapping]] = ...) -> None: ...

class CancelExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "reason")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    reason: str
    def __init__(self, execution_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelExecutionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLanguagesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Language(_message.Message):
    __slots__ = ("id", "name", "version", "compiled", "default_limits", "compile_limits")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPILED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LIMITS_FIELD_NUMBER: _ClassVar[int]
    COMPILE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    version: str
    compiled: bool
    default_limits: AppliedLimits
    compile_limits: AppliedLimits
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., compiled: _Optional[bool] = ..., default_limits: _Optional[_Union[AppliedLimits, _Mapping]] = ..., compile_limits: _Optional[_Union[AppliedLimits, _Mapping]] = ...) -> None: ...

class ListLanguagesResponse(_message.Message):
    __slots__ = ("languages",)
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedCompositeFieldContainer[Language]
    def __init__(self, languages: _Optional[_Iterable[_Union[Language, _Mapping]]] = ...) -> None: ...
