"""Turns a program's output, as it arrives, into bounded LogChunk events.

Output is published while the program runs: a chunk goes out when it is full or when it
has waited `flush_after` seconds, so a program that prints a line and then thinks for a
while is still seen live. Bytes are decoded incrementally, so a UTF-8 character split
across two reads is not mangled.
"""

from __future__ import annotations

import asyncio
import codecs
from typing import Any

from coderunner.domain import Stream
from coderunner.handlers.emitter import Emit
from coderunner.schemas import events as ev


class LogStreamer:
    def __init__(self, emit: Emit, step: str, chunk_bytes: int, flush_after: float = 0.1) -> None:
        self._emit = emit
        self._step = step
        self._chunk_bytes = chunk_bytes
        self._flush_after = flush_after
        self._buffers: dict[Stream, bytearray] = {
            Stream.STDOUT: bytearray(),
            Stream.STDERR: bytearray(),
        }
        self._decoders: dict[Stream, Any] = {
            s: codecs.getincrementaldecoder("utf-8")(errors="replace") for s in self._buffers
        }
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def write(self, stream: Stream, data: bytes) -> None:
        """The sandbox's output sink."""
        buffer = self._buffers[stream]
        buffer.extend(data)
        while len(buffer) >= self._chunk_bytes:
            piece = bytes(buffer[: self._chunk_bytes])
            del buffer[: self._chunk_bytes]
            await self._publish(stream, piece)
        if buffer and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._flush_after, self._flush_soon)

    async def system(self, message: str, truncated: bool = False) -> None:
        """A line from the service itself, shown in the log beside the program's output.

        `truncated` marks it as the step's last chunk after output was cut at the cap.
        """
        async with self._lock:
            await self._emit(
                ev.LogChunk,
                step=self._step,
                stream=Stream.SYSTEM,
                content=message + "\n",
                truncated=truncated,
            )

    async def close(self) -> None:
        """Flush what is left; wait for every chunk to be handed to the emitter."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            await asyncio.gather(*self._pending)
        for stream in self._buffers:
            await self._flush(stream, final=True)

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self._flush_all())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _flush_all(self) -> None:
        for stream in self._buffers:
            await self._flush(stream, final=False)

    async def _flush(self, stream: Stream, final: bool) -> None:
        buffer = self._buffers[stream]
        piece = bytes(buffer)
        buffer.clear()
        if piece or final:
            await self._publish(stream, piece, final=final)

    async def _publish(self, stream: Stream, data: bytes, final: bool = False) -> None:
        async with self._lock:
            text = self._decoders[stream].decode(data, final=final)
            if text:
                await self._emit(ev.LogChunk, step=self._step, stream=stream, content=text)
