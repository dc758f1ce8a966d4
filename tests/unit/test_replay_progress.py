"""A long `projections rebuild` says how far it got and how fast, on stderr, at most every few s."""

from __future__ import annotations

import pytest

from coderunner.cli import _Progress


def test_progress_lines_say_how_many_messages_and_how_fast(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = _Progress(every_s=0.0)
    progress({"messages": 120_000, "applied": 119_000, "skipped": 0, "parked": 1})
    err = capsys.readouterr().err
    assert err.startswith("projections: 120,000 messages replayed (") and err.endswith("/s)\n")


def test_progress_is_quiet_between_intervals(capsys: pytest.CaptureFixture[str]) -> None:
    progress = _Progress(every_s=3600.0)
    for n in range(1, 50):
        progress({"messages": n * 1000, "applied": 0, "skipped": 0, "parked": 0})
    assert capsys.readouterr().err == ""
