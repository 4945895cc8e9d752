"""KG's root notebook (KG_API=...,notebook-http,services with KG_SEED_URI) as a service of the registry:
listed, reloaded from KG_SEED_URI under load, kept serving through a failing reload, rolled back, given a
new notebook or pool by PUT, never undeployed, its versions kept across restarts; and nothing of it without
the services personality."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN
from tests.services_support import multipart, notebook, version_notebook
from tests.support import Gateway, serve

pytestmark = pytest.mark.timeout(240)
NAME = "root-api"  # the service name of Root_API.v1.ipynb (KG's title: Root_API)
ALL_THREE = "jupyter-websocket,notebook-http,services"


def root_notebook(tag: str) -> bytes:
    """`GET /version` and `GET /sleep/:secs` print `tag`; `/livez` and `/docs` are the notebook's too."""
    return notebook(
        "import json, time",
        f"# GET /version\nprint({tag!r})",
        f"# GET /sleep/:secs\ntime.sleep(float(json.loads(REQUEST)['path']['secs']))\nprint({tag!r})",
        f"# GET /livez\nprint('root livez {tag}')",
        "# GET /docs\nprint('root docs')",
    )


@asynccontextmanager
async def gateway(seed: Path, **settings: Any) -> AsyncIterator[Gateway]:
    options: dict[str, Any] = {"auth_token": TOKEN, "api": ALL_THREE, "seed_uri": str(seed), **settings}
    async with serve(**options) as gw:
        yield gw


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    path = tmp_path / "Root_API.v1.ipynb"
    path.write_bytes(root_notebook("v1"))
    return path


async def service(gw: Gateway) -> dict[str, Any]:
    response = await gw.client.get(f"/api/services/{NAME}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def text(gw: Gateway, path: str) -> str:
    response = await gw.client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.text.strip()


async def test_the_root_notebook_is_a_listed_service(seed: Path) -> None:
    async with gateway(seed, prespawn_count=2, services_pool_max=1) as gw:
        listing = (await gw.client.get("/api/services")).json()
        assert [s["name"] for s in listing] == [NAME]
        root = listing[0]
        assert (root["prefix"], root["state"], root["error"]) == ("", "serving", None)
        assert (root["version"]["id"], root["version"]["deployed_by"]) == (1, "config")
        assert root["kernel_name"] == "python3"
        assert {"method": "GET", "path": "/version"} in root["endpoints"]
        assert root["pool"] == {"min": 2, "max": 2, "size": 2, "busy": 0, "idle": 2}
        # KG's routes: the notebook's paths win over the gateway's own; other paths stay the gateway's
        assert await text(gw, "/version") == "v1"
        assert await text(gw, "/livez") == "root livez v1"
        assert await text(gw, "/docs") == "root docs"
        assert (await gw.client.get("/readyz")).status_code == 200
        swagger = (await gw.client.get("/_api/spec/swagger.json")).json()
        assert swagger["info"]["title"] == "Root_API"  # KG's title: the notebook's file name
        # another service keeps its own prefix (longest prefix first, the root's paths elsewhere)
        created = await gw.client.post("/api/services", **multipart("inner", version_notebook("inner")))
        assert created.status_code == 201, created.text
        assert await text(gw, "/services/inner/version") == "inner"
        assert (await gw.client.get("/services/inner/nothing")).status_code == 404
        assert (await service(gw))["traffic"]["requests"] == 4  # /version, /livez, /docs, swagger.json
        # the admin page's services panel reads the same objects
        panel = (await gw.client.get("/admin/api/services")).json()
        assert [s["name"] for s in panel] == ["inner", NAME]
        assert [
            (v["id"], v["active"]) for v in (await gw.client.get(f"/api/services/{NAME}/versions")).json()
        ] == [(1, True)]
        document = (await gw.client.get("/openapi.json")).json()
        assert document["paths"]["/version"]["get"]["tags"] == ["Root_API"]
        assert document["paths"]["/services/inner/version"]["get"]["tags"] == ["inner"]
        tags = {tag["name"]: tag["description"] for tag in document["tags"]}
        assert f"Notebook service {NAME} at the root" in tags["Root_API"]
        # configured by KG_SEED_URI: it stays at the root and cannot be undeployed
        refused = await gw.client.delete(f"/api/services/{NAME}")
        assert refused.status_code == 409
        assert "cannot be undeployed" in refused.json()["message"]
        moved = await gw.client.put(f"/api/services/{NAME}", data={"prefix": "/elsewhere"})
        assert moved.status_code == 409
        assert "prefix is fixed" in moved.json()["message"]
        taken = await gw.client.post("/api/services", **multipart(NAME, version_notebook("x")))
        assert taken.status_code == 409
        assert await text(gw, "/version") == "v1"


async def test_reload_under_load_swaps_without_an_error(seed: Path) -> None:
    async with gateway(seed, prespawn_count=2) as gw:
        in_flight = asyncio.create_task(gw.client.get("/sleep/3"))
        async with asyncio.timeout(30):
            while (await service(gw))["pool"]["busy"] == 0:
                await asyncio.sleep(0.05)
        seed.write_bytes(root_notebook("v2"))
        answers: list[tuple[int, str]] = []
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                response = await gw.client.get("/version")
                answers.append((response.status_code, response.text.strip()))

        workers = [asyncio.create_task(load()) for _ in range(4)]
        reloaded = await gw.client.post(f"/api/services/{NAME}/reload")
        during = len(answers)
        async with asyncio.timeout(60):
            while len(answers) < during + 20:  # the load goes on past the swap
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*workers)
        assert reloaded.status_code == 200, reloaded.text
        assert (reloaded.json()["version"]["id"], reloaded.json()["version"]["deployed_by"]) == (2, "api")
        assert during > 0, "no request ran while the new version started"
        assert {status for status, _ in answers} == {200}
        assert {body for _, body in answers} == {"v1", "v2"}
        assert [await text(gw, "/version") for _ in range(4)] == ["v2"] * 4
        old = await in_flight  # routed to v1 before the swap: it finished there
        assert (old.status_code, old.text.strip()) == (200, "v1")
        assert await text(gw, "/livez") == "root livez v2"
        # the old version drains and frees its kernels; the gateway's state follows the new one
        gateway_state = gw.app.state.gateway
        async with asyncio.timeout(60):
            while gateway_state.kernels.stats().private != 2:
                await asyncio.sleep(0.1)
        assert gateway_state.notebook is gw.app.state.services_runtime.registry.get(NAME).active.notebook
        assert (await gw.client.get("/readyz")).status_code == 200


async def test_a_failing_reload_keeps_the_old_version_then_rollback_and_put(seed: Path) -> None:
    async with gateway(seed, prespawn_count=1) as gw:
        reload = f"/api/services/{NAME}/reload"
        broken = [
            (b"{ not a notebook", "Cannot parse notebook"),
            (notebook("x = 1"), "no annotated cells"),
            (notebook("raise ValueError('boom')", "# GET /version\nprint('never')"), "A startup cell failed"),
            (None, "Cannot read notebook"),
        ]
        for raw, reason in broken:
            if raw is None:
                seed.unlink()
            else:
                seed.write_bytes(raw)
            failed = await gw.client.post(reload)
            assert failed.status_code == 422, failed.text
            assert reason in failed.json()["message"]
            root = await service(gw)
            assert (root["state"], root["version"]["id"]) == ("serving", 1)
            assert reason in root["error"]
            assert await text(gw, "/version") == "v1"
        seed.write_bytes(root_notebook("v2"))
        fixed = await gw.client.post(reload)
        assert fixed.status_code == 200, fixed.text
        v2 = fixed.json()["version"]["id"]
        assert fixed.json()["error"] is None
        assert await text(gw, "/version") == "v2"
        # roll back and forward
        back = await gw.client.post(f"/api/services/{NAME}/rollback")
        assert back.status_code == 200, back.text
        assert back.json()["version"]["id"] == 1
        assert await text(gw, "/version") == "v1"
        versions = (await gw.client.get(f"/api/services/{NAME}/versions")).json()
        assert [(v["id"], v["active"]) for v in versions] == [(v2, False), (1, True)]
        forward = await gw.client.post(f"/api/services/{NAME}/rollback", json={"version": v2})
        assert forward.json()["version"]["id"] == v2
        assert await text(gw, "/version") == "v2"
        # PUT: another notebook, then another pool; the prefix stays the root
        put = await gw.client.put(f"/api/services/{NAME}", **multipart(NAME, root_notebook("v3")))
        assert put.status_code == 200, put.text
        assert put.json()["prefix"] == ""
        assert await text(gw, "/version") == "v3"
        scaled = await gw.client.put(f"/api/services/{NAME}", data={"pool_min": "2", "pool_max": "2"})
        assert scaled.status_code == 200, scaled.text
        assert scaled.json()["pool"] == {"min": 2, "max": 2, "size": 2, "busy": 0, "idle": 2}
        assert await text(gw, "/version") == "v3"
        # a reload reads KG_SEED_URI again, whatever was uploaded since
        again = await gw.client.post(reload)
        assert again.status_code == 200, again.text
        assert await text(gw, "/version") == "v2"
        assert again.json()["pool"]["min"] == 2  # the settings of the active version stay


async def test_the_root_versions_are_kept_across_restarts(seed: Path, tmp_path: Path) -> None:
    """KG_SEED_URI decides what serves at startup; its versions are kept like any service's."""
    state = str(tmp_path / "state")
    async with gateway(seed, state_dir=state) as gw:
        seed.write_bytes(root_notebook("v2"))
        assert (await gw.client.post(f"/api/services/{NAME}/reload")).json()["version"]["id"] == 2
    async with gateway(seed, state_dir=state) as gw:
        root = await service(gw)
        assert root["version"]["id"] == 2  # the same notebook and settings: the kept version, not a new one
        assert await text(gw, "/version") == "v2"
        back = await gw.client.post(f"/api/services/{NAME}/rollback")
        assert back.json()["version"]["id"] == 1
        assert await text(gw, "/version") == "v1"
    seed.write_bytes(root_notebook("v3"))
    async with gateway(seed, state_dir=state) as gw:
        root = await service(gw)
        assert (root["version"]["id"], root["version"]["deployed_by"]) == (3, "config")
        assert await text(gw, "/version") == "v3"  # not the version rolled back to: KG_SEED_URI's
        versions = (await gw.client.get(f"/api/services/{NAME}/versions")).json()
        assert [(v["id"], v["active"]) for v in versions] == [(3, True), (2, False), (1, False)]
        back = await gw.client.post(f"/api/services/{NAME}/rollback", json={"version": 1})
        assert back.status_code == 200, back.text
        assert await text(gw, "/version") == "v1"


async def test_without_the_services_personality_nothing_is_added(seed: Path) -> None:
    async with serve(auth_token=TOKEN, api="jupyter-websocket,notebook-http", seed_uri=str(seed)) as gw:
        assert await text(gw, "/version") == "v1"
        missing = await gw.client.get("/api/services")
        assert missing.status_code == 404
        assert (await gw.client.post(f"/api/services/{NAME}/reload")).status_code == 404
        document = (await gw.client.get("/openapi.json")).json()
        assert not [path for path in document["paths"] if path.startswith("/api/services")]
        assert "tags" not in document
        assert document["paths"]["/version"]["get"]["tags"] == ["Root_API"]
        assert not hasattr(gw.app.state, "services_runtime")
