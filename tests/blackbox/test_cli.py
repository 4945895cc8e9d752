"""Black-box: the real `fastkg` command — options, KG_* environment, refusals, ports, tokens in logs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import NOTEBOOKS, ROOT, KernelSocket, fastkg_process, free_port, stdout_of, stop_process

FASTKG = Path(sys.executable).parent / "fastkg"
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without any KG_*/FASTKG_* setting, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KG_", "FASTKG_"))}
    return {**base, **env}


def run_fastkg(
    args: list[str], env: dict[str, str] | None = None, limit: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=limit,
        cwd=ROOT,
    )


@contextlib.contextmanager
def launched(
    env: dict[str, str], tmp_path: Path, args: list[str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Start `python -m app` without waiting for anything; always stopped afterwards."""
    log_path = tmp_path / f"fastkg-{uuid.uuid4().hex[:8]}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", *(args or [])],
            env=clean_env(**{"KG_IP": "127.0.0.1", **env}),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        yield process, log_path
    finally:
        stop_process(process)


def listening_port(process: subprocess.Popen[bytes], log_path: Path, limit: float = 30) -> int:
    """The port from the startup log line `listening on 127.0.0.1:PORT`."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        match = LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no 'listening on' line (exit {process.poll()}):\n{log_path.read_text()[-3000:]}")


def wait_answering(
    url: str, process: subprocess.Popen[bytes], log_path: Path, limit: float = 60
) -> httpx.Response:
    """The first HTTP response from `url` (connection refusals are retried)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"fastkg exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            return httpx.get(url, timeout=5)
        except httpx.ConnectError:
            time.sleep(0.02)
    raise AssertionError(f"{url} never answered:\n{log_path.read_text()[-3000:]}")


# -- options ----------------------------------------------------------------------------------------------
def test_help_lists_options() -> None:
    result = subprocess.run(
        [str(FASTKG), "--help"], capture_output=True, text=True, timeout=20, env=clean_env()
    )
    assert result.returncode == 0, result.stderr
    for option in ("--port", "--ip", "--auth-token", "--base-url", "--prespawn-count", "--seed-uri", "--api"):
        assert option in result.stdout, f"{option} missing from --help:\n{result.stdout}"
    for variable in ("KG_PORT", "KG_AUTH_TOKEN", "KG_LIST_KERNELS", "FASTKG_WARM_POOL"):
        assert variable in result.stdout, f"{variable} missing from --help"


def test_version() -> None:
    from app import __version__

    result = run_fastkg(["--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"fastkg {__version__}"


# -- invalid configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KG_PRESPAWN_COUNT": "3", "KG_MAX_KERNELS": "2"}, ["prespawn", "max kernels"]),
        ({"KG_API": "bogus"}, ["bogus", "KG_API"]),
        ({"KG_SEED_URI": "/nonexistent.ipynb"}, ["/nonexistent.ipynb"]),
        ({"KG_SEED_URI": str(NOTEBOOKS / "bb_unknown_kernelspec.ipynb")}, ["nope", "kernelspec"]),
        ({"KG_PORT": "70000"}, ["KG_PORT"]),
        ({"KG_MAX_KERNELS": "many"}, ["KG_MAX_KERNELS"]),
    ],
    ids=[
        "prespawn-over-max",
        "unknown-api",
        "missing-seed",
        "unknown-seed-kernelspec",
        "bad-port",
        "bad-int",
    ],
)
def test_invalid_configuration_refuses_to_start(env: dict[str, str], expected: list[str]) -> None:
    started = time.monotonic()
    result = run_fastkg([], {"KG_PORT": str(free_port()), **env})
    elapsed = time.monotonic() - started
    assert result.returncode != 0, f"started anyway: {result.stderr}"
    # Well under the 60 s kernel start timeout: it refuses up front rather than trying and timing out. (Import
    # alone can take seconds on a loaded machine: nbformat -> jsonschema -> rfc3987_syntax builds a grammar.)
    assert elapsed < 30, f"took {elapsed:.1f}s to refuse"
    for text in expected:
        assert text.lower() in result.stderr.lower(), f"{text!r} not in stderr: {result.stderr!r}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "listening on" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3, f"not a short message: {result.stderr!r}"


def test_invalid_flag_refuses_to_start() -> None:
    result = run_fastkg(["--max-kernels=0"])
    assert result.returncode != 0
    assert (
        "max_kernels" in result.stderr or "max-kernels" in result.stderr or "KG_MAX_KERNELS" in result.stderr
    )
    assert "Traceback" not in result.stderr


# -- KG environment compatibility ---------------------------------------------------------------------------
async def test_configured_purely_by_kg_environment(tmp_path: Path) -> None:
    port = free_port()
    token = "env-token-" + uuid.uuid4().hex[:8]
    env = {
        "KG_PORT": str(port),
        "KG_PORT_RETRIES": "0",
        "KG_AUTH_TOKEN": token,
        "KG_BASE_URL": "/gw",
        "KG_LIST_KERNELS": "True",
        "KG_PRESPAWN_COUNT": "1",
        "KG_IP": "0.0.0.0",  # with a token: no warning
    }
    with launched(env, tmp_path) as (process, log_path):
        base = f"http://127.0.0.1:{port}/gw"
        # The very first answer already lists the prespawned kernel: startup finishes before the port answers.
        first = wait_answering(f"{base}/api/kernels?token={token}", process, log_path)
        assert first.status_code == 200, first.text
        kernels = first.json()
        assert len(kernels) == 1, kernels
        assert kernels[0]["name"] == "python3"
        assert kernels[0]["execution_state"] in ("idle", "starting", "busy")

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert (await client.get("/gw/api")).status_code == 401
            assert (await client.get("/gw/api/kernels")).status_code == 401
            assert (
                await client.get("/gw/api/kernels", headers={"Authorization": "token wrong"})
            ).status_code == 401
            authed = {"Authorization": f"token {token}"}
            api = await client.get("/gw/api", headers=authed)
            assert api.status_code == 200
            assert "version" in api.json()
            assert (await client.get("/api", headers=authed)).status_code == 404
            specs = await client.get("/gw/api/kernelspecs", headers=authed)
            assert specs.status_code == 200
            assert "python3" in specs.json()["kernelspecs"]

            # The prespawned kernel is usable over the base-URL websocket.
            kernel_id = kernels[0]["id"]
            ws_url = f"ws://127.0.0.1:{port}/gw/api/kernels/{kernel_id}/channels?token={token}"
            async with connect(ws_url, open_timeout=30) as ws:
                reply, outputs = await KernelSocket(ws, v1=False).execute("print('prespawned')")
            assert reply["status"] == "ok"
            assert stdout_of(outputs) == "prespawned\n"
            with pytest.raises(InvalidStatus) as refused:
                async with connect(
                    f"ws://127.0.0.1:{port}/gw/api/kernels/{kernel_id}/channels", open_timeout=30
                ):
                    pass
            assert refused.value.response.status_code == 401
        log = log_path.read_text()
    assert f"listening on 0.0.0.0:{port}" in log, log[-2000:]
    assert "without a token" not in log
    assert token not in log


def test_port_retries_moves_to_a_later_port(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        with launched({"KG_PORT": str(taken), "KG_PORT_RETRIES": "3"}, tmp_path) as (process, log_path):
            port = listening_port(process, log_path)
            assert taken < port <= taken + 3, f"listening on {port}, blocked {taken}"
            response = wait_answering(f"http://127.0.0.1:{port}/api", process, log_path)
            assert response.status_code == 200


def test_port_retries_zero_fails_on_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        started = time.monotonic()
        result = run_fastkg([], {"KG_IP": "127.0.0.1", "KG_PORT": str(taken), "KG_PORT_RETRIES": "0"})
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    assert str(taken) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_kg_flag_spelling_overrides_environment(tmp_path: Path) -> None:
    env_port, flag_port = free_port(), free_port()
    env = {"KG_PORT": str(env_port), "KG_PORT_RETRIES": "0", "KG_LIST_KERNELS": "False"}
    args = [f"--KernelGatewayApp.port={flag_port}", "--KernelGatewayApp.list_kernels=True"]
    with launched(env, tmp_path, args) as (process, log_path):
        assert listening_port(process, log_path) == flag_port
        response = wait_answering(f"http://127.0.0.1:{flag_port}/api/kernels", process, log_path)
        assert response.status_code == 200, "--KernelGatewayApp.list_kernels did not override KG_LIST_KERNELS"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{env_port}/api", timeout=2)


# -- security in logs ----------------------------------------------------------------------------------------
async def test_token_never_logged(tmp_path: Path) -> None:
    secret = "secret-XYZ"
    env = {"KG_AUTH_TOKEN": secret, "KG_LIST_KERNELS": "True", "FASTKG_LOG_LEVEL": "DEBUG"}
    with fastkg_process(env, tmp_path) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
            q = {"token": secret}
            assert (await client.get("/api", params=q)).status_code == 200
            assert (await client.get("/api/kernels", params=q)).status_code == 200
            assert (await client.get("/api/no-such-route", params=q)).status_code == 404
            assert (await client.get(f"/api/kernels/{uuid.uuid4()}", params=q)).status_code == 404
            response = await client.post("/api/kernels", params=q, json={"name": "no-such-spec"})
            assert response.status_code == 404
            assert secret not in response.text
            response = await client.post("/api/kernels", params=q, json={})
            assert response.status_code == 201, response.text
            kernel_id = response.json()["id"]
            assert secret not in response.text
            for path in ("/api/kernels", f"/api/kernels/{kernel_id}", "/api/kernelspecs", "/api/sessions"):
                body = (await client.get(path, params=q)).text
                assert secret not in body, f"{path} leaks the token"
        ws = await gw.connect(kernel_id)  # ?token=secret-XYZ in the query string
        reply, outputs = await ws.execute("import os; print(repr(os.environ.get('KG_AUTH_TOKEN')))")
        assert reply["status"] == "ok"
        assert stdout_of(outputs) == "None\n", "the kernel inherited KG_AUTH_TOKEN"
        await ws.close()
        async with connect(gw.ws_url(kernel_id), subprotocols=["v1.kernel.websocket.jupyter.org"]) as v1:  # type: ignore[list-item]
            assert v1.subprotocol == "v1.kernel.websocket.jupyter.org"
            # The client offered permessage-deflate (as browsers do); the gateway does not compress.
            assert v1.request is not None
            assert "permessage-deflate" in str(v1.request.headers)
            assert v1.protocol.extensions == []
        await asyncio.sleep(0.3)
        assert gw.process is not None
        gw.process.send_signal(signal.SIGTERM)
        assert gw.process.wait(15) == 0
        log = gw.log()
    assert "listening on" in log, log[-2000:]
    assert "without a token" not in log  # loopback
    assert "token=[secret]" in log, "expected the (scrubbed) websocket request line at DEBUG level"
    assert secret not in log, "the token appears in the log:\n" + "\n".join(
        line for line in log.splitlines() if secret in line
    )


def test_warns_when_public_without_token_and_port_flag_wins(tmp_path: Path) -> None:
    env_port, flag_port = free_port(), free_port()
    with launched({"KG_IP": "0.0.0.0", "KG_PORT": str(env_port)}, tmp_path, [f"--port={flag_port}"]) as (
        process,
        log_path,
    ):
        response = wait_answering(f"http://127.0.0.1:{flag_port}/api", process, log_path)
        assert response.status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{env_port}/api", timeout=2)
        log = log_path.read_text()
    assert f"listening on 0.0.0.0:{flag_port}" in log, log[-2000:]
    warning = [line for line in log.splitlines() if "without a token" in line]
    assert warning, f"no warning for 0.0.0.0 without a token:\n{log[-2000:]}"
    assert warning[0].startswith("[W"), warning[0]
    assert "0.0.0.0" in warning[0]
    assert "KG_AUTH_TOKEN" in warning[0]
