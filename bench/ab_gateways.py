"""A/B two or more fastkg variants on notebook-http req/s (wrk) and websocket execute throughput (gwbench).

Each variant is a command (an `env VAR=value` prefix is how a setting is switched). Every variant is started
twice, once as notebook-http (gwbench's notebook, `KG_PRESPAWN_COUNT=2`) and once as the kernel API; then the
rounds are interleaved A B, B A, A B, ... so that the shared machine's drift hits every variant alike. Prints
the median over rounds per variant, the ratio to the first variant, and the load average of every round.

    .venv/bin/python bench/ab_gateways.py --rounds 5 \\
        on=".venv/bin/fastkg" off="env FASTKG_METRICS=off .venv/bin/fastkg"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import gwbench  # noqa: E402

from tests.support import free_port, stop_process  # noqa: E402

TOKEN = "ab-token-0123456789"


def start(cmd: str, workdir: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log_path = workdir / f"{name}.log"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KG_", "FASTKG_"))},
        "KG_IP": "127.0.0.1",
        "KG_PORT": str(port),
        "KG_PORT_RETRIES": "0",
        "FASTKG_LOG_LEVEL": "WARNING",
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(shlex.split(cmd), env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    probe = "/hello" if env.get("KG_API") == "notebook-http" else "/api/kernelspecs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + probe, headers={"Authorization": f"token {TOKEN}"}).status_code == 200:
                return process, base
        time.sleep(0.2)
    stop_process(process)
    raise RuntimeError(f"{name} did not answer {probe}")


def wrk(url: str, seconds: int, connections: int, pid: int | None = None) -> dict[str, float]:
    """wrk's figures, plus the gateway's own CPU per request (utime+stime, its kernels excluded)."""
    with gwbench.ProcWatch(pid) as watch:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result: dict[str, float] = gwbench._wrk_parse(out)
    if pid and result.get("requests"):
        result["srv_cpu_us"] = watch.report(int(result["requests"]))["server_cpu_us_per_op"]
    return result


async def execute(base: str, pid: int, seconds: float) -> dict[str, float]:
    args = argparse.Namespace(
        url=base,
        token=TOKEN,
        kernel_name="python3",
        protocol="json",
        scenarios="exec_throughput_concurrent,exec_latency",
        conc_kernels=8,
        conc_seconds=seconds,
        n_exec=200,
        warmup=20,
    )
    result = await gwbench.run_ws(args, pid)
    return gwbench.headline(result)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("variants", nargs="+", help="name=command")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--exec-seconds", type=float, default=5.0)
    parser.add_argument("--no-ws", action="store_true", help="notebook-http only")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    variants = dict(v.split("=", 1) for v in args.variants)
    names = list(variants)
    rows: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        notebook = workdir / "api.ipynb"
        notebook.write_text(json.dumps(gwbench.notebook_json()))
        http_env = {"KG_API": "notebook-http", "KG_SEED_URI": str(notebook), "KG_PRESPAWN_COUNT": "2"}
        started: list[subprocess.Popen[bytes]] = []
        peers: dict[str, dict[str, tuple[subprocess.Popen[bytes], str]]] = {}
        try:
            for name, cmd in variants.items():
                peers[name] = {"http": start(cmd, workdir, f"{name}-http", http_env)}
                started.append(peers[name]["http"][0])
                if not args.no_ws:
                    peers[name]["ws"] = start(cmd, workdir, f"{name}-ws", {"KG_AUTH_TOKEN": TOKEN})
                    started.append(peers[name]["ws"][0])
            for name in names:  # warm-up: the first requests of a fresh process are not representative
                wrk(peers[name]["http"][1] + "/hello", 2, 8)
            for r in range(args.rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    load = os.getloadavg()[0]
                    row = {"load1": load}
                    process, base = peers[name]["http"]
                    hello = wrk(base + "/hello", args.seconds, 8, process.pid)
                    row.update(hello_rps=hello["req_per_s"], hello_p99_ms=hello.get("p99_ms", 0.0))
                    row["hello_srv_cpu_us"] = hello.get("srv_cpu_us", 0.0)
                    row["hello_non_2xx"] = hello["non_2xx"]
                    if not args.no_ws:
                        process, base = peers[name]["ws"]
                        h = asyncio.run(execute(base, process.pid, args.exec_seconds))
                        for key in ("conc_exec_per_s", "exec_p50_ms", "exec_srv_cpu_us"):
                            row[key] = h.get(key, 0.0)
                    rows[name].append(row)
                    print(f"[ab] round {r + 1} {name}: {row}", file=sys.stderr, flush=True)
        finally:
            for process in started:
                stop_process(process)
    medians = {n: {k: statistics.median(row[k] for row in rows[n]) for k in rows[n][0]} for n in names}
    first = medians[names[0]]
    report = {
        "rounds": args.rounds,
        "medians": medians,
        "ratio_to_first": {
            n: {k: round(v / first[k], 4) for k, v in m.items() if first.get(k) and k != "load1"}
            for n, m in medians.items()
        },
        "raw": rows,
    }
    print(json.dumps(report, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
