"""Server-side execution on a kernel: readiness probes, seed cells and notebook-http requests."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import ExecutionTimeout, KernelUnavailable
from app.kernels.channels import Channel
from app.kernels.wire import KernelMessage

if TYPE_CHECKING:
    from app.kernels.kernel import Kernel


@dataclass
class ExecutionResult:
    """What one execute_request produced, collected from iopub and the shell reply."""

    status: str = "ok"
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None  # execute_result data (a MIME bundle)
    displays: list[dict[str, Any]] = field(default_factory=list)  # display_data bundles, in order
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> str:
        return "".join(self.stdout)

    def add(self, message: KernelMessage) -> None:
        kind, content = message.msg_type, message.content
        if kind == "stream":
            (self.stdout if content.get("name") == "stdout" else self.stderr).append(
                str(content.get("text", ""))
            )
        elif kind == "execute_result":
            self.result = content.get("data") or {}
        elif kind == "display_data":
            self.displays.append(content.get("data") or {})
        elif kind == "error":
            self.status = "error"
            self.ename = str(content.get("ename", ""))
            self.evalue = str(content.get("evalue", ""))
            self.traceback = [str(line) for line in content.get("traceback", [])]


FIRST_PROBE_INTERVAL = 0.1  # seconds until an unanswered readiness probe is repeated; doubles each time
LAST_PROBE_INTERVAL = 1.0
FIRST_IDLE_GRACE = 0.1  # how long an answered probe's idle status may lag its reply; doubles each time
QUIET_REPLIES_ACCEPTED = 4  # answered probes without a status (0.1 + 0.2 + 0.4 + 0.8 s) mean ready
DEAD_POLLS = 2  # liveness polls in a row that must say "gone" before a starting kernel is given up


async def _within(future: asyncio.Future[Any], seconds: float) -> bool:
    """Wait for the future up to `seconds`; False if it is not done by then (it is then cancelled)."""
    try:
        async with asyncio.timeout(seconds):
            await future
    except TimeoutError:
        return False
    return True


class KernelExitedEarly(KernelUnavailable):
    """The kernel process ended before it ever answered: worth starting afresh (e.g. its port was taken)."""


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    """Fail a future and mark its exception as seen: a request waiting on its reply never awaits its
    idle status, and asyncio would otherwise log "exception was never retrieved" when it is collected."""
    if not future.done():
        future.set_exception(error)
        future.exception()


class _Pending:
    __slots__ = ("idle", "reply", "result")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.result = ExecutionResult()
        self.reply: asyncio.Future[KernelMessage] = loop.create_future()
        self.idle: asyncio.Future[None] = loop.create_future()


class Executor:
    """A private shell connection to one kernel for requests the gateway itself makes."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._pending: dict[str, _Pending] = {}
        self._identity = uuid.uuid4().hex.encode()
        self._shell = self._connect()
        kernel.add_listener(self)

    def _connect(self) -> Channel:
        info = self.kernel.connection_info
        return Channel(self.kernel.context, info, "shell", self._on_reply, self._identity)

    async def close(self) -> None:
        self.kernel.remove_listener(self)
        self._shell.close()
        self._fail_all("the kernel connection closed")

    def on_iopub(self, message: KernelMessage) -> None:
        if not self._pending:
            return
        pending = self._pending.get(message.parent_id)
        if pending is None:
            return
        if message.msg_type == "status":
            if message.content.get("execution_state") == "idle" and not pending.idle.done():
                pending.idle.set_result(None)
        else:
            pending.result.add(message)

    def on_lifecycle(self, event: str) -> None:
        if event in ("restarting", "dead", "restarted", "shutdown"):
            self._fail_all(f"the kernel {event}")
        elif event == "reconnect":  # the kernel moved: requests to the old address are lost
            self._fail_all("the kernel moved")
            self._shell.close()
            self._shell = self._connect()

    def _fail_all(self, reason: str) -> None:
        for pending in self._pending.values():
            for future in (pending.reply, pending.idle):
                _fail(future, KernelUnavailable(f"Kernel unavailable: {reason}"))
        self._pending.clear()

    def _on_reply(self, frames: list[bytes]) -> None:
        message = self.kernel.decode(frames, "shell")
        if message is None:
            return
        pending = self._pending.get(message.parent_id)
        if pending is not None and not pending.reply.done():
            pending.reply.set_result(message)

    def _send(self, msg_type: str, content: dict[str, Any], pending: _Pending) -> str:
        """Send a request whose reply, iopub output and idle status will be collected in `pending`."""
        parts = self.kernel.message_parts(msg_type, content)
        msg_id: str = json.loads(parts[0])["msg_id"]
        self._pending[msg_id] = pending
        try:
            self.kernel.send(self._shell, parts, [])
        except BaseException:
            self._pending.pop(msg_id, None)
            raise
        return msg_id

    async def _request(self, msg_type: str, content: dict[str, Any]) -> _Pending:
        """Send a request and wait for its reply and its idle status."""
        pending = _Pending(asyncio.get_running_loop())
        msg_id = self._send(msg_type, content, pending)
        try:
            await pending.reply
            await pending.idle
        finally:
            self._pending.pop(msg_id, None)
        return pending

    async def wait_ready(self, time_limit: float) -> None:
        """Probe with kernel_info_request until the kernel answers on shell *and* on iopub.

        A shell reply alone does not prove that the kernel's iopub SUB socket (shared by every client)
        is subscribed yet: a PUB drops what it publishes before then, so the first output after a start
        or restart could be lost to all clients (our SUB socket may reconnect up to 100 ms after the
        kernel's shell answers). The probe's idle status proves it; when it is missing, probe again at
        once. Unanswered probes are repeated at growing intervals, quickly at first (a
        kernel starts in a few hundred milliseconds; probes sent before it listens are queued, not
        lost). A kernel that answers but never publishes a status is accepted after a few replies.
        """
        loop = asyncio.get_running_loop()
        interval, idle_grace, quiet_replies = FIRST_PROBE_INTERVAL, FIRST_IDLE_GRACE, 0
        # A remote provisioner's liveness poll is a network round trip that can fail once on a busy
        # machine (gateway_provisioners gives it 10 ms by default): the kernel counts as gone when
        # two polls in a row say so.
        not_alive = 0
        async with asyncio.timeout(time_limit):
            while True:
                pending = _Pending(loop)
                msg_id = self._send("kernel_info_request", {}, pending)
                try:
                    if not await _within(pending.reply, interval):
                        not_alive = 0 if await self.kernel.manager.is_alive() else not_alive + 1
                        if not_alive >= DEAD_POLLS:
                            raise KernelExitedEarly("the kernel exited during startup")
                        interval = min(2 * interval, LAST_PROBE_INTERVAL)
                        continue
                    if await _within(pending.idle, idle_grace):
                        return
                    idle_grace *= 2
                    quiet_replies += 1
                    if quiet_replies >= QUIET_REPLIES_ACCEPTED:
                        return
                finally:
                    self._pending.pop(msg_id, None)

    async def execute(self, code: str, time_limit: float) -> ExecutionResult:
        """Run code; ExecutionTimeout after `time_limit` seconds, KernelUnavailable if the kernel dies."""
        content = {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        try:
            async with asyncio.timeout(time_limit):
                pending = await self._request("execute_request", content)
        except TimeoutError:
            raise ExecutionTimeout(f"The request did not finish within {time_limit:g} s") from None
        reply = pending.reply.result().content
        if reply.get("status") == "error" and pending.result.status != "error":
            pending.result.status = "error"
            pending.result.ename = str(reply.get("ename", ""))
            pending.result.evalue = str(reply.get("evalue", ""))
        elif reply.get("status") == "aborted":
            pending.result.status = "aborted"
        return pending.result
