"""FASTKG_LOG_FORMAT=json on the real command: one JSON object per line, request ids, no token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import fastkg_process

TOKEN = "json-log-token-0123456789"


@pytest.mark.timeout(180)
async def test_every_line_is_json_with_request_ids_and_no_token(tmp_path: Path) -> None:
    env = {"KG_AUTH_TOKEN": TOKEN, "FASTKG_LOG_FORMAT": "json", "FASTKG_LOG_LEVEL": "debug"}
    with fastkg_process(env, tmp_path) as gw:
        started = await gw.client.post("/api/kernels", json={}, headers={"X-Request-Id": "rid-42"})
        assert started.status_code == 201
        assert started.headers["x-request-id"] == "rid-42"
        kernel_id = started.json()["id"]
        # the token in a query string, as websocket clients send it
        assert (await gw.client.get(f"/api/kernels/{kernel_id}?token={TOKEN}")).status_code == 200
        assert (await gw.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204
        await gw.client.aclose()
    # kernel processes inherit the gateway's stderr and write their own (ipykernel) lines to it
    lines = [line for line in gw.log().splitlines() if line.strip() and not line.startswith("[IPKernelApp]")]
    assert lines
    records = [json.loads(line) for line in lines]  # every line parses
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    mine = [r for r in records if r.get("request_id") == "rid-42"]
    assert any(kernel_id in r["message"] and "started" in r["message"] for r in mine)
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any("DELETE /api/kernels/" in r["message"] and r.get("request_id") for r in access)
    assert any("token=[secret]" in r["message"] for r in access)
    assert TOKEN not in gw.log()
