"""The watched directory's notebooks that cannot be deployed are services in state `failed` with the
reason (REST and the admin panel), holding no prefix; fixed when the file is, gone when the file goes; a
serving one given a bad file keeps serving and shows why."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN
from tests.services_support import notebook, version_notebook
from tests.support import Gateway, serve

pytestmark = pytest.mark.timeout(240)


async def listed(gw: Gateway) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (await gw.client.get("/api/services")).json()}


async def eventually(check: Callable[[], Awaitable[bool]], limit: float = 90) -> None:
    async with asyncio.timeout(limit):
        while not await check():
            await asyncio.sleep(0.1)


async def answer(gw: Gateway, path: str) -> str:
    response = await gw.client.get(path)
    return response.text.strip() if response.status_code == 200 else f"<{response.status_code}>"


async def test_undeployable_notebooks_are_listed_as_failed(tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "good.ipynb").write_bytes(version_notebook("g1", prefix="/good"))
    (watched / "badmeta.ipynb").write_bytes(version_notebook("b1", pool_min="zero"))
    (watched / "unknown.ipynb").write_bytes(version_notebook("u1", colour="red"))
    (watched / "strmeta.ipynb").write_bytes(notebook("# GET /x\nprint(1)", metadata={"fastkg": "fast"}))
    (watched / "notjson.ipynb").write_text("{ this is not a notebook")
    (watched / "zclash.ipynb").write_bytes(version_notebook("z1", prefix="/good"))  # after good: taken
    settings: dict[str, Any] = {"services_dir": str(watched), "services_poll": 0.3, "services_pool_max": 1}
    async with serve(auth_token=TOKEN, api="services", **settings) as gw:
        # all of it at startup, before the gateway answered
        services = await listed(gw)
        assert services["good"]["state"] == "serving"
        reasons = {
            "badmeta": "badmeta.ipynb: pool_min must be an integer",
            "unknown": "unknown.ipynb: Unknown service setting(s): colour",
            "strmeta": "strmeta.ipynb: metadata.fastkg must be an object of service settings",
            "notjson": "notjson.ipynb is not a notebook",
            "zclash": "Prefix /good collides with service good at /good",
        }
        for name, reason in reasons.items():
            failed = services[name]
            assert (failed["state"], failed["version"], failed["endpoints"]) == ("failed", None, []), failed
            assert reason in failed["error"], failed
            assert failed["pool"]["size"] == 0
        assert services["zclash"]["prefix"] == "/good"  # the prefix it asks for ...
        assert services["badmeta"]["prefix"] == "/services/badmeta"
        assert await answer(gw, "/good/version") == "g1"  # ... but does not hold
        assert await answer(gw, "/services/badmeta/version") == "<404>"
        one = await gw.client.get("/api/services/notjson")
        assert one.json()["state"] == "failed"
        # the REST contract's schema says so: a never-deployed service has no version
        document = (await gw.client.get("/openapi.json")).json()
        model = document["components"]["schemas"]["ServiceModel"]["properties"]
        assert {"type": "null"} in model["version"]["anyOf"]
        assert {"type": "null"} in model["error"]["anyOf"]
        # the admin page's services panel reads the same
        panel = {s["name"]: s for s in (await gw.client.get("/admin/api/services")).json()}
        assert panel["badmeta"]["state"] == "failed"
        assert reasons["badmeta"] in panel["badmeta"]["error"]

        # fixed when the file is
        (watched / "badmeta.ipynb").write_bytes(version_notebook("b2"))
        (watched / "zclash.ipynb").write_bytes(version_notebook("z2", prefix="/zclash"))
        (watched / "notjson.ipynb").write_bytes(version_notebook("n2", prefix="/good/inner"))  # still taken
        await eventually(lambda: _is(gw, "/services/badmeta/version", "b2"))
        await eventually(lambda: _is(gw, "/zclash/version", "z2"))
        await eventually(lambda: _error_has(gw, "notjson", "collides with service good"))
        services = await listed(gw)
        assert (services["badmeta"]["state"], services["badmeta"]["error"]) == ("serving", None)
        assert services["badmeta"]["version"]["id"] == 1
        assert services["notjson"]["prefix"] == "/good/inner"
        assert await answer(gw, "/good/version") == "g1"

        # a serving one given bad settings keeps serving and shows why
        (watched / "good.ipynb").write_bytes(version_notebook("g2", prefix="/good", pool_max=0))
        await eventually(lambda: _error_has(gw, "good", "pool_max must be an integer"))
        good = (await listed(gw))["good"]
        assert (good["state"], good["version"]["id"]) == ("serving", 1)
        assert await answer(gw, "/good/version") == "g1"
        (watched / "good.ipynb").write_bytes(version_notebook("g3", prefix="/good"))
        await eventually(lambda: _is(gw, "/good/version", "g3"))
        assert (await listed(gw))["good"]["error"] is None

        # gone when the file goes
        for name in ("strmeta", "notjson", "unknown"):
            (watched / f"{name}.ipynb").unlink()
        await eventually(lambda: _names(gw, ["badmeta", "good", "zclash"]))


async def _is(gw: Gateway, path: str, expected: str) -> bool:
    return await answer(gw, path) == expected


async def _error_has(gw: Gateway, name: str, text: str) -> bool:
    error = (await listed(gw))[name]["error"]
    return error is not None and text in error


async def _names(gw: Gateway, expected: list[str]) -> bool:
    return sorted(await listed(gw)) == expected
