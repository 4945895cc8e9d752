"""Asynchronous requests (`Prefer: respond-async`): a bounded table of jobs, each one request replayed
against a service in an owned task, its response captured and kept for a while."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.errors import NotFound, ServiceUnavailable
from app.http.asgi import Message

log = logging.getLogger(__name__)
Runner = Callable[[Callable[[Message], Awaitable[None]]], Awaitable[None]]


@dataclass
class Job:
    id: str
    service: str
    created: float = field(default_factory=time.monotonic)
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    finished: float | None = None
    failed: bool = False

    @property
    def done(self) -> bool:
        return self.finished is not None

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "state": "done" if self.done else "running"}

    async def capture(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


class JobTable:
    """At most `limit` jobs; finished ones are kept `ttl` seconds (or until room is needed)."""

    def __init__(self, limit: int, ttl: float) -> None:
        self.limit = limit
        self.ttl = ttl
        self._jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def submit(self, service: str, run: Runner) -> Job:
        self._expire()
        if len(self._jobs) >= self.limit:
            finished = sorted((j for j in self._jobs.values() if j.done), key=lambda j: j.finished or 0)
            if not finished:
                raise ServiceUnavailable(f"Too many asynchronous requests running (at most {self.limit})")
            del self._jobs[finished[0].id]
        job = Job(uuid.uuid4().hex, service)
        self._jobs[job.id] = job
        task = asyncio.get_running_loop().create_task(self._run(job, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: Job, run: Runner) -> None:
        try:
            await run(job.capture)
        except Exception:
            log.exception("asynchronous request %s failed", job.id)
            job.failed = True
        finally:
            job.finished = time.monotonic()

    def get(self, job_id: str) -> Job:
        self._expire()
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"No such job: {job_id}")
        return job

    def _expire(self) -> None:
        now = time.monotonic()
        for job in [j for j in self._jobs.values() if j.finished is not None and now - j.finished > self.ttl]:
            del self._jobs[job.id]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._jobs.clear()
