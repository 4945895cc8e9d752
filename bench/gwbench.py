#!/usr/bin/env python3
"""gwbench -- black-box benchmark for Jupyter kernel gateways.

Targets any server that speaks the Jupyter Server kernel REST + websocket API
(Jupyter Kernel Gateway "jupyter-websocket" mode, jupyter_server, jupyverse, ...)
or the Kernel Gateway "notebook-http" mode (annotated notebook cells as HTTP
endpoints), and measures the physical floor (jupyter_client talking to a kernel
directly over ZMQ, no gateway).

Deps: Python 3.11, httpx, websockets (>=13).  Optional: wrk on PATH (http_mode),
jupyter_client (floor), orjson/msgspec (micro benchmarks only).

Sub-commands
------------
  run      --url URL --token TOK [--server-pid PID] [--scenarios ...]
  floor    [--scenarios exec_latency,iopub_stream,kernel_start,micro]
  launch   PEER [--port P] [run options]     start a known peer, run, stop it
  compare  --peers kg-ws,jupyter_server,jupyverse,floor --rounds 3 [...]
           start all peers, run the scenarios interleaved (A B C A B C ...),
           print medians + spread across rounds and ratios over the floor.
  notebook --out FILE                        write the bundled notebook-http API

Every sub-command prints a human table on stderr and a JSON document on stdout
(or to --json-out).  See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

WS_V1 = "v1.kernel.websocket.jupyter.org"
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULTS = dict(
    scenarios="kernel_start,exec_latency,exec_throughput_concurrent,iopub_stream,ws_fanout",
    n_start=8,
    n_exec=300,
    warmup=30,
    conc_kernels=8,
    conc_seconds=6.0,
    stream_mb=20,
    stream_chunk_kb=16,
    small_msgs=5000,
    stream_reps=2,
    fanout=32,
    fanout_iters=20,
    http_conc="1,8,32",
    http_duration=5.0,
)


# --------------------------------------------------------------------------- stats
def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(xs_s: list[float]) -> dict:
    xs = [x * 1000.0 for x in xs_s]
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "mean": round(statistics.fmean(xs), 3),
        "p50": round(pct(xs, 50), 3),
        "p95": round(pct(xs, 95), 3),
        "p99": round(pct(xs, 99), 3),
        "min": round(min(xs), 3),
        "max": round(max(xs), 3),
    }


# --------------------------------------------------------------------------- /proc
def _read_stat(pid: int):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2 :].split()
    # rest[0]=state, rest[1]=ppid, utime=rest[11], stime=rest[12]
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _read_stat(int(d))
            if st:
                children.setdefault(st[0], []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class ProcWatch:
    """CPU seconds of the server process and of its descendants (kernels),
    plus sampled peak RSS of the server, over a measured interval."""

    def __init__(self, pid: int | None, sample_s: float = 0.05):
        self.pid = pid
        self.sample_s = sample_s
        self._stop = threading.Event()
        self.peak_rss_kb = 0
        self.peak_kernels_rss_kb = 0

    def _cpu(self):
        if not self.pid:
            return None
        st = _read_stat(self.pid)
        srv = st[1] if st else 0.0
        kern = 0.0
        for c in descendants(self.pid):
            s = _read_stat(c)
            if s:
                kern += s[1]
        return srv, kern

    def _sampler(self):
        n = 0
        while not self._stop.wait(self.sample_s):
            self.peak_rss_kb = max(self.peak_rss_kb, rss_kb(self.pid))
            n += 1
            if n % 10 == 0:  # descendants scan is costlier: every 0.5 s
                self.peak_kernels_rss_kb = max(
                    self.peak_kernels_rss_kb, sum(rss_kb(c) for c in descendants(self.pid))
                )

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.c0 = self._cpu()
        self.client0 = time.process_time()
        if self.pid:
            self.peak_rss_kb = rss_kb(self.pid)
            self._th = threading.Thread(target=self._sampler, daemon=True)
            self._th.start()
        return self

    def __exit__(self, *a):
        self.wall = time.perf_counter() - self.t0
        self.client_cpu = time.process_time() - self.client0
        if self.pid:
            self._stop.set()
            self._th.join()
            c1 = self._cpu()
            self.server_cpu = c1[0] - self.c0[0]
            # kernels that died during the interval drop out; clamp at 0
            self.kernel_cpu = max(0.0, c1[1] - self.c0[1])

    def report(self, per: int | None = None) -> dict:
        r = {"wall_s": round(self.wall, 3), "client_cpu_s": round(self.client_cpu, 3)}
        if self.pid:
            r.update(
                server_cpu_s=round(self.server_cpu, 3),
                kernel_cpu_s=round(self.kernel_cpu, 3),
                server_peak_rss_mb=round(self.peak_rss_kb / 1024, 1),
                server_cpu_util=round(self.server_cpu / self.wall, 3) if self.wall else None,
            )
            if self.peak_kernels_rss_kb:
                r["kernels_peak_rss_mb"] = round(self.peak_kernels_rss_kb / 1024, 1)
            if per:
                r["server_cpu_us_per_op"] = round(self.server_cpu / per * 1e6, 1)
                r["kernel_cpu_us_per_op"] = round(self.kernel_cpu / per * 1e6, 1)
        if per:
            r["client_cpu_us_per_op"] = round(self.client_cpu / per * 1e6, 1)
        return r


# --------------------------------------------------------------------------- messages
def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def make_msg(msg_type: str, content: dict, session: str) -> dict:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "gwbench",
            "session": session,
            "date": _now_iso(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "buffers": [],
    }


def exec_content(code: str) -> dict:
    return {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }


def ws_v1_pack(channel: str, parts: list[bytes]) -> bytes:
    ch = channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(ch))
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    return b"".join(
        [len(offsets).to_bytes(8, "little"), *(o.to_bytes(8, "little") for o in offsets), ch, *parts]
    )


def ws_v1_unpack(buf: bytes):
    n = int.from_bytes(buf[:8], "little")
    offs = [int.from_bytes(buf[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(n)]
    channel = buf[offs[0] : offs[1]].decode()
    parts = [buf[offs[i] : offs[i + 1]] for i in range(1, n - 1)]
    return channel, parts


class Msg:
    __slots__ = ("channel", "msg_type", "parent_id", "_content", "_raw")

    def __init__(self, channel, msg_type, parent_id, content=None, raw=None):
        self.channel, self.msg_type, self.parent_id = channel, msg_type, parent_id
        self._content, self._raw = content, raw

    @property
    def content(self) -> dict:
        if self._content is None:
            self._content = json.loads(self._raw)
        return self._content


# --------------------------------------------------------------------------- gateway client
class Gateway:
    """REST side.  Auth: 'Authorization: token T' header on every request and
    the cookies the server hands out (jupyverse token mode logs in via
    ?token=... once and then wants its JWT cookie, also on websockets)."""

    def __init__(self, url: str, token: str | None, kernel_name: str = "python3", protocol: str = "json"):
        import httpx

        self.url = url.rstrip("/")
        self.token = token
        self.kernel_name = kernel_name
        self.protocol = protocol
        headers = {"Authorization": f"token {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=120.0)

    async def login(self):
        params = {"token": self.token} if self.token else {}
        r = await self.http.get("/api/kernelspecs", params=params)
        r.raise_for_status()
        return r.json()

    use_sessions = False  # set when the server lacks POST /api/kernels (jupyverse)
    _sessions: dict

    async def start_kernel(self) -> str:
        if not self.use_sessions:
            r = await self.http.post("/api/kernels", json={"name": self.kernel_name})
            if r.status_code in (404, 405):
                self.use_sessions = True
                print("[gwbench] POST /api/kernels unsupported; using POST /api/sessions", file=sys.stderr)
            elif r.status_code not in (200, 201):
                raise RuntimeError(f"POST /api/kernels -> {r.status_code} {r.text[:200]}")
            else:
                return r.json()["id"]
        n = uuid.uuid4().hex[:8]
        r = await self.http.post(
            "/api/sessions",
            json={
                "kernel": {"name": self.kernel_name},
                "name": f"b{n}.ipynb",
                "path": f"b{n}.ipynb",
                "type": "notebook",
            },
        )
        if r.status_code not in (200, 201):
            raise RuntimeError(f"POST /api/sessions -> {r.status_code} {r.text[:200]}")
        d = r.json()
        if not hasattr(self, "_sessions") or self._sessions is None:
            self._sessions = {}
        self._sessions[d["kernel"]["id"]] = d["id"]
        return d["kernel"]["id"]

    async def delete_kernel(self, kid: str):
        sid = (getattr(self, "_sessions", None) or {}).pop(kid, None)
        if sid:
            r = await self.http.delete(f"/api/sessions/{sid}")
            r2 = await self.http.delete(f"/api/kernels/{kid}")  # make sure the kernel is gone
            return r.status_code
        r = await self.http.delete(f"/api/kernels/{kid}")
        return r.status_code

    def ws_url(self, kid: str, session: str) -> str:
        base = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        q = f"session_id={session}"
        if self.token:
            q += f"&token={self.token}"
        return f"{base}/api/kernels/{kid}/channels?{q}"

    def ws_headers(self) -> dict:
        h = {}
        if self.token:
            h["Authorization"] = f"token {self.token}"
        ck = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        if ck:
            h["Cookie"] = ck
        return h

    async def connect(self, kid: str) -> "KernelWS":
        # the websocket session_id must equal header.session of the messages we send:
        # jupyverse routes shell replies by parent_header.session
        session = uuid.uuid4().hex
        k = KernelWS(self.ws_url(kid, session), self.ws_headers(), self.protocol, session)
        await k.connect()
        return k

    async def aclose(self):
        await self.http.aclose()


class KernelWS:
    def __init__(self, url: str, headers: dict, protocol: str = "json", session: str | None = None):
        self.url, self.headers, self.protocol = url, headers, protocol
        self.session = session or uuid.uuid4().hex
        self.ws = None

    async def connect(self):
        from websockets.asyncio.client import connect

        subp = [WS_V1] if self.protocol == "v1" else None
        self.ws = await connect(
            self.url,
            additional_headers=self.headers,
            subprotocols=subp,
            max_size=None,
            compression=None,
            ping_interval=None,
            open_timeout=60,
        )
        if self.protocol == "v1" and self.ws.subprotocol != WS_V1:
            # server refused v1: fall back to the legacy JSON framing
            self.protocol = "json"

    async def close(self):
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def send(self, channel: str, msg_type: str, content: dict) -> str:
        m = make_msg(msg_type, content, self.session)
        if self.protocol == "v1":
            parts = [json.dumps(m[k]).encode() for k in ("header", "parent_header", "metadata", "content")]
            await self.ws.send(ws_v1_pack(channel, parts))
        else:
            m["channel"] = channel
            await self.ws.send(json.dumps(m))
        return m["header"]["msg_id"]

    async def recv(self) -> Msg:
        data = await self.ws.recv()
        if isinstance(data, (bytes, bytearray, memoryview)):
            ch, parts = ws_v1_unpack(bytes(data))
            hdr = json.loads(parts[0])
            par = json.loads(parts[1]) if parts[1] else {}
            return Msg(ch, hdr.get("msg_type"), par.get("msg_id"), raw=parts[3])
        m = json.loads(data)
        return Msg(
            m.get("channel"),
            m.get("msg_type") or m["header"]["msg_type"],
            (m.get("parent_header") or {}).get("msg_id"),
            content=m.get("content"),
        )

    async def kernel_info(self, timeout: float = 90.0, resend: float = 1.0) -> int:
        """Send kernel_info_request until a reply arrives; returns #sends."""
        deadline = time.perf_counter() + timeout
        sends = 0
        ids = set()
        while time.perf_counter() < deadline:
            ids.add(await self.send("shell", "kernel_info_request", {}))
            sends += 1
            t_end = min(deadline, time.perf_counter() + resend)
            while True:
                left = t_end - time.perf_counter()
                if left <= 0:
                    break
                try:
                    m = await asyncio.wait_for(self.recv(), left)
                except asyncio.TimeoutError:
                    break
                if m.msg_type == "kernel_info_reply" and m.parent_id in ids:
                    return sends
        raise TimeoutError("no kernel_info_reply")

    async def execute(self, code: str, timeout: float = 300.0) -> dict:
        mid = await self.send("shell", "execute_request", exec_content(code))
        reply = idle = False
        nbytes = nstream = nmsgs = 0
        status = None
        deadline = time.perf_counter() + timeout
        while not (reply and idle):
            m = await asyncio.wait_for(self.recv(), max(0.001, deadline - time.perf_counter()))
            if m.parent_id != mid:
                continue
            nmsgs += 1
            t = m.msg_type
            if t == "stream":
                nstream += 1
                nbytes += len(m.content["text"])
            elif t == "execute_reply":
                reply = True
                status = m.content.get("status")
            elif t == "status" and m.content.get("execution_state") == "idle":
                idle = True
        return {"status": status, "stream_bytes": nbytes, "stream_msgs": nstream, "msgs": nmsgs}


# --------------------------------------------------------------------------- cells
def big_stream_code(mb: int, chunk_kb: int) -> tuple[str, int]:
    chunk = chunk_kb * 1024
    n = max(1, (mb * 1024 * 1024) // chunk)
    code = (
        "import sys\n"
        f"_c = 'x' * {chunk - 1} + '\\n'\n"
        f"for _i in range({n}):\n"
        "    sys.stdout.write(_c)\n"
        "    sys.stdout.flush()\n"
    )
    return code, n * chunk


def small_msgs_code(n: int) -> tuple[str, int]:
    code = f"import sys\nfor _i in range({n}):\n    sys.stdout.write('m\\n')\n    sys.stdout.flush()\n"
    return code, n * 2


# --------------------------------------------------------------------------- ws scenarios
async def sc_kernel_start(gw: Gateway, a, pid) -> dict:
    rest, usable, delete, sends = [], [], [], []
    with ProcWatch(pid) as w:
        for _ in range(a.n_start):
            t0 = time.perf_counter()
            kid = await gw.start_kernel()
            t1 = time.perf_counter()
            k = await gw.connect(kid)
            sends.append(await k.kernel_info())
            t2 = time.perf_counter()
            await k.close()
            t3 = time.perf_counter()
            await gw.delete_kernel(kid)
            delete.append(time.perf_counter() - t3)
            rest.append(t1 - t0)
            usable.append(t2 - t0)
    return {
        "rest_ms": summary_ms(rest),
        "usable_ms": summary_ms(usable),
        "delete_ms": summary_ms(delete),
        "kernel_info_sends_max": max(sends),
        "proc": w.report(a.n_start),
    }


async def _fresh_kernel(gw: Gateway):
    kid = await gw.start_kernel()
    k = await gw.connect(kid)
    await k.kernel_info()
    return kid, k


async def sc_exec_latency(gw: Gateway, a, pid) -> dict:
    kid, k = await _fresh_kernel(gw)
    try:
        for _ in range(a.warmup):
            await k.execute("1+1")
        lat = []
        errors = 0
        with ProcWatch(pid) as w:
            for _ in range(a.n_exec):
                t0 = time.perf_counter()
                r = await k.execute("1+1")
                lat.append(time.perf_counter() - t0)
                errors += r["status"] != "ok"
        res = summary_ms(lat)
        res.update(errors=errors, protocol=k.protocol, proc=w.report(a.n_exec))
        return res
    finally:
        await k.close()
        await gw.delete_kernel(kid)


async def sc_exec_throughput(gw: Gateway, a, pid) -> dict:
    pairs = await asyncio.gather(*[_fresh_kernel(gw) for _ in range(a.conc_kernels)])
    try:
        for _, k in pairs:
            for _ in range(5):
                await k.execute("1+1")
        counts = [0] * len(pairs)
        lats: list[float] = []
        stop_at = time.perf_counter() + a.conc_seconds

        async def worker(i, k):
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await k.execute("1+1")
                lats.append(time.perf_counter() - t0)
                counts[i] += 1

        with ProcWatch(pid) as w:
            await asyncio.gather(*[worker(i, k) for i, (_, k) in enumerate(pairs)])
        total = sum(counts)
        return {
            "kernels": len(pairs),
            "executes": total,
            "exec_per_s": round(total / w.wall, 1),
            "latency_ms": summary_ms(lats),
            "fairness_min_max": [min(counts), max(counts)],
            "proc": w.report(total),
        }
    finally:
        for kid, k in pairs:
            await k.close()
        await asyncio.gather(*[gw.delete_kernel(kid) for kid, _ in pairs])


async def _stream_runs(run_one, a, pid, label_bytes: int, code: str):
    runs = []
    for _ in range(a.stream_reps):
        with ProcWatch(pid) as w:
            t0 = time.perf_counter()
            r = await run_one(code)
            dt = time.perf_counter() - t0
        runs.append(
            {
                "s": round(dt, 3),
                "MB_per_s": round(r["stream_bytes"] / dt / 1e6, 2),
                "msgs_per_s": round(r["stream_msgs"] / dt, 1),
                "stream_msgs": r["stream_msgs"],
                "complete": r["stream_bytes"] >= label_bytes,
                "received_fraction": round(r["stream_bytes"] / label_bytes, 4),
                "proc": w.report(),
            }
        )
    return {
        "expected_bytes": label_bytes,
        "median_MB_per_s": statistics.median(x["MB_per_s"] for x in runs),
        "median_msgs_per_s": statistics.median(x["msgs_per_s"] for x in runs),
        "median_s": statistics.median(x["s"] for x in runs),
        "all_complete": all(x["complete"] for x in runs),
        "runs": runs,
    }


async def sc_iopub_stream(gw: Gateway, a, pid) -> dict:
    kid, k = await _fresh_kernel(gw)
    try:
        await k.execute("1+1")
        big, big_bytes = big_stream_code(a.stream_mb, a.stream_chunk_kb)
        small, small_bytes = small_msgs_code(a.small_msgs)
        return {
            "big": await _stream_runs(k.execute, a, pid, big_bytes, big),
            "small": await _stream_runs(k.execute, a, pid, small_bytes, small),
        }
    finally:
        await k.close()
        await gw.delete_kernel(kid)


async def sc_ws_fanout(gw: Gateway, a, pid) -> dict:
    kid, k0 = await _fresh_kernel(gw)
    conns: list[KernelWS] = []
    try:
        t0 = time.perf_counter()
        conns = list(await asyncio.gather(*[gw.connect(kid) for _ in range(a.fanout - 1)]))
        connect_s = time.perf_counter() - t0
        allc = [k0] + conns
        lat = []
        with ProcWatch(pid) as w:
            for i in range(a.fanout_iters):
                marker = f"fan{i}-{uuid.uuid4().hex[:6]}"
                t0 = time.perf_counter()
                await k0.send("shell", "execute_request", exec_content(f"print('{marker}')"))

                async def wait_marker(c: KernelWS):
                    while True:
                        m = await c.recv()
                        if m.msg_type == "stream" and marker in m.content.get("text", ""):
                            return time.perf_counter()

                done = await asyncio.wait_for(asyncio.gather(*[wait_marker(c) for c in allc]), 60)
                lat.append(max(done) - t0)
        return {
            "connections": len(allc),
            "connect_all_ms": round(connect_s * 1000, 1),
            "all_received_ms": summary_ms(lat),
            "proc": w.report(a.fanout_iters),
        }
    finally:
        for c in conns + [k0]:
            await c.close()
        await gw.delete_kernel(kid)


WS_SCENARIOS = {
    "kernel_start": sc_kernel_start,
    "exec_latency": sc_exec_latency,
    "exec_throughput_concurrent": sc_exec_throughput,
    "iopub_stream": sc_iopub_stream,
    "ws_fanout": sc_ws_fanout,
}


# --------------------------------------------------------------------------- http mode
WRK_POST_LUA = """wrk.method = "POST"
wrk.body = '{"msg": "hello", "n": 42, "items": [1, 2, 3]}'
wrk.headers["Content-Type"] = "application/json"
"""


def _wrk_parse(out: str) -> dict:
    def dur(s):
        v, u = re.match(r"([\d.]+)(us|ms|s|m)", s).groups()
        return float(v) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]

    res = {}
    for p in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        if m:
            res[f"p{p}_ms"] = round(dur(m.group(1)), 3)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["req_per_s"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    if m:
        res["socket_errors"] = m.group(1).strip()
    return res


async def _httpx_load(url: str, method: str, conc: int, dur: float, headers: dict) -> dict:
    import httpx

    body = {"msg": "hello", "n": 42, "items": [1, 2, 3]}
    lats: list[float] = []
    bad = 0
    stop = time.perf_counter() + dur
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as c:

        async def w():
            nonlocal bad
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await (c.get(url) if method == "GET" else c.post(url, json=body))
                lats.append(time.perf_counter() - t0)
                bad += r.status_code >= 300

        t0 = time.perf_counter()
        await asyncio.gather(*[w() for _ in range(conc)])
        wall = time.perf_counter() - t0
    s = summary_ms(lats)
    return {
        "req_per_s": round(len(lats) / wall, 1),
        "requests": len(lats),
        "p50_ms": s.get("p50"),
        "p90_ms": round(pct([x * 1000 for x in lats], 90), 3),
        "p99_ms": s.get("p99"),
        "non_2xx": bad,
    }


async def sc_http_mode(a, pid) -> dict:
    base = a.url.rstrip("/")
    headers = {"Authorization": f"token {a.token}"} if a.token else {}
    import httpx

    async with httpx.AsyncClient(headers=headers, timeout=60) as c:  # sanity + warm-up
        r = await c.get(base + "/hello")
        hello_ok = r.status_code == 200 and "hello" in r.text
        r2 = await c.post(base + "/echo", json={"msg": "hello", "n": 42})
        echo_ok = r2.status_code == 200 and '"msg"' in r2.text
        for _ in range(20):
            await c.get(base + "/hello")
    use_wrk = shutil.which("wrk") and not a.no_wrk
    out: dict[str, Any] = {"loader": "wrk" if use_wrk else "httpx", "hello_ok": hello_ok, "echo_ok": echo_ok}
    lua = None
    if use_wrk:
        lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        lua.write(WRK_POST_LUA)
        lua.close()
    for ep, method in (("/hello", "GET"), ("/echo", "POST")):
        for conc in [int(x) for x in a.http_conc.split(",")]:
            with ProcWatch(pid) as w:
                if use_wrk:
                    cmd = [
                        "wrk",
                        "-t1",
                        f"-c{conc}",
                        f"-d{max(1, int(round(a.http_duration)))}s",
                        "--latency",
                        "--timeout",
                        "30s",
                    ]
                    for k, v in headers.items():
                        cmd += ["-H", f"{k}: {v}"]
                    if method == "POST":
                        cmd += ["-s", lua.name]
                    p = await asyncio.create_subprocess_exec(
                        *cmd, base + ep, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
                    )
                    so, _ = await p.communicate()
                    r = _wrk_parse(so.decode())
                else:
                    r = await _httpx_load(base + ep, method, conc, a.http_duration, headers)
            r["proc"] = w.report(r.get("requests") or None)
            out[f"{method} {ep} c={conc}"] = r
    if lua:
        os.unlink(lua.name)
    return out


# --------------------------------------------------------------------------- floor
async def floor_main(a) -> dict:
    from jupyter_client.manager import AsyncKernelManager

    scen = a.scenarios.split(",")
    res: dict[str, Any] = {"target": "floor (jupyter_client direct, no gateway)"}

    async def start():
        km = AsyncKernelManager(kernel_name=a.kernel_name)
        t0 = time.perf_counter()
        await km.start_kernel()
        t1 = time.perf_counter()
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=90)
        return km, kc, t1 - t0, time.perf_counter() - t0

    async def execute(kc, code):
        mid = kc.execute(code, store_history=False)
        nbytes = nstream = 0
        while True:
            m = await kc.get_iopub_msg(timeout=300)
            if m["parent_header"].get("msg_id") != mid:
                continue
            t = m["msg_type"]
            if t == "stream":
                nstream += 1
                nbytes += len(m["content"]["text"])
            elif t == "status" and m["content"]["execution_state"] == "idle":
                break
        while True:
            r = await kc.get_shell_msg(timeout=300)
            if r["parent_header"].get("msg_id") == mid:
                break
        return {"status": r["content"]["status"], "stream_bytes": nbytes, "stream_msgs": nstream}

    async def stop(km, kc):
        kc.stop_channels()
        await km.shutdown_kernel(now=False)

    if "kernel_start" in scen:
        spawn, usable = [], []
        for _ in range(a.n_start):
            km, kc, t_sp, t_us = await start()
            spawn.append(t_sp)
            usable.append(t_us)
            await stop(km, kc)
        res["kernel_start"] = {"rest_ms": summary_ms(spawn), "usable_ms": summary_ms(usable)}

    km, kc, *_ = await start()
    try:
        if "exec_latency" in scen:
            for _ in range(a.warmup):
                await execute(kc, "1+1")
            lat = []
            with ProcWatch(km.provisioner.process.pid if km.provisioner else None) as w:
                for _ in range(a.n_exec):
                    t0 = time.perf_counter()
                    await execute(kc, "1+1")
                    lat.append(time.perf_counter() - t0)
            r = summary_ms(lat)
            rep = w.report(a.n_exec)
            # here the 'server' pid is the kernel itself
            rep["kernel_cpu_us_per_op"] = rep.pop("server_cpu_us_per_op", None)
            rep.pop("kernel_cpu_s", None)
            rep.pop("server_peak_rss_mb", None)
            r["proc"] = rep
            res["exec_latency"] = r
            # kernel_info round trip: ZMQ + ipykernel dispatch, no execute machinery
            ki = []
            for _ in range(a.n_exec):
                t0 = time.perf_counter()
                mid = kc.kernel_info()
                while (await kc.get_shell_msg(timeout=30))["parent_header"].get("msg_id") != mid:
                    pass
                ki.append(time.perf_counter() - t0)
            # drain iopub busy/idle of kernel_info
            await asyncio.sleep(0.2)
            while True:
                try:
                    await kc.get_iopub_msg(timeout=0.05)
                except Exception:
                    break
            res["kernel_info_rtt"] = summary_ms(ki)
        if "iopub_stream" in scen:
            await execute(kc, "1+1")
            big, bb = big_stream_code(a.stream_mb, a.stream_chunk_kb)
            small, sb = small_msgs_code(a.small_msgs)
            ex = lambda code: execute(kc, code)  # noqa: E731
            res["iopub_stream"] = {
                "big": await _stream_runs(ex, a, None, bb, big),
                "small": await _stream_runs(ex, a, None, sb, small),
            }
    finally:
        await stop(km, kc)
    if "micro" in scen:
        res["micro"] = micro_bench()
    return res


def micro_bench(n: int = 20000) -> dict:
    """Per-message CPU cost of the serialisation work a gateway does."""
    from jupyter_client.session import Session

    out: dict[str, Any] = {}
    sess = Session(key=uuid.uuid4().hex.encode())
    reply = sess.msg(
        "execute_reply", {"status": "ok", "execution_count": 1, "user_expressions": {}, "payload": []}
    )
    reply["parent_header"] = sess.msg_header("execute_request")
    status = sess.msg("status", {"execution_state": "idle"})
    stream = sess.msg("stream", {"name": "stdout", "text": "x" * 16383 + "\n"})

    def timeit(fn, k=n):
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        return round((time.perf_counter() - t0) / k * 1e6, 2)

    for name, m in (("execute_reply", reply), ("stream16k", stream), ("status", status)):
        wire = sess.serialize(m)  # [DELIM, sig, h, ph, md, c]
        frames = wire[1:] if wire[0] == b"<IDS|MSG>" else wire
        ws_json = json.dumps({**m, "channel": "iopub", "buffers": []}, default=str)
        d: dict[str, Any] = {
            "zmq_bytes": sum(len(x) for x in frames),
            "session_serialize_us": timeit(lambda: sess.serialize(m)),
            "session_deserialize_us": timeit(
                lambda: (sess.digest_history.clear(), sess.deserialize(sess.feed_identities(wire)[1]))
            ),
            "session_deserialize_nocontent_us": timeit(
                lambda: (
                    sess.digest_history.clear(),
                    sess.deserialize(sess.feed_identities(wire)[1], content=False),
                )
            ),
            "json_ws_dumps_us": timeit(
                lambda: json.dumps({**m, "channel": "iopub", "buffers": []}, default=str)
            ),
            "json_ws_loads_us": timeit(lambda: json.loads(ws_json)),
            "v1_pack_raw_frames_us": timeit(lambda: ws_v1_pack("iopub", list(frames[1:5]))),
        }
        try:
            import orjson

            d["orjson_ws_dumps_us"] = timeit(
                lambda: orjson.dumps({**m, "channel": "iopub", "buffers": []}, default=str)
            )
            d["orjson_ws_loads_us"] = timeit(lambda: orjson.loads(ws_json))
        except ImportError:
            pass
        out[name] = d
    return out


# --------------------------------------------------------------------------- peers
def venv(env_name: str, default: str) -> str:
    return os.environ.get(env_name, default)


def notebook_json() -> dict:
    def cell(src):
        return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}

    return {
        "cells": [
            cell("import json"),
            cell("# GET /hello\nprint('hello world')"),
            cell("# POST /echo\nreq = json.loads(REQUEST)\nprint(json.dumps(req['body']))"),
            cell(
                "# ResponseInfo POST /echo\n"
                "print(json.dumps({'headers': {'Content-Type': 'application/json'}, 'status': 200}))"
            ),
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def peer_spec(name: str, port: int, token: str, workdir: str, extra: list[str]) -> dict:
    """Known peers.  Suffix '+nodelay' (kg-ws, kg-http, jupyter_server) preloads
    nodelay_patch/sitecustomize.py, forcing TCP_NODELAY on tornado sockets."""
    if name.endswith("+nodelay"):
        spec = peer_spec(name[: -len("+nodelay")], port, token, workdir, extra)
        spec["name"] = name
        spec["env"] = {"PYTHONPATH": os.path.join(HERE, "nodelay_patch")}
        return spec
    kg = venv("GWBENCH_KG_VENV", sys.prefix)
    js = venv("GWBENCH_JS_VENV", sys.prefix)
    jv = venv("GWBENCH_JV_VENV", sys.prefix)
    rate = os.environ.get("GWBENCH_RATE_LIMIT", "off") == "off"
    no_rate = ["--ZMQChannelsWebsocketConnection.limit_rate=False"] if rate else []
    if name == "kg-ws":
        cmd = [
            f"{kg}/bin/jupyter",
            "kernelgateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}",
            f"--KernelGatewayApp.auth_token={token}",
            "--KernelGatewayApp.log_level=WARN",
            *no_rate,
        ]
        ready, mode = "/api/kernelspecs", "ws"
    elif name.startswith("kg-http"):
        nb = os.path.join(workdir, "api.ipynb")
        with open(nb, "w") as f:
            json.dump(notebook_json(), f)
        cmd = [
            f"{kg}/bin/jupyter",
            "kernelgateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}",
            "--KernelGatewayApp.api=kernel_gateway.notebook_http",
            f"--KernelGatewayApp.seed_uri={nb}",
            "--KernelGatewayApp.log_level=WARN",
        ]
        m = re.match(r"kg-http(?:-pool(\d+))?$", name)
        if m and m.group(1):
            cmd.append(f"--KernelGatewayApp.prespawn_count={m.group(1)}")
        token = ""  # notebook-http endpoints are public in KG (auth_token would apply, kept off)
        ready, mode = "/hello", "http"
    elif name == "jupyter_server":
        cmd = [
            f"{js}/bin/jupyter",
            "server",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={workdir}",
            "--ServerApp.log_level=WARN",
            *no_rate,
        ]
        ready, mode = "/api/kernelspecs", "ws"
    elif name == "jupyverse":
        cmd = [
            f"{jv}/bin/jupyverse",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--set",
            "auth.mode=token",
            "--set",
            f"auth.token={token}",
        ]
        for d in ("lab", "nbconvert", "terminals", "page_config", "login"):
            cmd += ["--disable", d]
        ready, mode = "/api/kernelspecs", "ws"
    elif name == "fastkg-ws" or name.startswith("fastkg-http"):
        # the project under test, configured like KG through KG_* variables (FASTKG_CMD: its command)
        cmd = shlex.split(os.environ.get("FASTKG_CMD", "fastkg"))
        env = {"KG_IP": "127.0.0.1", "KG_PORT": str(port), "KG_PORT_RETRIES": "0", "KG_AUTH_TOKEN": token}
        ready, mode = "/api/kernelspecs", "ws"
        if name.startswith("fastkg-http"):
            nb = os.path.join(workdir, "api.ipynb")
            with open(nb, "w") as f:
                json.dump(notebook_json(), f)
            token = ""
            env.update(KG_API="kernel_gateway.notebook_http", KG_SEED_URI=nb, KG_AUTH_TOKEN="")
            m = re.match(r"fastkg-http(?:-pool(\d+))?$", name)
            if m and m.group(1):
                env["KG_PRESPAWN_COUNT"] = m.group(1)
            ready, mode = "/hello", "http"
        return {
            "name": name,
            "cmd": cmd + extra,
            "port": port,
            "token": token,
            "ready": ready,
            "mode": mode,
            "env": env,
        }
    else:
        raise SystemExit(f"unknown peer {name}; custom servers: use `run --url`")
    return {"name": name, "cmd": cmd + extra, "port": port, "token": token, "ready": ready, "mode": mode}


class Peer:
    def __init__(self, spec: dict, logdir: str):
        self.spec = spec
        self.logdir = logdir
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{spec['port']}"

    def start(self, timeout: float = 90.0):
        import httpx

        os.makedirs(self.logdir, exist_ok=True)
        env = dict(os.environ)
        env["JUPYTER_RUNTIME_DIR"] = os.path.join(self.logdir, "runtime")
        env["JUPYTER_NO_CONFIG"] = "1"
        env.pop("JUPYTER_CONFIG_DIR", None)
        env.update(self.spec.get("env", {}))
        self.log = open(os.path.join(self.logdir, f"{self.spec['name'].replace('+', '_')}.log"), "ab")
        self.proc = subprocess.Popen(
            self.spec["cmd"], cwd=self.logdir, stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        print(
            f"[gwbench] started {self.spec['name']} pid={self.proc.pid} port={self.spec['port']}",
            file=sys.stderr,
        )
        t0 = time.perf_counter()
        params = {"token": self.spec["token"]} if self.spec["token"] else {}
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.spec['name']} exited rc={self.proc.returncode}; see {self.log.name}"
                )
            with contextlib.suppress(Exception):
                r = httpx.get(self.url + self.spec["ready"], params=params, timeout=2)
                if r.status_code == 200:
                    self.startup_s = time.perf_counter() - t0
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.spec['name']} not ready after {timeout}s")

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        kids = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGINT if self.spec["name"] == "jupyverse" else signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        time.sleep(0.5)
        for k in kids:  # kernels the server should have shut down
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGKILL)
                print(f"[gwbench] killed leftover kernel pid={k}", file=sys.stderr)
        print(f"[gwbench] stopped {self.spec['name']} pid={self.proc.pid}", file=sys.stderr)


# --------------------------------------------------------------------------- drivers
async def run_ws(a, pid=None, scenarios=None) -> dict:
    gw = Gateway(a.url, a.token, a.kernel_name, a.protocol)
    scenarios = scenarios or a.scenarios.split(",")
    try:
        if any(s != "http_mode" for s in scenarios):
            await gw.login()
        res: dict[str, Any] = {"target": a.url}
        for s in scenarios:
            if s == "http_mode":
                res[s] = await sc_http_mode(a, pid)
                continue
            if s not in WS_SCENARIOS:
                raise SystemExit(f"unknown scenario {s}")
            t0 = time.perf_counter()
            try:
                res[s] = await WS_SCENARIOS[s](gw, a, pid)
            except Exception as e:  # keep going, report the failure
                res[s] = {"error": f"{type(e).__name__}: {e}"}
            print(f"[gwbench]   {s}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        return res
    finally:
        await gw.aclose()


def headline(res: dict) -> dict:
    """Flatten a result document into the few numbers we compare."""
    h: dict[str, float] = {}

    def g(path):
        cur = res
        for p in path.split("."):
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return cur

    for key, path in {
        "start_rest_p50_ms": "kernel_start.rest_ms.p50",
        "start_usable_p50_ms": "kernel_start.usable_ms.p50",
        "start_usable_p95_ms": "kernel_start.usable_ms.p95",
        "exec_p50_ms": "exec_latency.p50",
        "exec_p95_ms": "exec_latency.p95",
        "exec_p99_ms": "exec_latency.p99",
        "exec_srv_cpu_us": "exec_latency.proc.server_cpu_us_per_op",
        "exec_kernel_cpu_us": "exec_latency.proc.kernel_cpu_us_per_op",
        "kernel_info_rtt_p50_ms": "kernel_info_rtt.p50",
        "conc_exec_per_s": "exec_throughput_concurrent.exec_per_s",
        "conc_p50_ms": "exec_throughput_concurrent.latency_ms.p50",
        "conc_srv_cpu_us": "exec_throughput_concurrent.proc.server_cpu_us_per_op",
        "stream_big_MB_s": "iopub_stream.big.median_MB_per_s",
        "stream_big_complete": "iopub_stream.big.all_complete",
        "stream_small_msgs_s": "iopub_stream.small.median_msgs_per_s",
        "stream_small_complete": "iopub_stream.small.all_complete",
        "fanout_all_p50_ms": "ws_fanout.all_received_ms.p50",
        "fanout_connect_ms": "ws_fanout.connect_all_ms",
    }.items():
        v = g(path)
        if v is not None:
            h[key] = v
    hm = res.get("http_mode") or {}
    for k, v in hm.items():
        if isinstance(v, dict) and "req_per_s" in v:
            short = k.replace(" ", "_")
            h[f"{short}_rps"] = v["req_per_s"]
            h[f"{short}_p50_ms"] = v.get("p50_ms")
            h[f"{short}_p99_ms"] = v.get("p99_ms")
            pr = v.get("proc", {})
            if "server_cpu_us_per_op" in pr:
                h[f"{short}_srv_cpu_us"] = pr["server_cpu_us_per_op"]
                h[f"{short}_kernel_cpu_us"] = pr["kernel_cpu_us_per_op"]
            if "server_peak_rss_mb" in pr:
                h[f"{short}_srv_peak_rss_mb"] = pr["server_peak_rss_mb"]
    return h


def print_table(rows: dict[str, dict], title: str = "", floor: str | None = None):
    """rows: peer -> {metric: value or {'median','min','max'}}"""
    metrics: list[str] = []
    for r in rows.values():
        for m in r:
            if m not in metrics:
                metrics.append(m)
    peers = list(rows)
    w = max([len(m) for m in metrics] + [10])
    print(f"\n== {title}", file=sys.stderr)
    print(f"{'metric':<{w}} " + " ".join(f"{p:>24}" for p in peers), file=sys.stderr)
    for m in metrics:
        cells = []
        for p in peers:
            v = rows[p].get(m)
            if v is None:
                cells.append(f"{'-':>24}")
                continue
            if isinstance(v, dict):
                s = f"{v['median']:.4g} [{v['min']:.4g}-{v['max']:.4g}]"
                med = v["median"]
            else:
                s = f"{v:.4g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
                med = v
            if floor and p != floor and isinstance(med, (int, float)) and not isinstance(med, bool):
                fv = rows.get(floor, {}).get(m)
                fv = fv["median"] if isinstance(fv, dict) else fv
                if isinstance(fv, (int, float)) and fv and not isinstance(fv, bool):
                    s += f" x{med / fv:.2f}"
            cells.append(f"{s:>24}")
        print(f"{m:<{w}} " + " ".join(cells), file=sys.stderr)


def aggregate(rounds: list[dict]) -> dict:
    """rounds: list of {peer: headline}; -> {peer: {metric: {median,min,max,n}}}"""
    out: dict[str, dict] = {}
    for rnd in rounds:
        for peer, h in rnd.items():
            for k, v in h.items():
                out.setdefault(peer, {}).setdefault(k, []).append(v)
    agg = {}
    for peer, ms in out.items():
        agg[peer] = {}
        for k, vs in ms.items():
            if all(isinstance(v, bool) for v in vs):
                agg[peer][k] = all(vs)
            else:
                vs = [v for v in vs if isinstance(v, (int, float))]
                if vs:
                    agg[peer][k] = {
                        "median": statistics.median(vs),
                        "min": min(vs),
                        "max": max(vs),
                        "n": len(vs),
                    }
    return agg


def emit(doc: dict, a):
    s = json.dumps(doc, indent=1, default=str)
    if getattr(a, "json_out", None):
        with open(a.json_out, "w") as f:
            f.write(s)
        print(f"[gwbench] wrote {a.json_out}", file=sys.stderr)
    else:
        print(s)


def meta() -> dict:
    la = os.getloadavg()
    return {"time": _now_iso(), "cpus": os.cpu_count(), "loadavg": la, "python": sys.version.split()[0]}


# --------------------------------------------------------------------------- CLI
def add_common(p):
    p.add_argument("--scenarios", default=DEFAULTS["scenarios"])
    p.add_argument("--kernel-name", default="python3")
    p.add_argument("--protocol", choices=["json", "v1"], default="json", help="websocket framing")
    p.add_argument("--n-start", type=int, default=DEFAULTS["n_start"])
    p.add_argument("--n-exec", type=int, default=DEFAULTS["n_exec"])
    p.add_argument("--warmup", type=int, default=DEFAULTS["warmup"])
    p.add_argument("--conc-kernels", type=int, default=DEFAULTS["conc_kernels"])
    p.add_argument("--conc-seconds", type=float, default=DEFAULTS["conc_seconds"])
    p.add_argument("--stream-mb", type=int, default=DEFAULTS["stream_mb"])
    p.add_argument("--stream-chunk-kb", type=int, default=DEFAULTS["stream_chunk_kb"])
    p.add_argument("--small-msgs", type=int, default=DEFAULTS["small_msgs"])
    p.add_argument("--stream-reps", type=int, default=DEFAULTS["stream_reps"])
    p.add_argument("--fanout", type=int, default=DEFAULTS["fanout"])
    p.add_argument("--fanout-iters", type=int, default=DEFAULTS["fanout_iters"])
    p.add_argument("--http-conc", default=DEFAULTS["http_conc"])
    p.add_argument("--http-duration", type=float, default=DEFAULTS["http_duration"])
    p.add_argument("--no-wrk", action="store_true")
    p.add_argument("--json-out")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="benchmark a running server")
    p.add_argument("--url", required=True)
    p.add_argument("--token", default=os.environ.get("GWBENCH_TOKEN", ""))
    p.add_argument("--server-pid", type=int)
    add_common(p)
    p = sub.add_parser("floor", help="jupyter_client direct (no gateway)")
    add_common(p)
    p.set_defaults(scenarios="kernel_start,exec_latency,iopub_stream,micro")
    p = sub.add_parser("launch", help="start a known peer, run, stop")
    p.add_argument("peer")
    p.add_argument("--port", type=int, default=18240)
    p.add_argument("--token", default="gwbench-" + uuid.uuid4().hex[:12])
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "gwbench"))
    add_common(p)
    p = sub.add_parser("compare", help="start peers, run interleaved rounds, aggregate")
    p.add_argument("--peers", default="floor,kg-ws,jupyter_server,jupyverse")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--base-port", type=int, default=18240)
    p.add_argument("--token", default="gwbench-" + uuid.uuid4().hex[:12])
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "gwbench"))
    add_common(p)
    p = sub.add_parser("notebook", help="write the bundled notebook-http API notebook")
    p.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    if a.cmd == "notebook":
        with open(a.out, "w") as f:
            json.dump(notebook_json(), f, indent=1)
        return
    if a.cmd == "run":
        res = asyncio.run(run_ws(a, a.server_pid))
        res["meta"] = meta()
        print_table({a.url: headline(res)}, "results")
        emit(res, a)
        return
    if a.cmd == "floor":
        res = asyncio.run(floor_main(a))
        res["meta"] = meta()
        print_table({"floor": headline(res)}, "floor")
        emit(res, a)
        return
    if a.cmd == "launch":
        os.makedirs(a.workdir, exist_ok=True)
        spec = peer_spec(a.peer, a.port, a.token, a.workdir, [])
        peer = Peer(spec, a.workdir)
        try:
            peer.start()
            a.url, a.token = peer.url, spec["token"]
            if spec["mode"] == "http":
                a.scenarios = "http_mode"
            res = asyncio.run(run_ws(a, peer.proc.pid))
            res.update(peer=a.peer, startup_s=round(peer.startup_s, 2), meta=meta())
        finally:
            peer.stop()
        print_table({a.peer: headline(res)}, "results")
        emit(res, a)
        return
    if a.cmd == "compare":
        os.makedirs(a.workdir, exist_ok=True)
        names = a.peers.split(",")
        peers: dict[str, Peer] = {}
        raw: dict[str, list] = {n: [] for n in names}
        rounds: list[dict] = []
        try:
            for i, n in enumerate(names):
                if n == "floor":
                    continue
                os.makedirs(os.path.join(a.workdir, n), exist_ok=True)
                spec = peer_spec(n, a.base_port + i, a.token, os.path.join(a.workdir, n), [])
                peers[n] = Peer(spec, os.path.join(a.workdir, n))
                peers[n].start()
            for r in range(a.rounds):
                rnd = {}
                order = names if r % 2 == 0 else names[::-1]  # A B C, C B A, ...
                for n in order:
                    t0 = time.perf_counter()
                    print(f"[gwbench] round {r + 1}/{a.rounds}: {n}", file=sys.stderr)
                    if n == "floor":
                        sc = ",".join(
                            s
                            for s in a.scenarios.split(",")
                            if s in ("kernel_start", "exec_latency", "iopub_stream")
                        )
                        sc += ",micro" if r == 0 else ""
                        fa = argparse.Namespace(**{**vars(a), "scenarios": sc})
                        res = asyncio.run(floor_main(fa))
                    else:
                        pe = peers[n]
                        pa = argparse.Namespace(**{**vars(a), "url": pe.url, "token": pe.spec["token"]})
                        sc = (
                            ["http_mode"]
                            if pe.spec["mode"] == "http"
                            else [s for s in a.scenarios.split(",") if s != "http_mode"]
                        )
                        res = asyncio.run(run_ws(pa, pe.proc.pid, sc))
                    res["meta"] = meta()
                    res["round_s"] = round(time.perf_counter() - t0, 1)
                    raw[n].append(res)
                    rnd[n] = headline(res)
                rounds.append(rnd)
        finally:
            for pe in peers.values():
                pe.stop()
        agg = aggregate(rounds)
        print_table(
            agg,
            f"median [min-max] over {a.rounds} rounds; xN = ratio over floor",
            floor="floor" if "floor" in names else None,
        )
        emit({"aggregate": agg, "raw": raw, "args": vars(a)}, a)


if __name__ == "__main__":
    main()
