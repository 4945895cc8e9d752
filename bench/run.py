#!/usr/bin/env python3
"""`make bench`: fastkg against Jupyter Kernel Gateway 3.0.1, measured in the same interleaved run.

One command, reproducible:

  .venv/bin/python bench/run.py                 # full run, 3 interleaved rounds (~12-15 min on 2 cores)
  .venv/bin/python bench/run.py --quick         # smoke run, 1 round, small sizes (~2-3 min)
  .venv/bin/python bench/run.py --only ws       # websocket mode only (JSON + v1 protocol + warm pool)
  .venv/bin/python bench/run.py --only http     # notebook-http mode only

What it does (see bench/README.md):
  1. makes sure `.venv-kg/` (repo root) holds jupyter_kernel_gateway==3.0.1 + ipykernel (stamp file, idempotent);
  2. makes sure `wrk` is on PATH (apt-get as root); without it gwbench falls back to its httpx loader;
  3. runs bench/gwbench.py (the provided black-box yardstick) in phases, each one interleaved run:
       ws    compare floor,kg-ws,fastkg-ws                       (JSON websocket framing)
       v1    compare floor,kg-ws,fastkg-ws --protocol v1         (exec_latency + iopub_stream only)
       warm  fastkg-ws started with FASTKG_WARM_POOL=2: kernel REST start from a refilled warm pool
       http  compare kg-http,kg-http-pool2,fastkg-http-pool2      (notebook-http, concurrency 1, 8, 32)
  4. prints medians, fastkg/KG and fastkg/floor ratios and the PASS/MISS targets, and writes the full JSON to
     bench/results/<timestamp>.json.

Stdlib only (plus httpx/websockets/jupyter_client from the project venv, used by gwbench).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GWBENCH = os.path.join(HERE, "gwbench.py")
RESULTS = os.path.join(HERE, "results")

KG_VERSION = "3.0.1"
KG_REQUIREMENTS = [f"jupyter_kernel_gateway=={KG_VERSION}", "ipykernel"]
KG_STAMP_NAME = ".fastkg-bench-stamp"

# gwbench options for a full run (gwbench's own defaults) and for --quick
FULL_OPTS: dict[str, Any] = {}
QUICK_OPTS: dict[str, Any] = {
    "n-start": 3,
    "n-exec": 80,
    "warmup": 10,
    "conc-seconds": 2,
    "stream-mb": 5,
    "small-msgs": 1000,
    "stream-reps": 1,
    "fanout": 8,
    "fanout-iters": 5,
    "http-duration": 2,
}
V1_SCENARIOS = "exec_latency,iopub_stream"
WARM_POOL = 2

PHASES = ("ws", "v1", "warm", "http")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- setup
def ensure_kg_venv(path: str) -> str:
    """Create/refresh the Kernel Gateway venv; the stamp file records what was installed."""
    stamp = os.path.join(path, KG_STAMP_NAME)
    want = "\n".join(KG_REQUIREMENTS) + "\n"
    py = os.path.join(path, "bin", "python")
    if os.path.exists(stamp) and os.path.exists(py) and open(stamp).read() == want:
        return path
    log(f"creating {path} with {' '.join(KG_REQUIREMENTS)} (once)")
    if not os.path.exists(py):
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", path], check=True)
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *KG_REQUIREMENTS], check=True)
    out = subprocess.run(
        [py, "-c", "import kernel_gateway; print(kernel_gateway.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if out != KG_VERSION:
        raise SystemExit(f"{path}: kernel_gateway {out!r} installed, wanted {KG_VERSION}")
    with open(stamp, "w") as f:
        f.write(want)
    return path


def ensure_wrk() -> str | None:
    w = shutil.which("wrk")
    if w:
        return w
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk missing: apt-get install -y wrk")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (
            ["apt-get", "install", "-y", "-qq", "wrk"],
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "wrk"],
        ):
            with contextlib.suppress(Exception):
                subprocess.run(
                    cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300
                )
            if cmd[1] == "install" and shutil.which("wrk"):
                return shutil.which("wrk")
    log("wrk not available: notebook-http uses gwbench's httpx loader (weaker, competes for the 2 cores)")
    return None


def free_base_port(n: int) -> int:
    """n consecutive free loopback ports below the ephemeral range (kernels take ephemeral ports)."""
    lo, hi = 20000, 32000
    with contextlib.suppress(Exception):
        lo_eph = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
        hi = min(hi, lo_eph - 1)
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(lo, hi - n)
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise SystemExit("no free loopback port range found")


def clean_env() -> None:
    """Nothing from the caller's shell may configure the peers: they get only what gwbench sets."""
    for k in list(os.environ):
        if (k.startswith("KG_") or k.startswith("FASTKG_")) and k != "FASTKG_CMD":
            os.environ.pop(k)
    os.environ.pop("JUPYTER_CONFIG_DIR", None)


def git_commit() -> str | None:
    """Read the checked-out commit from .git without running git."""
    with contextlib.suppress(Exception):
        g = os.path.join(REPO, ".git")
        head = open(os.path.join(g, "HEAD")).read().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        p = os.path.join(g, ref)
        if os.path.exists(p):
            return open(p).read().strip()
        for line in open(os.path.join(g, "packed-refs")):
            if line.strip().endswith(" " + ref):
                return line.split()[0]
    return None


def pkg_version(py: str, dist: str) -> str | None:
    with contextlib.suppress(Exception):
        r = subprocess.run(
            [py, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return r.stdout.strip() or None
    return None


# --------------------------------------------------------------------------- gwbench
def import_gwbench():
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import gwbench  # noqa: PLC0415

    return gwbench


def gw_opts(quick: bool, extra: list[str]) -> list[str]:
    out = []
    for k, v in (QUICK_OPTS if quick else FULL_OPTS).items():
        out += [f"--{k}", str(v)]
    return out + extra


def run_compare(tag: str, peers: list[str], args, workdir: str, extra: list[str]) -> dict | None:
    """One gwbench compare; on failure (a peer that would not start or died) it is run again, up to --retries."""
    for attempt in range(args.retries + 1):
        if attempt:
            time.sleep(5)
            log(f"phase {tag}: retry {attempt}/{args.retries}")
        doc = _run_compare(f"{tag}-{attempt}" if attempt else tag, peers, args, workdir, extra)
        if doc is not None:
            if attempt:
                doc["attempts"] = attempt + 1
            return doc
    return None


LAST_ERROR: dict[str, str] = {}


def _run_compare(tag: str, peers: list[str], args, workdir: str, extra: list[str]) -> dict | None:
    out = os.path.join(workdir, f"{tag}.json")
    wd = os.path.join(workdir, tag)
    os.makedirs(wd, exist_ok=True)
    cmd = [
        sys.executable,
        GWBENCH,
        "compare",
        "--peers",
        ",".join(peers),
        "--rounds",
        str(args.rounds),
        "--base-port",
        str(free_base_port(len(peers))),
        "--workdir",
        wd,
        "--json-out",
        out,
        *gw_opts(args.quick, extra + shlex.split(args.gwbench_args)),
    ]
    log(f"phase {tag}: {' '.join(shlex.quote(c) for c in cmd[1:])}")
    t0 = time.perf_counter()
    stderr_log = open(os.path.join(workdir, f"{tag}.stderr.log"), "w")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=wd)
    assert p.stderr is not None
    for line in p.stderr:  # stream gwbench's progress, keep a copy
        stderr_log.write(line)
        if (
            args.verbose
            or line.startswith("[gwbench] round")
            or "error" in line.lower()
            or "Traceback" in line
        ):
            sys.stderr.write("    " + line)
    rc = p.wait()
    stderr_log.close()
    dt_s = time.perf_counter() - t0
    if rc != 0 or not os.path.exists(out):
        last = ""
        with contextlib.suppress(Exception):
            lines = [ln.strip() for ln in open(stderr_log.name, errors="replace") if ln.strip()]
            last = next(
                (ln for ln in reversed(lines) if "Error" in ln or "exited" in ln), lines[-1] if lines else ""
            )
        hint = ""
        if "rc=-15" in last or "rc=-2" in last or "ConnectError" in last:
            hint = " (a peer was stopped from outside the bench or crashed: see its log)"
        LAST_ERROR["msg"] = last + hint
        log(
            f"phase {tag} FAILED (rc={rc}) after {dt_s:.0f}s: {last}{hint}; gwbench output: {stderr_log.name}; "
            f"peer logs: {wd}"
        )
        return None
    log(f"phase {tag} done in {dt_s:.0f}s")
    with open(out) as f:
        doc = json.load(f)
    doc["elapsed_s"] = round(dt_s, 1)
    return doc


def preflight_fastkg(gwb, name: str, workdir: str) -> str | None:
    """Start one fastkg peer the way gwbench does and stop it; returns an error text or None."""
    wd = os.path.join(workdir, f"preflight-{name}")
    os.makedirs(wd, exist_ok=True)
    spec = gwb.peer_spec(name, free_base_port(1), "pre-" + uuid.uuid4().hex[:8], wd, [])
    peer = gwb.Peer(spec, wd)
    try:
        peer.start(timeout=60)
        return None
    except Exception as e:  # noqa: BLE001
        tail = ""
        with contextlib.suppress(Exception):
            tail = open(peer.log.name, errors="replace").read()[-1500:]
        return f"{type(e).__name__}: {e}\n{tail}"
    finally:
        with contextlib.suppress(Exception):
            peer.stop()


def _tree_cpu(gwb, pid: int) -> float:
    tot = 0.0
    for p in [pid, *gwb.descendants(pid)]:
        st = gwb._read_stat(p)
        if st:
            tot += st[1]
    return tot


async def _settle(gwb, pid: int, min_s: float = 0.5, quiet_s: float = 0.5, max_s: float = 20.0) -> float:
    """Wait until the server and its kernels are idle (warm pool refilled and kernels ready):
    two consecutive quiet_s windows in which the whole process tree used < 20 ms of CPU."""
    t0 = time.perf_counter()
    await asyncio.sleep(min_s)
    last = _tree_cpu(gwb, pid)
    quiet = 0
    while time.perf_counter() - t0 < max_s and quiet < 2:
        await asyncio.sleep(quiet_s)
        cur = _tree_cpu(gwb, pid)
        quiet = quiet + 1 if cur - last < 0.02 else 0
        last = cur
    return time.perf_counter() - t0


async def warm_starts(gwb, url: str, token: str, pid: int, n: int) -> dict:
    """Kernel starts served by the warm pool: wait for the pool to refill before each start."""
    gw = gwb.Gateway(url, token)
    rest, usable, delete, settle, procs = [], [], [], [], []
    try:
        await gw.login()
        for _ in range(n):
            settle.append(await _settle(gwb, pid))
            procs.append(len(gwb.descendants(pid)))
            t0 = time.perf_counter()
            kid = await gw.start_kernel()
            t1 = time.perf_counter()
            k = await gw.connect(kid)
            await k.kernel_info()
            t2 = time.perf_counter()
            await k.close()
            t3 = time.perf_counter()
            await gw.delete_kernel(kid)
            delete.append(time.perf_counter() - t3)
            rest.append(t1 - t0)
            usable.append(t2 - t0)
    finally:
        await gw.aclose()
    return {
        "rest_ms": gwb.summary_ms(rest),
        "usable_ms": gwb.summary_ms(usable),
        "delete_ms": gwb.summary_ms(delete),
        "settle_s": [round(x, 2) for x in settle],
        "server_descendants_before_start": procs,
    }


def run_warm(gwb, args, workdir: str) -> dict | None:
    """fastkg-ws with FASTKG_WARM_POOL=2: (a) starts from a refilled pool, (b) gwbench's back-to-back
    kernel_start scenario (n-start starts in a row: the pool drains, shows the refill behaviour)."""
    wd = os.path.join(workdir, "warm")
    os.makedirs(wd, exist_ok=True)
    token = "gwbench-" + uuid.uuid4().hex[:12]
    spec = gwb.peer_spec("fastkg-ws", free_base_port(1), token, wd, [])
    spec["env"]["FASTKG_WARM_POOL"] = str(WARM_POOL)
    spec["name"] = "fastkg-ws-warm"
    peer = gwb.Peer(spec, wd)
    n_warm = 3 if args.quick else 10
    opts = dict(gwb.DEFAULTS)
    opts.update({k.replace("-", "_"): v for k, v in (QUICK_OPTS if args.quick else FULL_OPTS).items()})
    ns = argparse.Namespace(
        **opts, url=peer.url, token=token, kernel_name="python3", protocol="json", no_wrk=False, json_out=None
    )
    log(f"phase warm: fastkg-ws with FASTKG_WARM_POOL={WARM_POOL}, {n_warm} starts from a refilled pool")
    t0 = time.perf_counter()
    try:
        peer.start()
        pid = peer.proc.pid
        res = {"pool": WARM_POOL, "startup_s": round(peer.startup_s, 2)}
        res["refilled"] = asyncio.run(warm_starts(gwb, peer.url, token, pid, n_warm))
        asyncio.run(_settle(gwb, pid))
        bb = asyncio.run(gwb.run_ws(ns, pid, ["kernel_start"]))
        res["back_to_back"] = bb.get("kernel_start")
    except Exception as e:  # noqa: BLE001
        log(f"phase warm FAILED: {type(e).__name__}: {e}; peer log in {wd}")
        return None
    finally:
        with contextlib.suppress(Exception):
            peer.stop()
    res["elapsed_s"] = round(time.perf_counter() - t0, 1)
    log(f"phase warm done in {res['elapsed_s']:.0f}s")
    return res


# --------------------------------------------------------------------------- summary
def med(doc: dict | None, peer: str, metric: str):
    if not doc:
        return None
    v = (doc.get("aggregate") or {}).get(peer, {}).get(metric)
    if isinstance(v, dict):
        return v.get("median")
    return v


def ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and b:
        return a / b
    return None


def fmt(v, nd: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:.0f}"
        return f"{v:.{nd}g}"
    return str(v)


def fmt_ratio(r) -> str:
    return "-" if r is None else f"x{r:.2f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"\n== {title}"]
    lines.append(
        "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header))
    )
    for r in rows:
        lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    return "\n".join(lines)


def ws_rows(o: dict) -> list[tuple[str, str, str]]:
    """(metric, label, better) for the websocket headline."""
    return [
        ("start_rest_p50_ms", "kernel start: REST p50 ms", "low"),
        ("start_usable_p50_ms", "kernel start: usable p50 ms", "low"),
        ("exec_p50_ms", "execute 1+1 p50 ms", "low"),
        ("exec_p99_ms", "execute 1+1 p99 ms", "low"),
        ("exec_srv_cpu_us", "gateway CPU per execute us", "low"),
        ("conc_exec_per_s", f"{o['conc_kernels']} kernels in parallel exec/s", "high"),
        ("conc_p50_ms", f"{o['conc_kernels']} kernels in parallel p50 ms", "low"),
        ("conc_srv_cpu_us", "gateway CPU per parallel execute us", "low"),
        ("stream_big_MB_s", f"{o['stream_mb']} MB iopub stream MB/s", "high"),
        ("stream_small_msgs_s", f"{o['small_msgs']} small stream msgs/s", "high"),
        ("fanout_all_p50_ms", f"{o['fanout']}-client fan-out p50 ms", "low"),
        ("fanout_connect_ms", f"{o['fanout']}-client connect ms", "low"),
    ]


def ws_table(doc: dict, title: str, o: dict) -> tuple[str, list[dict]]:
    rows, out = [], []
    for m, label, _ in ws_rows(o):
        f, k, fl = med(doc, "fastkg-ws", m), med(doc, "kg-ws", m), med(doc, "floor", m)
        if f is None and k is None and fl is None:
            continue
        rows.append([label, fmt(f), fmt(k), fmt(fl), fmt_ratio(ratio(f, k)), fmt_ratio(ratio(f, fl))])
        out.append(
            {
                "metric": m,
                "label": label,
                "fastkg": f,
                "kg": k,
                "floor": fl,
                "fastkg_over_kg": ratio(f, k),
                "fastkg_over_floor": ratio(f, fl),
            }
        )
    for peer in ("fastkg-ws", "kg-ws", "floor"):
        for m in ("stream_big_complete", "stream_small_complete"):
            if med(doc, peer, m) is False:
                rows.append([f"!! {peer}: {m} = False (output lost)", "", "", "", "", ""])
    errs = scenario_errors(doc)
    for e in errs:
        rows.append([f"!! {e}", "", "", "", "", ""])
    return table(title, ["metric", "fastkg", "KG 3.0.1", "floor", "fastkg/KG", "fastkg/floor"], rows), out


def scenario_errors(doc: dict) -> list[str]:
    errs = []
    for peer, runs in (doc.get("raw") or {}).items():
        for i, r in enumerate(runs):
            for s, v in r.items():
                if isinstance(v, dict) and "error" in v:
                    errs.append(f"{peer} round {i + 1} {s}: {v['error'][:120]}")
    return errs


def http_table(doc: dict, conc: list[int]) -> tuple[str, list[dict]]:
    rows, out = [], []
    for ep in ("GET_/hello", "POST_/echo"):
        for c in conc:
            for suffix, unit in (
                ("rps", "req/s"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("srv_cpu_us", "srv CPU us/req"),
            ):
                m = f"{ep}_c={c}_{suffix}"
                f = med(doc, "fastkg-http-pool2", m)
                k1, k2 = med(doc, "kg-http", m), med(doc, "kg-http-pool2", m)
                if f is None and k1 is None and k2 is None:
                    continue
                label = f"{ep.replace('_', ' ')} c={c} {unit}"
                rows.append(
                    [label, fmt(f), fmt(k1), fmt(k2), fmt_ratio(ratio(f, k1)), fmt_ratio(ratio(f, k2))]
                )
                out.append(
                    {
                        "metric": m,
                        "label": label,
                        "fastkg_pool2": f,
                        "kg": k1,
                        "kg_pool2": k2,
                        "fastkg_over_kg": ratio(f, k1),
                        "fastkg_over_kg_pool2": ratio(f, k2),
                    }
                )
    loaders = sorted(
        {r.get("http_mode", {}).get("loader", "?") for runs in (doc.get("raw") or {}).values() for r in runs}
    )
    for peer, runs in (doc.get("raw") or {}).items():
        for i, r in enumerate(runs):
            hm = r.get("http_mode") or {}
            if hm and not (hm.get("hello_ok") and hm.get("echo_ok")):
                rows.append(
                    [
                        f"!! {peer} round {i + 1}: hello_ok={hm.get('hello_ok')} echo_ok={hm.get('echo_ok')}",
                        "",
                        "",
                        "",
                        "",
                        "",
                    ]
                )
            for k, v in hm.items():
                if isinstance(v, dict) and (v.get("non_2xx") or v.get("socket_errors")):
                    rows.append(
                        [
                            f"!! {peer} round {i + 1} {k}: non_2xx={v.get('non_2xx')} "
                            f"socket_errors={v.get('socket_errors')}",
                            "",
                            "",
                            "",
                            "",
                            "",
                        ]
                    )
    title = f"notebook-http (loader: {','.join(loaders)}): fastkg 2-kernel pool vs KG 1 kernel and KG 2-kernel pool"
    return table(
        title, ["metric", "fastkg pool2", "KG", "KG pool2", "fastkg/KG", "fastkg/KG pool2"], rows
    ), out


def targets(ws: dict | None, http: dict | None, warm: dict | None, o: dict, phases: list[str]) -> list[dict]:
    T: list[dict] = []
    phase = "ws"

    def add(name, value, limit, op, unit="", note=""):
        if phase not in phases:
            return
        if value is None:
            status = "N/A"
        else:
            status = "PASS" if (value <= limit if op == "<=" else value >= limit) else "MISS"
        T.append(
            {
                "target": name,
                "value": value,
                "limit": limit,
                "op": op,
                "unit": unit,
                "status": status,
                "note": note,
            }
        )

    f = lambda m: med(ws, "fastkg-ws", m)  # noqa: E731
    add(
        "execute 1+1 p50 <= 1.2x floor",
        ratio(f("exec_p50_ms"), med(ws, "floor", "exec_p50_ms")),
        1.2,
        "<=",
        "x floor",
        f"fastkg {fmt(f('exec_p50_ms'))} ms, floor {fmt(med(ws, 'floor', 'exec_p50_ms'))} ms",
    )
    add("gateway CPU per execute <= 1.5 ms", f("exec_srv_cpu_us"), 1500, "<=", "us")
    add(
        f"{o['conc_kernels']} kernels in parallel >= 1.5x KG exec/s",
        ratio(f("conc_exec_per_s"), med(ws, "kg-ws", "conc_exec_per_s")),
        1.5,
        ">=",
        "x KG",
        f"fastkg {fmt(f('conc_exec_per_s'))}/s, KG {fmt(med(ws, 'kg-ws', 'conc_exec_per_s'))}/s",
    )
    note = f"fastkg {fmt(f('stream_big_MB_s'))} MB/s, floor {fmt(med(ws, 'floor', 'stream_big_MB_s'))} MB/s"
    if f("stream_big_complete") is False:
        note += "; OUTPUT LOST"
    if o["stream_mb"] != 20:
        note += f"; measured with {o['stream_mb']} MB, target is defined on 20 MB"
    v = ratio(f("stream_big_MB_s"), med(ws, "floor", "stream_big_MB_s"))
    if f("stream_big_complete") is False:
        v = 0.0
    add(f"{o['stream_mb']} MB iopub stream >= 0.9x floor MB/s", v, 0.9, ">=", "x floor", note)
    phase = "warm"
    wv = None
    wn = ""
    if warm and warm.get("refilled"):
        wv = warm["refilled"]["rest_ms"].get("p50")
        wn = (
            f"FASTKG_WARM_POOL={WARM_POOL}, pool refilled before each start; usable p50 "
            f"{fmt(warm['refilled']['usable_ms'].get('p50'))} ms"
        )
    add("warm-pool kernel start (REST p50) <= 50 ms", wv, 50, "<=", "ms", wn)
    phase = "http"
    for ep in ("GET_/hello", "POST_/echo"):
        m_rps, m_p99 = f"{ep}_c=8_rps", f"{ep}_c=8_p99_ms"
        fr, kr, k2r = (
            med(http, "fastkg-http-pool2", m_rps),
            med(http, "kg-http", m_rps),
            med(http, "kg-http-pool2", m_rps),
        )
        fp, kp, k2p = (
            med(http, "fastkg-http-pool2", m_p99),
            med(http, "kg-http", m_p99),
            med(http, "kg-http-pool2", m_p99),
        )
        e = ep.replace("_", " ")
        add(
            f"notebook-http {e} c=8 req/s >= 2x KG",
            ratio(fr, kr),
            2.0,
            ">=",
            "x KG",
            f"fastkg {fmt(fr)}, KG {fmt(kr)} req/s; vs KG pool2 ({fmt(k2r)}): {fmt_ratio(ratio(fr, k2r))}",
        )
        add(
            f"notebook-http {e} c=8 p99 <= 0.5x KG",
            ratio(fp, kp),
            0.5,
            "<=",
            "x KG",
            f"fastkg {fmt(fp)}, KG {fmt(kp)} ms; vs KG pool2 ({fmt(k2p)}): {fmt_ratio(ratio(fp, k2p))}",
        )
    return T


def targets_table(T: list[dict]) -> str:
    rows = []
    for t in T:
        v = t["value"]
        vs = "-" if v is None else (f"x{v:.2f}" if t["unit"].startswith("x") else f"{fmt(v)} {t['unit']}")
        lim = f"{t['op']} {t['limit']:g}{' ' + t['unit'] if not t['unit'].startswith('x') else 'x'}"
        rows.append([t["target"], vs, lim, t["status"], t["note"]])
    return table("targets (medians)", ["target", "measured", "limit", "status", "detail"], rows)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds per phase (default 3; --quick: 1)"
    )
    ap.add_argument(
        "--only", default="", help="ws (= ws,v1,warm) | http | comma list of phases: ws,v1,warm,http"
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round, fewer executes, smaller streams"
    )
    ap.add_argument("--json-out", help="also write the full JSON here (always written to bench/results/)")
    ap.add_argument("--no-v1", action="store_true", help="skip the v1-protocol pass")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm-pool kernel start pass")
    ap.add_argument("--kg-venv", default=os.path.join(REPO, ".venv-kg"))
    ap.add_argument(
        "--fastkg-cmd", default=os.environ.get("FASTKG_CMD", os.path.join(REPO, ".venv", "bin", "fastkg"))
    )
    ap.add_argument("--no-fastkg", action="store_true", help="measure only the floor and KG")
    ap.add_argument("--gwbench-args", default="", help="extra options passed to every gwbench compare")
    ap.add_argument("--retries", type=int, default=1, help="re-run a phase that failed (default 1)")
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECS",
        help="first wait up to SECS for the 1-min load average to drop below 1",
    )
    ap.add_argument("--keep-workdir", action="store_true", help="keep peer logs (kept anyway on failure)")
    ap.add_argument("--verbose", "-v", action="store_true", help="show all of gwbench's progress output")
    args = ap.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if not args.only:
        phases = list(PHASES)
    elif args.only == "ws":
        phases = ["ws", "v1", "warm"]
    else:
        phases = [p.strip() for p in args.only.split(",") if p.strip()]
        bad = [p for p in phases if p not in PHASES]
        if bad:
            ap.error(f"unknown phase(s) {bad}; use {', '.join(PHASES)}")
    if args.no_v1 and "v1" in phases:
        phases.remove("v1")
    if args.no_warm and "warm" in phases:
        phases.remove("warm")

    if args.wait_idle > 0:
        t_w = time.perf_counter()
        while os.getloadavg()[0] > 1.0 and time.perf_counter() - t_w < args.wait_idle:
            if int(time.perf_counter() - t_w) % 30 == 0:
                log(f"waiting for the machine to go idle (1-min loadavg {os.getloadavg()[0]:.2f})")
            time.sleep(1)
    t_start = time.perf_counter()
    load0 = os.getloadavg()[0]
    if load0 > 1.0:
        log(
            f"machine busy before start (1-min loadavg {load0:.2f} on {os.cpu_count()} cpus): other processes "
            "compete with the peers; ratios stay meaningful, absolute figures less so"
        )
    clean_env()
    kg_venv = ensure_kg_venv(args.kg_venv)
    os.environ["GWBENCH_KG_VENV"] = kg_venv
    os.environ["FASTKG_CMD"] = args.fastkg_cmd
    os.environ["GWBENCH_RATE_LIMIT"] = "off"  # KG's iopub rate limit off, as gwbench does by default
    wrk = ensure_wrk() if "http" in phases else shutil.which("wrk")

    workdir = tempfile.mkdtemp(prefix="fastkg-bench-")
    gwb = import_gwbench()
    failures: list[str] = []

    fastkg_ok = not args.no_fastkg
    fastkg_err = None
    if fastkg_ok:
        exe = shlex.split(args.fastkg_cmd)[0]
        if not (shutil.which(exe) or os.path.exists(exe)):
            fastkg_err = f"{exe} not found (pip install -e . first)"
        else:
            log(f"preflight: starting {args.fastkg_cmd} as gwbench's fastkg-ws peer")
            fastkg_err = preflight_fastkg(gwb, "fastkg-ws", workdir)
        if fastkg_err:
            fastkg_ok = False
            log(f"fastkg is NOT runnable, measuring floor and KG only:\n{fastkg_err}")
            failures.append(f"fastkg not runnable: {fastkg_err.splitlines()[0]}")

    o = dict(gwb.DEFAULTS)
    o.update({k.replace("-", "_"): v for k, v in (QUICK_OPTS if args.quick else FULL_OPTS).items()})
    doc: dict[str, Any] = {
        "meta": {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(),
            "commit": git_commit(),
            "cpus": os.cpu_count(),
            "loadavg_start": [load0, *os.getloadavg()[1:]],
            "python": sys.version.split()[0],
            "kg_version": pkg_version(os.path.join(kg_venv, "bin", "python"), "jupyter_kernel_gateway"),
            "kg_ipykernel": pkg_version(os.path.join(kg_venv, "bin", "python"), "ipykernel"),
            "fastkg_version": pkg_version(sys.executable, "fastkg"),
            "ipykernel": pkg_version(sys.executable, "ipykernel"),
            "wrk": wrk,
            "fastkg_cmd": args.fastkg_cmd,
            "fastkg_runnable": fastkg_ok,
            "fastkg_error": fastkg_err,
        },
        "config": {
            "rounds": args.rounds,
            "quick": args.quick,
            "phases": phases,
            "gwbench_options": o,
            "gwbench_extra": args.gwbench_args,
            "warm_pool": WARM_POOL,
        },
    }
    ws_doc = v1_doc = http_doc = warm_doc = None
    fk = ["fastkg-ws"] if fastkg_ok else []
    try:
        if "ws" in phases:
            ws_doc = run_compare("ws", ["floor", "kg-ws", *fk], args, workdir, [])
            failures += [] if ws_doc else [f"phase ws failed: {LAST_ERROR.get('msg', '')}"]
        if "v1" in phases:
            v1_doc = run_compare(
                "v1",
                ["floor", "kg-ws", *fk],
                args,
                workdir,
                ["--protocol", "v1", "--scenarios", V1_SCENARIOS],
            )
            failures += [] if v1_doc else [f"phase v1 failed: {LAST_ERROR.get('msg', '')}"]
        if "warm" in phases and fastkg_ok:
            warm_doc = run_warm(gwb, args, workdir)
            failures += [] if warm_doc else ["phase warm failed"]
        if "http" in phases:
            hp = ["kg-http", "kg-http-pool2"]
            if fastkg_ok:
                err = preflight_fastkg(gwb, "fastkg-http-pool2", workdir)
                if err:
                    log(f"fastkg-http-pool2 is NOT runnable, measuring KG only:\n{err}")
                    failures.append(f"fastkg-http-pool2 not runnable: {err.splitlines()[0]}")
                else:
                    hp.append("fastkg-http-pool2")
            http_doc = run_compare("http", hp, args, workdir, [])
            failures += [] if http_doc else [f"phase http failed: {LAST_ERROR.get('msg', '')}"]
    except KeyboardInterrupt:
        failures.append("interrupted")
        log("interrupted")

    doc.update(ws=ws_doc, v1=v1_doc, warm_pool=warm_doc, http=http_doc)
    report: list[str] = []
    summary: dict[str, Any] = {}
    if ws_doc:
        t, summary["ws"] = ws_table(
            ws_doc, f"websocket mode, JSON framing: median of {args.rounds} interleaved round(s)", o
        )
        report.append(t)
    if v1_doc:
        t, summary["v1"] = ws_table(
            v1_doc,
            f"websocket mode, v1 binary subprotocol ({V1_SCENARIOS}): median of {args.rounds} round(s)",
            o,
        )
        report.append(t)
    if warm_doc:
        rows = []
        r, b = warm_doc.get("refilled") or {}, warm_doc.get("back_to_back") or {}
        kg_rest, kg_use = (
            med(ws_doc, "kg-ws", "start_rest_p50_ms"),
            med(ws_doc, "kg-ws", "start_usable_p50_ms"),
        )
        for label, d in (
            (f"from refilled pool (n={r.get('rest_ms', {}).get('n')})", r),
            (f"back-to-back (n={b.get('rest_ms', {}).get('n') if b else '-'}, pool drains)", b),
        ):
            if not d or "rest_ms" not in d:
                if isinstance(d, dict) and d.get("error"):
                    rows.append([f"!! {label}: {d['error'][:100]}", "", "", "", ""])
                continue
            rows.append(
                [
                    label,
                    fmt(d["rest_ms"].get("p50")),
                    fmt(d["rest_ms"].get("p95")),
                    fmt(d["usable_ms"].get("p50")),
                    fmt(d["usable_ms"].get("p95")),
                ]
            )
        rows.append(["KG 3.0.1 (ws phase, no pool)", fmt(kg_rest), "-", fmt(kg_use), "-"])
        report.append(
            table(
                f"kernel start, fastkg with FASTKG_WARM_POOL={WARM_POOL} (ms)",
                ["", "REST p50", "REST p95", "usable p50", "usable p95"],
                rows,
            )
        )
        summary["warm_pool"] = {
            "refilled": r,
            "back_to_back": b,
            "kg_rest_p50_ms": kg_rest,
            "kg_usable_p50_ms": kg_use,
        }
    if http_doc:
        t, summary["http"] = http_table(http_doc, [int(x) for x in str(o["http_conc"]).split(",")])
        report.append(t)
    T = targets(ws_doc, http_doc, warm_doc, o, phases) if fastkg_ok else []
    if T:
        report.append(targets_table(T))
    summary["targets"] = T
    summary["failures"] = failures
    doc["summary"] = summary
    doc["meta"]["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    doc["meta"]["loadavg_end"] = os.getloadavg()

    os.makedirs(RESULTS, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(RESULTS, f"{stamp}{'-quick' if args.quick else ''}.json")
    text = json.dumps(doc, indent=1, default=str)
    with open(path, "w") as f:
        f.write(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text)

    print("\n".join(report))
    print(
        f"\nmachine: {os.cpu_count()} cpus, loadavg {doc['meta']['loadavg_start'][0]:.2f} -> "
        f"{doc['meta']['loadavg_end'][0]:.2f}; KG {doc['meta']['kg_version']}; "
        f"loader {'wrk' if wrk else 'httpx'}; {doc['meta']['elapsed_s']:.0f}s"
    )
    if doc["meta"]["loadavg_start"][0] > 1.0:
        print(
            f"WARNING: machine was busy at start (1-min loadavg {doc['meta']['loadavg_start'][0]:.2f}): "
            "other processes competed with the peers; prefer a quiet machine for figures to quote."
        )
    if args.quick:
        print("QUICK run: small sizes and 1 round -- a smoke test, not figures to quote.")
    print(f"full JSON: {os.path.relpath(path, os.getcwd())}")
    if failures:
        print("FAILURES:\n  " + "\n  ".join(failures))
        print(f"logs kept in {workdir}")
        return 1
    if args.keep_workdir:
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
