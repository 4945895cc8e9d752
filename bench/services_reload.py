"""Notebook services: deploy -> first 200, 1 vs N deployed services, memory per idle service, reload under load.

Starts two real `fastkg` gateways (KG_API=services) side by side on free loopback ports: `one` serves only the
measured service `bench` (`GET /version`, a pool of exactly 2 kernels), `many` serves `bench` plus N-1 idle
services (pool of 1 each). Then:

1. deploy -> first 200: every deploy is timed from the POST until its first `GET .../version` answered 200
   (POST answers once the pool is filled and the startup cells ran); median over all deploys.
2. gateway memory per idle service: `many`'s RSS after its N-1 idle deploys minus before, divided by N-1
   (its kernels are separate processes and not counted).
3. 1 vs N services: `wrk -c 8` on `/services/bench/version` of each gateway, interleaved one, many, many,
   one, ... for `--rounds` rounds; medians of req/s and p99.
4. reload under load (on `one`): `wrk -c 8` runs while `bench` is redeployed `--reloads` times (PUT), then is
   stopped with SIGINT (wrk prints its statistics then); non-2xx and socket errors, p99 against the steady p99.
   Repeated `--reload-rounds` times.

`--warm-pool K` starts both gateways with `KG_API=jupyter-websocket,services` and `FASTKG_WARM_POOL=K`, to
show whether a warm pool shortens deploys (service pools start their own kernels; the warm pool serves
`POST /api/kernels` only).

    .venv/bin/python bench/services_reload.py [--services 20] [--rounds 5] [--reloads 5] [--reload-rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import gwbench  # noqa: E402

from tests.services_support import multipart, version_notebook  # noqa: E402
from tests.support import free_port, stop_process, wait_http  # noqa: E402

PATH = "/services/bench/version"


def gateway_rss(pid: int) -> int:
    """The gateway process's resident memory in kB (its kernels are separate processes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wrk_command(url: str, seconds: int) -> list[str]:
    return ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", "--timeout", "30s", url]


def wrk(url: str, seconds: int) -> dict[str, object]:
    out = subprocess.run(wrk_command(url, seconds), capture_output=True, text=True, check=True).stdout
    return {**gwbench._wrk_parse(out), "load1": round(os.getloadavg()[0], 2)}


class Gateway:
    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log_path = workdir / f"{name}.log"
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KG_", "FASTKG_"))},
            "KG_IP": "127.0.0.1",
            "KG_PORT": str(port),
            "KG_API": "services",
            "KG_PORT_RETRIES": "0",
            "FASTKG_LOG_LEVEL": "WARNING",
            **env,
        }
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app"], env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        wait_http(self.url, self.process, log_path)

    async def deploy(self, client: httpx.AsyncClient, name: str, raw: bytes, put: bool = False) -> float:
        """Seconds from the deploy request until the service's first 200."""
        started = time.perf_counter()
        if put:
            answer = await client.put(f"{self.url}/api/services/{name}", **multipart(name, raw))
        else:
            answer = await client.post(f"{self.url}/api/services", **multipart(name, raw))
        assert answer.status_code in (200, 201), answer.text
        first = await client.get(f"{self.url}/services/{name}/version")
        assert first.status_code == 200, first.text
        return time.perf_counter() - started


def bench_notebook(tag: str) -> bytes:
    return version_notebook(tag, pool_min=2, pool_max=2)


async def reload_under_load(gateway: Gateway, client: httpx.AsyncClient, reloads: int, tag: str) -> dict:
    load = round(os.getloadavg()[0], 2)
    loader = await asyncio.create_subprocess_exec(
        *wrk_command(gateway.url + PATH, 600),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    await asyncio.sleep(1)
    took = []
    for n in range(reloads):
        took.append(await gateway.deploy(client, "bench", bench_notebook(f"{tag}-{n}"), put=True))
    await asyncio.sleep(1)
    loader.send_signal(signal.SIGINT)
    out, _ = await loader.communicate()
    return {**gwbench._wrk_parse(out.decode()), "load1": load, "redeploy_s": [round(t, 2) for t in took]}


def median_of(rows: list[dict], key: str) -> float:
    return float(statistics.median(float(row.get(key) or 0) for row in rows)) if rows else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=20, help="services on the `many` gateway")
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--reload-rounds", type=int, default=3)
    parser.add_argument("--warm-pool", type=int, default=0)
    parser.add_argument("--idle-seconds", type=float, default=10, help="idle CPU measured over this long")
    args = parser.parse_args()
    env = {}
    if args.warm_pool:
        env = {"KG_API": "jupyter-websocket,services", "FASTKG_WARM_POOL": str(args.warm_pool)}
    with tempfile.TemporaryDirectory() as tmp:
        gateways: list[Gateway] = []
        try:
            one = Gateway("one", Path(tmp), env)
            gateways.append(one)
            many = Gateway("many", Path(tmp), env)
            gateways.append(many)
            async with httpx.AsyncClient(timeout=300) as client:
                await asyncio.sleep(3 if args.warm_pool else 0)  # let the warm pools fill first
                deploys = [await one.deploy(client, "bench", bench_notebook("v0"))]
                deploys.append(await many.deploy(client, "bench", bench_notebook("v0")))
                rss_before = gateway_rss(many.process.pid)
                idle_deploys = []
                for n in range(1, args.services):
                    raw = version_notebook("idle", pool_min=1, pool_max=1)
                    idle_deploys.append(await many.deploy(client, f"idle{n}", raw))
                await asyncio.sleep(2)
                rss_after = gateway_rss(many.process.pid)
                idle = {}
                for gateway in gateways:  # what the idle services cost with no traffic at all
                    with gwbench.ProcWatch(gateway.process.pid) as watch:
                        await asyncio.sleep(args.idle_seconds)
                    idle[gateway.name] = {
                        "gateway_cpu_percent": round(watch.server_cpu / watch.wall * 100, 2),
                        "kernels_cpu_percent": round(watch.kernel_cpu / watch.wall * 100, 2),
                    }
                for gateway in gateways:  # warm-up
                    wrk(gateway.url + PATH, 2)
                steady: dict[str, list[dict]] = {"one": [], "many": []}
                for r in range(args.rounds):
                    for gateway in gateways if r % 2 == 0 else gateways[::-1]:
                        steady[gateway.name].append(wrk(gateway.url + PATH, args.seconds))
                        print(f"[services] {gateway.name}: {steady[gateway.name][-1]}", file=sys.stderr)
                reloading = []
                for r in range(args.reload_rounds):
                    reloading.append(await reload_under_load(one, client, args.reloads, f"r{r}"))
                    print(f"[services] reloading: {reloading[-1]}", file=sys.stderr)
        finally:
            for gateway in gateways:
                stop_process(gateway.process)
    one_rps, many_rps = median_of(steady["one"], "req_per_s"), median_of(steady["many"], "req_per_s")
    steady_p99 = median_of(steady["one"], "p99_ms")
    many_p99 = median_of(steady["many"], "p99_ms")
    report = {
        "warm_pool": args.warm_pool,
        "deploy_to_first_200_s": {
            "bench_pool_2": [round(t, 2) for t in deploys],
            "idle_pool_1_median": round(statistics.median(idle_deploys), 2) if idle_deploys else None,
            "idle_pool_1_all": [round(t, 2) for t in idle_deploys],
        },
        "services": args.services,
        "gateway_rss_per_idle_service_kb": round((rss_after - rss_before) / max(1, args.services - 1)),
        "gateway_rss_kb": {"before_idle_services": rss_before, "after": rss_after},
        "idle_cpu": idle,
        "steady": {
            "one_req_per_s": one_rps,
            "many_req_per_s": many_rps,
            "many_over_one": round(many_rps / one_rps, 3) if one_rps else None,
            "one_p99_ms": steady_p99,
            "many_p99_ms": many_p99,
            "raw": steady,
        },
    }
    if reloading:
        report["reloading"] = {
            "reloads_per_round": args.reloads,
            "non_2xx": [row.get("non_2xx", 0) for row in reloading],
            "socket_errors": [row.get("socket_errors", "") for row in reloading],
            "p99_ms_median": median_of(reloading, "p99_ms"),
            "p99_over_steady_p99": round(median_of(reloading, "p99_ms") / steady_p99, 2)
            if steady_p99
            else None,
            "raw": reloading,
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
