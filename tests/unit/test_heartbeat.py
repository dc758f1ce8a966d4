"""`coderunner health --heartbeat FILE`: the worker's and projector's container healthcheck."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from coderunner.cli import main
from coderunner.streams.heartbeat import Heartbeat


def check(path: Path) -> int:
    return main(["health", "--heartbeat", str(path)])


def test_a_fresh_heartbeat_is_healthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    beat = tmp_path / "alive"
    beat.touch()
    assert check(beat) == 0
    assert "heartbeat:" in capsys.readouterr().out


def test_a_stale_or_missing_heartbeat_is_unhealthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    beat = tmp_path / "alive"
    assert check(beat) == 1
    assert "not started yet, or stopped" in capsys.readouterr().out
    beat.touch()
    old = time.time() - 120
    os.utime(beat, (old, old))
    assert check(beat) == 1
    assert "stuck" in capsys.readouterr().out


async def test_the_service_renews_the_file_while_it_runs_and_removes_it_on_stop(
    tmp_path: Path,
) -> None:
    beat = tmp_path / "run" / "alive"
    service = Heartbeat(beat, every_s=0.05)
    await service.start()
    try:
        first = beat.stat().st_mtime_ns
        await asyncio.sleep(0.3)
        assert beat.stat().st_mtime_ns > first
    finally:
        await service.stop()
    assert not beat.exists()
