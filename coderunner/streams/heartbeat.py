"""A liveness signal for the processes without an HTTP port (worker, projector).

While the event loop runs, a file's modification time is renewed every few seconds; a Docker
HEALTHCHECK or a Kubernetes exec probe runs `coderunner health --heartbeat FILE`, which fails
once the file is older than it should be (a process stuck or gone).
"""

from __future__ import annotations

import time
from pathlib import Path

import mode

BEAT_EVERY_S = 5.0
STALE_AFTER_S = 30.0


class Heartbeat(mode.Service):
    def __init__(self, path: Path, every_s: float = BEAT_EVERY_S) -> None:
        self.path = path
        self.every_s = every_s
        super().__init__()

    async def on_started(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    @mode.Service.task
    async def _beat(self) -> None:
        while not self.should_stop:
            self.path.touch()
            await self.sleep(self.every_s)

    async def on_stop(self) -> None:
        self.path.unlink(missing_ok=True)  # a stopped process is not alive


def heartbeat_age(path: Path) -> float | None:
    """Seconds since the last beat, or None when there is no heartbeat file."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
