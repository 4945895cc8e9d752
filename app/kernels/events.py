"""Kernel lifecycle events and the counters the gateway keeps of them (for /metrics and the admin page)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger(__name__)


class KernelEventKind(StrEnum):
    STARTED = "started"
    START_FAILED = "start_failed"
    RESTARTED = "restarted"  # asked for (REST, admin)
    AUTO_RESTARTED = "auto_restarted"  # the kernel died and jupyter_client's restarter brought it back
    DIED = "died"  # the kernel died and could not be restarted
    INTERRUPTED = "interrupted"
    SHUTDOWN = "shutdown"
    CULLED = "culled"


@dataclass(frozen=True)
class KernelEvent:
    kind: KernelEventKind
    kernel_id: str
    kernel_name: str
    detail: str = ""
    at: float = field(default_factory=time.time)


EventListener = Callable[[KernelEvent], None]


class KernelEvents:
    """A listener list and per-(kind, kernelspec) counters. Listeners must not block or raise."""

    def __init__(self) -> None:
        self._listeners: list[EventListener] = []
        self.counts: Counter[tuple[KernelEventKind, str]] = Counter()

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, kind: KernelEventKind, kernel_id: str, kernel_name: str, detail: str = "") -> None:
        event = KernelEvent(kind, kernel_id, kernel_name, detail)
        self.counts[(kind, kernel_name)] += 1
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken observer must not break the kernel operation it observes
                log.exception("kernel event listener failed on %s", kind)

    def total(self, kind: KernelEventKind) -> int:
        return sum(n for (k, _), n in self.counts.items() if k is kind)
