"""All websocket sessions of one kernel: iopub fan-out, lifecycle notices, bounded replay of detached ones.

A session whose websocket closes is kept (detached, still collecting) only if its client can resume it,
that is if the client named a `session_id`; at most `Replay.sessions` per kernel (the oldest is evicted,
Jupyter Server keeps one) for `Replay.seconds`, and their buffered messages together stay under
`Replay.bytes` (the oldest messages go first). Every other session is closed the moment it ends, so
connection churn cannot pile up sockets.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.kernels.bridge import ChannelSession, WebSocketLike

if TYPE_CHECKING:
    from app.kernels.kernel import Kernel
    from app.kernels.wire import KernelMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replay:
    """How much of a disconnected session a kernel keeps for a reconnect with the same session_id."""

    seconds: float = 60.0
    sessions: int = 1
    bytes: int = 64 * 1024 * 1024

    @property
    def enabled(self) -> bool:
        return self.seconds > 0 and self.sessions > 0 and self.bytes > 0


class ChannelHub:
    """The sessions of one kernel; `Kernel` feeds it every iopub message and lifecycle event."""

    def __init__(self, kernel: Kernel, replay: Replay) -> None:
        self.kernel = kernel
        self.replay = replay
        self._live: set[ChannelSession] = set()
        self._detached: dict[str, ChannelSession] = {}  # by session_id, oldest first
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connections(self) -> int:
        """Open websockets (one cut off for reading too slowly no longer counts, though it is closing)."""
        return sum(1 for s in self._live if s.websocket is not None)

    @property
    def detached(self) -> int:
        return len(self._detached)

    def _sessions(self) -> list[ChannelSession]:
        return [*self._live, *self._detached.values()]

    def own(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- from the kernel ------------------------------------------------------------------------
    def on_iopub(self, message: KernelMessage) -> None:
        for session in self._sessions():
            session.push(message)
        self.trim()

    def on_lifecycle(self, event: str) -> None:
        if event in ("restarting", "dead"):
            for session in self._sessions():
                session.push(self.kernel.synthetic("iopub", "status", {"execution_state": event}))
                session.fail_pending(f"the kernel died ({event})")
        elif event == "restarted":  # a REST restart: clients see restarting, then the probe's idle
            for session in self._sessions():
                session.push(self.kernel.synthetic("iopub", "status", {"execution_state": "restarting"}))
                session.fail_pending("the kernel was restarted")
        elif event == "reconnect":  # the kernel moved: every session's sockets follow it
            for session in self._sessions():
                session.reconnect()
        self.trim()

    def trim(self) -> None:
        """Hold detached sessions' buffers under the kernel's replay byte cap, dropping the oldest first."""
        if not self._detached:
            return
        excess = sum(s.buffered for s in self._detached.values()) - self.replay.bytes
        for session in self._detached.values():
            if excess <= 0:
                return
            excess -= session.drop_oldest(excess)

    # -- websockets -----------------------------------------------------------------------------
    def checkout(self, session_id: str | None, websocket: WebSocketLike) -> ChannelSession:
        """The session for a new websocket: the detached one with this id (replay), else a new one."""
        session = self._detached.pop(session_id, None) if session_id else None
        if session is None:
            session = ChannelSession(self, session_id)
        session.attach(websocket)
        self._live.add(session)
        return session

    def release(self, session: ChannelSession) -> None:
        """The websocket of `session` is gone: keep the session for a resume, or close it now."""
        self._live.discard(session)
        if session.closed:
            return
        session_id = session.session_id
        if session_id is None or not self.replay.enabled:
            session.close()
            return
        previous = self._detached.pop(session_id, None)
        if previous is not None:  # two sockets shared the id: the one that left last is resumed
            previous.close()
        self._detached[session_id] = session
        session.detach(self.replay.seconds, self._expire)
        while len(self._detached) > self.replay.sessions:
            oldest = self._detached.pop(next(iter(self._detached)))
            log.info(
                "kernel %s keeps %d detached session(s); dropping the oldest",
                self.kernel.id,
                self.replay.sessions,
            )
            oldest.close()
        self.trim()

    def _expire(self, session: ChannelSession) -> None:
        key = session.session_id
        if key is not None and self._detached.get(key) is session:
            del self._detached[key]
        session.close()

    async def close(self) -> None:
        """Close every session (kernel shutdown): their websockets get 1000, their sockets are closed."""
        sessions = self._sessions()
        self._live.clear()
        self._detached.clear()
        for session in sessions:
            session.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
