"""One running kernel: its jupyter_client manager, message signing, iopub monitor and activity.

Nothing here assumes a local child process: signals, liveness and shutdown go through the kernel's
provisioner, and a restart may move the kernel (remote provisioners launch it anew, on another host or
pod): its connection info is then read again and every socket follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from jupyter_client.session import Session

from app.errors import KernelUnavailable
from app.kernels.channels import Channel
from app.kernels.executor import Executor
from app.kernels.hub import ChannelHub, Replay
from app.kernels.wire import DELIMITER, KernelMessage, WireError, parse_header, split_frames

if TYPE_CHECKING:
    import zmq

log = logging.getLogger(__name__)

# Requests the gateway makes on its own behalf (readiness, usage): the kernel's busy/idle status for
# them is not user activity, as in jupyter_server's untracked_message_types, so they never delay culling,
# and it does not change the kernel's execution state.
UNTRACKED_PARENTS = (b'"kernel_info_request"', b'"usage_request"')
_ADDRESS_KEYS = (
    *("transport", "ip", "key"),
    *(f"{channel}_port" for channel in ("shell", "iopub", "stdin", "control", "hb")),
)


@dataclass(frozen=True)
class Deadlines:
    """How long one kernel's lifecycle steps may take, in seconds (FASTKG_*_TIMEOUT settings)."""

    interrupt: float = 10.0  # a signal, or one request to a remote provisioner
    shutdown: float = 15.0  # jupyter_client's grace period (5 s) and kill, or a remote launcher's teardown
    start: float = 60.0  # a restart: the kernel is launched again, possibly elsewhere


class IOPubListener(Protocol):
    """Something that wants every iopub message of a kernel (the channel hub, server-side executors)."""

    def on_iopub(self, message: KernelMessage) -> None: ...

    def on_lifecycle(self, event: str) -> None: ...


class Kernel:
    """A started kernel. Owns one iopub SUB socket whose messages feed activity and every listener."""

    def __init__(
        self,
        kernel_id: str,
        name: str,
        manager: Any,
        context: zmq.Context[Any],
        *,
        replay: Replay | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.id = kernel_id
        self.deadlines = deadlines or Deadlines()
        self.name = name
        self.manager = manager
        self.context = context
        self.session: Session = manager.session
        self._activity = time.time()
        self.started = self._activity
        self.restarts = 0  # automatic and requested
        self.owner: str | None = None  # KERNEL_USERNAME from the start request's env
        self.tenant: str | None = None  # whom a listed kernel counts against (owner, else the gateway's user)
        self.execution_state = "starting"
        self.leased_ports: tuple[int, ...] = ()  # from the gateway's PortPool, returned once it is gone
        self._listeners: list[IOPubListener] = []
        self._iopub: Channel | None = None
        self._address: tuple[Any, ...] = ()
        self._executor: Executor | None = None
        self._followers: set[asyncio.Task[None]] = set()
        self._restarted = asyncio.Event()  # set when the manager finished a restart
        # held by restart, interrupt and shutdown, so that one kernel's lifecycle steps never overlap
        self.lock = asyncio.Lock()
        self.hub = ChannelHub(self, replay or Replay())
        self.add_listener(self.hub)

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        """Start monitoring iopub. Call once the kernel's connection info is known."""
        info = self.connection_info
        self._address = _address(info)
        self._iopub = Channel(self.context, info, "iopub", self._on_iopub)
        self._executor = Executor(self)

    def reconnect(self) -> bool:
        """Read the connection info again (after a restart); if the kernel moved, reconnect every socket:
        the iopub monitor here, then (by the "reconnect" event) the executor and every channel session."""
        info = self.connection_info
        address = _address(info)
        if self._iopub is None or address == self._address:
            return False
        log.info("kernel %s moved to %s; reconnecting its sockets", self.id, info.get("ip"))
        self._address = address
        self._iopub.close()
        self._iopub = Channel(self.context, info, "iopub", self._on_iopub)
        self.notify("reconnect")
        return True

    def watch_restarts(self) -> None:
        """Hear of the restarter's automatic restarts. Call once the manager's restarter runs (it keeps
        callbacks only once it exists)."""
        self.manager.add_restart_callback(self._on_restart, "restart")
        self.manager.add_restart_callback(self._on_dead, "dead")
        if hasattr(self.manager, "after_restart"):
            self.manager.after_restart.append(self._restarted.set)

    @property
    def executor(self) -> Executor:
        """The gateway's own shell connection to this kernel (readiness, seeding, notebook-http)."""
        if self._executor is None:
            raise RuntimeError("kernel not opened")
        return self._executor

    async def close(self) -> None:
        """Stop monitoring and close every socket this kernel's relays opened."""
        with contextlib.suppress(Exception):
            self.manager.remove_restart_callback(self._on_restart, "restart")
            self.manager.remove_restart_callback(self._on_dead, "dead")
        for task in self._followers:
            task.cancel()
        await asyncio.gather(*self._followers, return_exceptions=True)
        await self.hub.close()
        if self._executor is not None:
            await self._executor.close()
        if self._iopub is not None:
            self._iopub.close()

    async def interrupt(self) -> None:
        """Interrupt the kernel (signal or interrupt_request, as its kernelspec says), within a deadline."""
        try:
            async with asyncio.timeout(self.deadlines.interrupt):
                await self.manager.interrupt_kernel()
        except TimeoutError:
            raise KernelUnavailable("The kernel did not accept the interrupt in time") from None

    async def shutdown(self) -> bool:
        """Stop the kernel: politely, then by force. True once its provisioner confirms it is gone; a
        remote launcher can outlive shutdown_kernel by many seconds, so that is waited for too."""
        provisioner = self.manager.provisioner
        try:
            async with asyncio.timeout(self.deadlines.shutdown):
                await self.manager.shutdown_kernel(now=False)
        except Exception as exc:
            log.warning("kernel %s did not shut down cleanly (%r); killing it", self.id, exc)
            try:
                async with asyncio.timeout(self.deadlines.interrupt):
                    await self.manager.shutdown_kernel(now=True)
            except Exception as kill_exc:
                log.error("kernel %s could not be killed: %r", self.id, kill_exc)
                return False
        return await self._confirm_gone(provisioner)

    async def _confirm_gone(self, provisioner: Any) -> bool:
        if provisioner is None:
            return True
        try:
            async with asyncio.timeout(self.deadlines.shutdown):
                while True:
                    if await provisioner.poll() is not None:
                        break
                    await asyncio.sleep(0.2)
        except Exception as exc:
            kind = type(provisioner).__name__
            log.error("kernel %s: %s does not confirm the kernel is gone (%r)", self.id, kind, exc)
            return False
        return True

    @property
    def connection_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.manager.get_connection_info(session=False)
        return info

    def notify(self, event: str) -> None:
        """Tell listeners about a lifecycle event: restarting, dead, restarted, reconnect, shutdown."""
        if event in ("restarting", "dead"):
            self.execution_state = event
        for listener in tuple(self._listeners):
            listener.on_lifecycle(event)

    def _on_restart(self) -> None:
        log.warning("kernel %s died; restarting", self.id)
        self.restarts += 1
        self.notify("restarting")
        # The restarter calls restart_kernel right after this callback; follow it to the new kernel.
        self._restarted.clear()
        task = asyncio.get_running_loop().create_task(self._follow_restart())
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)

    async def _follow_restart(self) -> None:
        """Once the restarter's restart is done: reconnect if the kernel moved and probe it, so that
        clients (who saw `restarting`) see `idle` and the gateway's own requests work again."""
        try:
            async with asyncio.timeout(self.deadlines.start):
                await self._restarted.wait()
                self.reconnect()
                await self.executor.wait_ready(self.deadlines.start)
        except Exception as exc:
            log.warning("kernel %s: no usable kernel after its restart (%r)", self.id, exc)
            return
        self.execution_state = "idle"

    def _on_dead(self) -> None:
        log.error("kernel %s died and could not be restarted", self.id)
        self.notify("dead")

    def touch(self) -> None:
        self._activity = time.time()

    @property
    def last_activity(self) -> datetime:
        return datetime.fromtimestamp(self._activity, UTC)

    # -- listeners ------------------------------------------------------------------------------
    def add_listener(self, listener: IOPubListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: IOPubListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    @property
    def connections(self) -> int:
        return self.hub.connections

    # -- messages -------------------------------------------------------------------------------
    def decode(self, frames: list[bytes], channel: str) -> KernelMessage | None:
        """Verify a kernel message's signature and wrap it; None (logged) for anything invalid."""
        try:
            signature, parts = split_frames(frames)
        except WireError as exc:
            log.warning("dropping malformed %s message from kernel %s: %s", channel, self.id, exc)
            return None
        if self.session.auth is not None and not hmac.compare_digest(self.session.sign(parts[:4]), signature):
            log.warning("dropping %s message with a bad signature from kernel %s", channel, self.id)
            return None
        return KernelMessage(channel, parts, parse_header(parts[0]))

    def send(self, channel: Channel, parts: list[bytes], buffers: list[bytes]) -> None:
        """Sign and send a message (header, parent, metadata, content as JSON bytes) on a kernel channel."""
        self.touch()
        channel.send([DELIMITER, self.session.sign(parts), *parts, *buffers])

    def message_parts(
        self, msg_type: str, content: dict[str, Any], parent: dict[str, Any] | None = None
    ) -> list[bytes]:
        """Build a new message from this gateway, as JSON parts ready to sign or relay."""
        msg = self.session.msg(msg_type, content, parent=parent or {})
        pack: Callable[[object], bytes] = self.session.pack
        return [pack(msg["header"]), pack(msg["parent_header"]), pack({}), pack(content)]

    def synthetic(
        self, channel: str, msg_type: str, content: dict[str, Any], parent: dict[str, Any] | None = None
    ) -> KernelMessage:
        parts = self.message_parts(msg_type, content, parent)
        return KernelMessage(channel, parts, parse_header(parts[0]))

    def _on_iopub(self, frames: list[bytes]) -> None:
        message = self.decode(frames, "iopub")
        if message is None:
            return
        is_status = message.msg_type == "status"
        # The status of the gateway's own probes is neither activity nor the kernel's state: a usage
        # probe on control would otherwise show a running cell as idle, or an idle kernel as busy.
        if not (is_status and any(p in message.parts[1] for p in UNTRACKED_PARENTS)):
            self.touch()
            state = message.content.get("execution_state") if is_status else None
            if isinstance(state, str):
                self.execution_state = state
        for listener in tuple(self._listeners):
            listener.on_iopub(message)


def _address(info: dict[str, Any]) -> tuple[Any, ...]:
    """Where a kernel is and how it signs: what a restart may change."""
    return tuple(info.get(key) for key in _ADDRESS_KEYS)
