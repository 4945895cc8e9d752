"""The real `fastkg` command with notebook services: restart persistence and the watched directory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.services_support import multipart, notebook, version_notebook
from tests.support import ROOT, fastkg_process, free_port

pytestmark = pytest.mark.timeout(300)
TOKEN = "blackbox-services-token"


async def eventually(check: Callable[[], Awaitable[bool]], limit: float = 90) -> None:
    async with asyncio.timeout(limit):
        while not await check():
            await asyncio.sleep(0.2)


async def text_of(client: httpx.AsyncClient, path: str) -> str:
    response = await client.get(path)
    return response.text.strip() if response.status_code == 200 else f"<{response.status_code}>"


async def test_services_survive_a_restart(tmp_path: Path) -> None:
    env = {
        "KG_API": "services",
        "KG_AUTH_TOKEN": TOKEN,
        "FASTKG_STATE_DIR": str(tmp_path / "state"),
        "KG_PORT": str(free_port()),
    }
    with fastkg_process(env, tmp_path) as gw:
        async with gw.client as client:
            created = await client.post(
                "/api/services", **multipart("keep", version_notebook("v1"), prefix="/k")
            )
            assert created.status_code == 201, created.text
            updated = await client.put("/api/services/keep", **multipart("keep", version_notebook("v2")))
            assert updated.status_code == 200, updated.text
            back = await client.post("/api/services/keep/rollback")
            assert back.json()["version"]["id"] == 1
            before = (await client.get("/api/services/keep/versions")).json()
    assert (tmp_path / "state" / "services.json").is_file()
    with fastkg_process(env, tmp_path) as gw:
        async with gw.client as client:
            service = (await client.get("/api/services/keep")).json()
            assert service["state"] == "serving"
            assert service["prefix"] == "/k"
            assert service["version"]["id"] == 1
            assert (await client.get("/api/services/keep/versions")).json() == before
            assert await text_of(client, "/k/version") == "v1"
            forward = await client.post("/api/services/keep/rollback", json={"version": 2})
            assert forward.status_code == 200, forward.text
            assert await text_of(client, "/k/version") == "v2"
            fresh = await client.put("/api/services/keep", **multipart("keep", version_notebook("v3")))
            assert fresh.json()["version"]["id"] == 3  # ids go on where they stopped


async def test_watched_directory(tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "alpha.ipynb").write_bytes(version_notebook("a1", prefix="/alpha", pool_max=1))
    env = {
        "KG_API": "services",
        "KG_AUTH_TOKEN": TOKEN,
        "FASTKG_SERVICES_DIR": str(watched),
        "FASTKG_SERVICES_POLL": "0.3",
    }
    with fastkg_process(env, tmp_path) as gw:
        async with gw.client as client:
            # deployed before the gateway answered at all
            assert await text_of(client, "/alpha/version") == "a1"
            # a half-written file never takes traffic
            complete = version_notebook("a2", prefix="/alpha", pool_max=1)
            (watched / "alpha.ipynb").write_bytes(complete[: len(complete) // 2])
            await asyncio.sleep(2.0)
            service = (await client.get("/api/services/alpha")).json()
            assert service["version"]["id"] == 1
            assert service["state"] == "serving"
            assert await text_of(client, "/alpha/version") == "a1"
            (watched / "alpha.ipynb").write_bytes(complete)
            await eventually(lambda: _is(client, "/alpha/version", "a2"))
            versions = (await client.get("/api/services/alpha/versions")).json()
            assert [v["id"] for v in versions] == [2, 1]
            # a new file is a new service with the default prefix
            (watched / "beta.ipynb").write_bytes(version_notebook("b1"))
            await eventually(lambda: _is(client, "/services/beta/version", "b1"))
            # a notebook that cannot serve is recorded as failed, and serves once fixed
            (watched / "broken.ipynb").write_bytes(notebook("x = 1"))
            await eventually(lambda: _state(client, "broken", "failed"))
            broken = (await client.get("/api/services/broken")).json()
            assert "no annotated cells" in broken["error"]
            assert (await client.get("/services/broken/version")).status_code == 503
            (watched / "broken.ipynb").write_bytes(version_notebook("fixed"))
            await eventually(lambda: _is(client, "/services/broken/version", "fixed"))
            os.remove(watched / "broken.ipynb")
            # removal undeploys
            os.remove(watched / "alpha.ipynb")
            await eventually(lambda: _is(client, "/alpha/version", "<404>"))
            await eventually(lambda: _names(client, ["beta"]))


async def _is(client: httpx.AsyncClient, path: str, expected: str) -> bool:
    return await text_of(client, path) == expected


def _cli(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KG_PORT": str(port), "KG_AUTH_TOKEN": TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "app", "services", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_and_the_bundled_examples(tmp_path: Path) -> None:
    """`make run`'s configuration: the examples directory watched, and the CLI driving the gateway."""
    port = free_port()
    env = {
        "KG_PORT": str(port),
        "KG_API": "jupyter-websocket,services",
        "KG_AUTH_TOKEN": TOKEN,
        "FASTKG_SERVICES_DIR": str(ROOT / "examples" / "services"),
        "FASTKG_SERVICES_ROOT": str(ROOT / "examples"),
    }
    with fastkg_process(env, tmp_path) as gw:
        async with gw.client as client:
            assert await text_of(client, "/greeter/hello/world") == "Hello, world!"
            summary = await client.post("/services/stats/summary", json=[1, 2, 3, 10])
            assert summary.json() == {"n": 4, "mean": 4.0, "median": 2.5}
            listed = await asyncio.to_thread(_cli, port, "list")
            assert listed.returncode == 0, listed.stderr
            assert "greeter" in listed.stdout
            assert "/services/stats" in listed.stdout
            first = await asyncio.to_thread(
                _cli,
                port,
                "deploy",
                str(ROOT / "examples/services/greeter.ipynb"),
                "--name",
                "hi",
                "--prefix",
                "/hi",
            )
            assert first.returncode == 0, first.stderr
            second = await asyncio.to_thread(
                _cli, port, "deploy", "services/stats.ipynb", "--source", "--name", "hi"
            )
            assert second.returncode == 0, second.stderr
            assert " v2 " in second.stdout
            assert (await client.post("/hi/summary", json=[2])).json()["n"] == 1
            back = await asyncio.to_thread(_cli, port, "rollback", "hi")
            assert back.returncode == 0, back.stderr
            assert " v1 " in back.stdout
            assert await text_of(client, "/hi/hello/you") == "Hello, you!"
            gone = await asyncio.to_thread(_cli, port, "undeploy", "hi")
            assert gone.returncode == 0, gone.stderr
            missing = await asyncio.to_thread(_cli, port, "undeploy", "hi")
            assert missing.returncode == 1
            assert "404 No such service: hi" in missing.stderr


async def _state(client: httpx.AsyncClient, name: str, state: str) -> bool:
    response = await client.get(f"/api/services/{name}")
    return response.status_code == 200 and response.json()["state"] == state


async def _names(client: httpx.AsyncClient, expected: list[str]) -> bool:
    return [s["name"] for s in (await client.get("/api/services")).json()] == expected


async def test_restart_with_state_and_watched_directory(tmp_path: Path) -> None:
    """A watched notebook removed while the gateway was down is gone after the restart; an API service
    stays; an unchanged watched notebook keeps its version instead of getting a new one."""
    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "kept.ipynb").write_bytes(version_notebook("k1"))
    (watched / "dropped.ipynb").write_bytes(version_notebook("d1"))
    env = {
        "KG_API": "services",
        "KG_AUTH_TOKEN": TOKEN,
        "FASTKG_SERVICES_DIR": str(watched),
        "FASTKG_SERVICES_POLL": "0.3",
        "FASTKG_STATE_DIR": str(tmp_path / "state"),
    }
    with fastkg_process(env, tmp_path) as gw:
        async with gw.client as client:
            created = await client.post("/api/services", **multipart("api-made", version_notebook("a1")))
            assert created.status_code == 201, created.text
            assert await _names(client, ["api-made", "dropped", "kept"])
    os.remove(watched / "dropped.ipynb")
    with fastkg_process(env, tmp_path) as gw:
        async with gw.client as client:
            assert await _names(client, ["api-made", "kept"])
            assert await text_of(client, "/services/api-made/version") == "a1"
            assert await text_of(client, "/services/kept/version") == "k1"
            versions = (await client.get("/api/services/kept/versions")).json()
            assert [(v["id"], v["deployed_by"]) for v in versions] == [(1, "watcher")]


async def test_the_root_notebook_reloads_from_the_command_line(tmp_path: Path) -> None:
    """`make run`'s personalities with KG_SEED_URI: the notebook is service `api` at the root, and
    `fastkg services reload api` serves the edited file without a restart."""
    seed = tmp_path / "api.ipynb"
    seed.write_bytes(version_notebook("r1"))
    port = free_port()
    env = {
        "KG_PORT": str(port),
        "KG_API": "jupyter-websocket,notebook-http,services",
        "KG_AUTH_TOKEN": TOKEN,
        "KG_SEED_URI": str(seed),
    }
    with fastkg_process(env, tmp_path) as gw:
        async with gw.client as client:
            assert await text_of(client, "/version") == "r1"
            listed = await asyncio.to_thread(_cli, port, "list")
            assert listed.returncode == 0, listed.stderr
            assert listed.stdout.split()[:4] == ["api", "/", "serving", "v1"]
            seed.write_bytes(version_notebook("r2"))
            reloaded = await asyncio.to_thread(_cli, port, "reload", "api")
            assert reloaded.returncode == 0, reloaded.stderr
            assert " v2 " in reloaded.stdout
            assert await text_of(client, "/version") == "r2"
            refused = await asyncio.to_thread(_cli, port, "undeploy", "api")
            assert refused.returncode == 1
            assert "409" in refused.stderr
            assert await text_of(client, "/version") == "r2"
