"""What happens to one submission: validate -> prepare -> compile -> run/test -> complete.

Every step is announced by events. The pipeline talks only to the ports (a sandbox and an
event emitter), so the same code runs behind Faust, in tests and in the benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from coderunner.domain import AppliedLimits, Verdict
from coderunner.errors import InvalidSubmission
from coderunner.handlers.emitter import Emit
from coderunner.handlers.logs import LogStreamer
from coderunner.handlers.ports import ProcessResult, Sandbox, SandboxSession
from coderunner.handlers.validation import ExecutionPlan, plan_execution
from coderunner.handlers.verdicts import describe, overall_verdict, run_verdict
from coderunner.languages import Language
from coderunner.schemas import events as ev
from coderunner.settings import Settings

# Expected/actual output kept in a TestCompleted event: enough to show a diff, bounded.
_TEST_TEXT_LIMIT = 4096


@dataclass
class _Outcome:
    """What the run steps found, folded into the completion event."""

    verdicts: list[Verdict] = field(default_factory=list)
    last: ProcessResult | None = None
    message: str | None = None
    tests_passed: int = 0
    compile_time_us: int | None = None
    run_time_us: int = 0


@dataclass
class _Execution:
    """One attempt in the sandbox: what every step needs."""

    submission: ev.ExecutionSubmitted
    plan: ExecutionPlan
    session: SandboxSession
    emit: Emit
    outcome: _Outcome = field(default_factory=_Outcome)


class ExecutionPipeline:
    """Runs one attempt of one submission, emitting every step."""

    def __init__(
        self, sandbox: Sandbox, catalogue: dict[str, Language], settings: Settings
    ) -> None:
        self._sandbox = sandbox
        self._catalogue = catalogue
        self._settings = settings

    async def run(
        self, submission: ev.ExecutionSubmitted, emit: Emit, worker: str
    ) -> Verdict | None:
        """One attempt. Returns the verdict, or None when the submission was rejected.

        Sandbox infrastructure errors propagate: the caller retries them as a new attempt.
        """
        started = time.monotonic()
        plan = await self._validate(submission, emit)
        if plan is None:
            return None
        await emit(ev.StepStarted, step="prepare")
        session = await self._sandbox.open(
            plan.language, plan.files, _container_limits(plan), execution_id=submission.execution_id
        )
        try:
            await emit(
                ev.ExecutionAccepted,
                language=plan.language.id,
                language_version=plan.language.version,
                image=session.info.image,
                image_digest=session.info.image_digest,
                limits=plan.limits,
                compile_limits=plan.compile_limits,
                worker=worker,
            )
            await emit(ev.StepCompleted, **_step_done("prepare", started))
            run = _Execution(submission, plan, session, emit)
            outcome = await self._compile_and_run(run)
            verdict = overall_verdict(outcome.verdicts)
            # Announced before the container is removed: removal is off the user's wait.
            await emit(
                ev.ExecutionCompleted, **_completion(submission, outcome, verdict, started, session)
            )
        finally:
            await session.close()
        return verdict

    async def _validate(
        self, submission: ev.ExecutionSubmitted, emit: Emit
    ) -> ExecutionPlan | None:
        started = time.monotonic()
        await emit(ev.StepStarted, step="validate")
        try:
            plan = plan_execution(submission, self._catalogue, self._settings)
        except InvalidSubmission as exc:
            await emit(ev.StepCompleted, **_step_done("validate", started, failed=str(exc)))
            await emit(ev.ExecutionRejected, field=exc.field, reason=exc.rule)
            return None
        await emit(ev.StepCompleted, **_step_done("validate", started))
        return plan

    async def _compile_and_run(self, run: _Execution) -> _Outcome:
        language, outcome = run.plan.language, run.outcome
        if language.compile is not None:
            argv = [*language.compile, *run.submission.compiler_options]
            started = time.monotonic()
            result = await self._step(run, "compile", argv, b"", run.plan.compile_limits)
            outcome.compile_time_us = _elapsed_us(started)
            if not result.succeeded:
                outcome.verdicts.append(Verdict.COMPILATION_ERROR)
                outcome.last = result
                outcome.message = f"compilation failed: {describe(result, Verdict.RUNTIME_ERROR)}"
                return outcome
        if not run.submission.tests:
            await self._run_once(run)
        for index, test in enumerate(run.submission.tests):
            await self._run_test(run, index, test)
        return outcome

    async def _run_once(self, run: _Execution) -> None:
        result = await self._run_program(run, "run", run.submission.stdin)
        verdict = run_verdict(result, "", None, exact=True)
        run.outcome.verdicts.append(verdict)
        run.outcome.last = result
        run.outcome.message = describe(result, verdict)

    async def _run_test(self, run: _Execution, index: int, test: ev.TestCase) -> None:
        step, outcome = f"test-{index + 1}", run.outcome
        result = await self._run_program(run, step, test.input)
        actual = result.stdout.decode(errors="replace")
        exact = run.submission.comparison is ev.Comparison.EXACT
        verdict = run_verdict(result, actual, test.expected_output, exact)
        outcome.verdicts.append(verdict)
        outcome.tests_passed += verdict is Verdict.ACCEPTED
        failed = verdict is not Verdict.ACCEPTED
        if outcome.message is None and (failed or outcome.last is None):
            # The completion reports the first failing test (or the first test, if all pass).
            outcome.last = result
            outcome.message = f"{step}: {describe(result, verdict)}" if failed else None
        await run.emit(
            ev.TestCompleted,
            test_index=index,
            name=test.name,
            verdict=verdict,
            input=test.input[:_TEST_TEXT_LIMIT],
            expected_output=test.expected_output[:_TEST_TEXT_LIMIT],
            actual_output=actual[:_TEST_TEXT_LIMIT],
            output_truncated=len(actual) > _TEST_TEXT_LIMIT or result.output_limit_exceeded,
            exit_code=result.exit_code,
            signal=result.signal,
            time_ms=result.wall_time_ms,
            peak_memory_kb=result.peak_memory_kb,
        )

    async def _run_program(self, run: _Execution, step: str, stdin: str) -> ProcessResult:
        """The program itself (not the compiler), timed into the outcome's run time."""
        started = time.monotonic()
        argv = [*run.plan.language.run, *run.submission.args]
        result = await self._step(run, step, argv, stdin.encode(), run.plan.limits)
        run.outcome.run_time_us += _elapsed_us(started)
        return result

    async def _step(
        self, run: _Execution, step: str, argv: list[str], stdin: bytes, limits: AppliedLimits
    ) -> ProcessResult:
        """One process in the sandbox as a step: started, live log chunks, completed."""
        started = time.monotonic()
        await run.emit(ev.StepStarted, step=step)
        logs = LogStreamer(run.emit, step, self._settings.sandbox_log_chunk_bytes)
        try:
            result = await run.session.execute(argv, stdin, limits, logs.write)
        finally:
            await logs.close()
        if result.output_limit_exceeded:
            await logs.system(
                f"output limit of {limits.output_bytes} bytes exceeded; the run was stopped",
                truncated=True,
            )
        failed = None if result.succeeded else describe(result, Verdict.RUNTIME_ERROR)
        await run.emit(
            ev.StepCompleted,
            **_step_done(step, started, failed=failed),
            exit_code=result.exit_code,
            signal=result.signal,
        )
        return result


def _completion(
    submission: ev.ExecutionSubmitted,
    outcome: _Outcome,
    verdict: Verdict,
    started: float,
    session: SandboxSession,
) -> dict[str, object]:
    last = outcome.last
    return {
        "verdict": verdict,
        "message": outcome.message,
        "exit_code": last.exit_code if last else None,
        "signal": last.signal if last else None,
        "tests_passed": outcome.tests_passed,
        "tests_total": len(submission.tests),
        "duration_us": _elapsed_us(started),
        "compile_time_us": outcome.compile_time_us,
        "run_time_us": outcome.run_time_us,
        "peak_memory_kb": last.peak_memory_kb if last else None,
        "image": session.info.image,
        "image_digest": session.info.image_digest,
    }


def _container_limits(plan: ExecutionPlan) -> AppliedLimits:
    """The container must fit both the compiler and the program."""
    if plan.language.compile is None:
        return plan.limits
    run, build = plan.limits, plan.compile_limits
    return AppliedLimits(
        wall_time_ms=max(run.wall_time_ms, build.wall_time_ms),
        cpu_time_ms=max(run.cpu_time_ms, build.cpu_time_ms),
        memory_mb=max(run.memory_mb, build.memory_mb),
        processes=max(run.processes, build.processes),
        output_bytes=max(run.output_bytes, build.output_bytes),
    )


def _elapsed_us(started: float) -> int:
    return int((time.monotonic() - started) * 1_000_000)


def _step_done(step: str, started: float, failed: str | None = None) -> dict[str, object]:
    return {
        "step": step,
        "status": ev.StepStatus.FAILED if failed else ev.StepStatus.SUCCEEDED,
        "duration_us": _elapsed_us(started),
        "message": failed,
    }
