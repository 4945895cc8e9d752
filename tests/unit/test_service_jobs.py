"""The asynchronous job table: bounded, results kept for a while, tasks owned."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import NotFound, ServiceUnavailable
from app.http.asgi import Message
from app.services.jobs import JobTable


def responder(gate: asyncio.Event, body: bytes):  # type: ignore[no-untyped-def]
    async def run(send) -> None:  # type: ignore[no-untyped-def]
        await gate.wait()
        message: Message = {"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]}
        await send(message)
        await send({"type": "http.response.body", "body": body})

    return run


async def test_job_captures_the_response() -> None:
    table = JobTable(limit=2, ttl=60)
    gate = asyncio.Event()
    job = table.submit("svc", responder(gate, b"hi"))
    assert job.summary() == {"id": job.id, "service": "svc", "state": "running"}
    gate.set()
    async with asyncio.timeout(5):
        while not table.get(job.id).done:
            await asyncio.sleep(0.01)
    assert (job.status, bytes(job.body), job.headers) == (201, b"hi", [(b"x-a", b"1")])
    await table.close()


async def test_table_is_bounded_and_results_expire() -> None:
    table = JobTable(limit=1, ttl=0.2)
    gate = asyncio.Event()
    first = table.submit("svc", responder(gate, b"1"))
    with pytest.raises(ServiceUnavailable, match="at most 1"):
        table.submit("svc", responder(gate, b"2"))
    gate.set()
    async with asyncio.timeout(5):
        while not first.done:
            await asyncio.sleep(0.01)
    second = table.submit("svc", responder(gate, b"2"))  # room made by dropping the finished job
    with pytest.raises(NotFound):
        table.get(first.id)
    async with asyncio.timeout(5):
        while not second.done:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    with pytest.raises(NotFound):
        table.get(second.id)
    await table.close()


async def test_close_cancels_running_jobs() -> None:
    table = JobTable(limit=5, ttl=60)
    await asyncio.sleep(0)
    table.submit("svc", responder(asyncio.Event(), b""))
    assert len(asyncio.all_tasks()) == 2
    await table.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}
