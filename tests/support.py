"""Test support: run the gateway (in-process uvicorn or the real `fastkg` command) and talk to kernels."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from app.config import Settings
from app.http.protocol import TolerantH11Protocol
from app.kernels.wire import V1_SUBPROTOCOL, decode_v1, encode_v1
from app.main import create_app

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


def free_port_block(size: int) -> int:
    """The first port of `size` consecutive ports that are all free on loopback now."""
    base = 20000  # below Linux's ephemeral range, as the gateway's kernel ports are
    for first in range(base, base + 5000, size):
        probes = []
        try:
            for port in range(first, first + size):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first
    raise AssertionError("no free block of ports")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    """A running gateway and an HTTP client already carrying its token."""

    url: str
    token: str | None
    client: httpx.AsyncClient
    app: Any = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def ws_url(self, kernel_id: str, session_id: str | None = None, token: bool = True) -> str:
        """The channels URL; a fresh session_id unless one is given, and none at all for `""`."""
        query = [] if session_id == "" else [f"session_id={session_id or uuid.uuid4().hex}"]
        if token and self.token:
            query.append(f"token={self.token}")
        return self.url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels?" + "&".join(query)

    async def start_kernel(self, **body: Any) -> str:
        response = await self.client.post("/api/kernels", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def connect(
        self, kernel_id: str, *, v1: bool = False, session_id: str | None = None
    ) -> KernelSocket:
        ws = await connect(
            self.ws_url(kernel_id, session_id),
            subprotocols=[V1_SUBPROTOCOL] if v1 else None,  # type: ignore[list-item]
            max_size=None,
            open_timeout=30,
        )
        return KernelSocket(ws, v1=v1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


@contextlib.asynccontextmanager
async def serve(settings: Settings | None = None, **overrides: Any) -> AsyncIterator[Gateway]:
    """Run create_app(settings) under a real uvicorn server on a free loopback port, in this event loop."""
    settings = settings or Settings(**{"port": free_port(), **overrides})
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.port,
        log_level="warning",
        ws_max_size=10 << 20,
        http=TolerantH11Protocol,
        proxy_headers=False,  # KG_TRUST_XHEADERS is read as Tornado reads it (app/http/forwarded.py)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(90):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server exited during startup")
                await asyncio.sleep(0.02)
        base = f"http://127.0.0.1:{settings.port}{settings.base_url}"
        headers = {"Authorization": f"token {settings.token}"} if settings.token else {}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            yield Gateway(base, settings.token, client, app=app)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)


@contextlib.contextmanager
def fastkg_process(env: dict[str, str], tmp_path: Path, args: list[str] | None = None) -> Iterator[Gateway]:
    """Run the real `fastkg` command as a subprocess; yield once it answers HTTP."""
    port = int(env.get("KG_PORT") or free_port())
    full_env = {**os.environ, "KG_IP": "127.0.0.1", "KG_PORT": str(port), "KG_PORT_RETRIES": "0", **env}
    log_path = tmp_path / f"fastkg-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", *(args or [])],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    token = env.get("KG_AUTH_TOKEN") or None
    base = f"http://127.0.0.1:{port}{env.get('KG_BASE_URL', '').rstrip('/')}"
    try:
        wait_http(base, process, log_path)
        headers = {"Authorization": f"token {token}"} if token else {}
        # This context manager is synchronous (sync tests use it too), so it cannot await aclose(): without
        # keep-alive no connection outlives its response, and none is left for the garbage collector.
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        client = httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=no_keepalive)
        yield Gateway(base, token, client, process=process, log_path=log_path)
    finally:
        stop_process(process)


async def raw_http(url: str, request: bytes, limit: float = 60) -> tuple[int, dict[str, str], bytes]:
    """Send `request` exactly as written to the server of `url` (end it with `Connection: close`) and
    return the reply's status, headers (lower-case names) and body: for what HTTP clients refuse to send."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), limit)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def wait_http(base: str, process: subprocess.Popen[bytes], log_path: Path, limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fastkg exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(base + "/api", timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError("fastkg did not start")


def stop_process(process: subprocess.Popen[bytes], limit: float = 15) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def new_message(
    msg_type: str,
    content: dict[str, Any],
    session: str,
    channel: str = "shell",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "test",
            "session": session,
            "date": datetime.now(UTC).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": metadata or {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


def execute_content(code: str, allow_stdin: bool = False) -> dict[str, Any]:
    return {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": allow_stdin,
        "stop_on_error": True,
    }


@dataclass
class Received:
    channel: str
    msg_type: str
    parent_id: str
    content: dict[str, Any]
    header: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


class KernelSocket:
    """A plain websocket client speaking either framing, as third-party clients do."""

    def __init__(self, ws: ClientConnection, *, v1: bool) -> None:
        self.ws = ws
        self.v1 = v1
        self.session = uuid.uuid4().hex

    async def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        message = new_message(msg_type, content, self.session, channel)
        if self.v1:
            parts = [
                json.dumps(message[k]).encode() for k in ("header", "parent_header", "metadata", "content")
            ]
            await self.ws.send(encode_v1(channel, parts))
        else:
            await self.ws.send(json.dumps(message))
        return str(message["header"]["msg_id"])

    async def recv(self, limit: float = 30) -> Received:
        data = await asyncio.wait_for(self.ws.recv(), limit)
        if isinstance(data, bytes) and self.v1:
            return decode_v1_from_server(data)
        assert isinstance(data, str), "legacy frames without buffers are text"
        msg = json.loads(data)
        return Received(
            msg["channel"],
            msg["msg_type"],
            msg["parent_header"].get("msg_id", ""),
            msg["content"],
            msg["header"],
            msg,
        )

    async def until(self, predicate: Any, limit: float = 30) -> Received:
        async with asyncio.timeout(limit):
            while True:
                message = await self.recv(limit)
                if predicate(message):
                    return message

    async def execute(self, code: str, limit: float = 30) -> tuple[dict[str, Any], list[Received]]:
        """Run code; return the execute_reply content and every iopub message for it (up to idle)."""
        msg_id = await self.send("execute_request", execute_content(code))
        reply: dict[str, Any] | None = None
        outputs: list[Received] = []
        idle = False
        async with asyncio.timeout(limit):
            while reply is None or not idle:
                message = await self.recv(limit)
                if message.parent_id != msg_id:
                    continue
                if message.msg_type == "execute_reply":
                    reply = message.content
                elif message.msg_type == "status" and message.content["execution_state"] == "idle":
                    idle = True
                else:
                    outputs.append(message)
        return reply, outputs

    async def close(self) -> None:
        await self.ws.close()


def decode_v1_from_server(data: bytes) -> Received:
    """Server frames use the same v1 layout; reuse the gateway's decoder for the offsets."""
    count = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    channel = data[offsets[0] : offsets[1]].decode()
    parts = [data[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    header, parent, _metadata, content = (json.loads(p) if p else {} for p in parts[:4])
    return Received(channel, header["msg_type"], parent.get("msg_id", ""), content, header)


def stdout_of(outputs: list[Received]) -> str:
    return "".join(m.content.get("text", "") for m in outputs if m.msg_type == "stream")


__all__ = ["decode_v1", "stdout_of"]
