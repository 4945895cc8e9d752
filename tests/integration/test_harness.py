"""The harness itself: a real server, a real kernel, both framings."""

from __future__ import annotations

import pytest

from tests.support import Gateway, stdout_of


@pytest.mark.parametrize("v1", [False, True])
async def test_execute_round_trip(gateway: Gateway, v1: bool) -> None:
    kernel_id = await gateway.start_kernel()
    ws = await gateway.connect(kernel_id, v1=v1)
    reply, outputs = await ws.execute("print('hello'); 6 * 7")
    assert reply["status"] == "ok"
    assert stdout_of(outputs) == "hello\n"
    result = next(m for m in outputs if m.msg_type == "execute_result")
    assert result.content["data"]["text/plain"] == "42"
    await ws.close()
