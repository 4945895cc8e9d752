"""Processes by PID from /proc: a gateway's children (its kernels), and waiting for them to go."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def children(pid: int) -> set[int]:
    """Living direct children of `pid`, by scanning the ppid of every process."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.add(int(entry))
    return found


def fd_count(pid: int) -> int:
    """Open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_gone(pids: set[int], limit: float) -> set[int]:
    """Wait up to `limit` seconds for every pid to exit; return the ones still alive."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return set()
        time.sleep(0.1)
    return {pid for pid in pids if alive(pid)}


def kill_leftovers(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
