"""Notebook services scenario: reload under load, and deploy -> first 200.

Starts the real `fastkg` (KG_API=services) on a free loopback port, deploys a service, drives it with 8
concurrent keep-alive clients (a Python stand-in for `wrk -c 8`), measures steady latency, then redeploys
the service 5 times under the same load and reports failed/5xx responses and p99 in both phases. With
`--services 20`, 19 idle services are deployed beside it first (routing cost; gateway memory per service).

    .venv/bin/python bench/services_reload.py [--seconds 5] [--reloads 5] [--services 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services_support import multipart, version_notebook  # noqa: E402
from tests.support import free_port, stop_process, wait_http  # noqa: E402


def gateway_rss(pid: int) -> int:
    """The gateway process's resident memory in kB (its kernels are separate processes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


async def load(
    client: httpx.AsyncClient, stop: asyncio.Event, latencies: list[float], bad: list[int]
) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            response = await client.get("/services/bench/version")
            status = response.status_code
        except httpx.HTTPError:
            status = 0
        latencies.append(time.perf_counter() - started)
        if status != 200:
            bad.append(status)


async def phase(base: str, seconds: float, during=None) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    bad: list[int] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        workers = [asyncio.create_task(load(client, stop, latencies, bad)) for _ in range(8)]
        if during is None:
            await asyncio.sleep(seconds)
        else:
            await during()
        stop.set()
        await asyncio.gather(*workers)
    return latencies, bad


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument(
        "--services", type=int, default=1, help="idle services deployed beside the measured one"
    )
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "fastkg.log"
        env = {
            **os.environ,
            "KG_IP": "127.0.0.1",
            "KG_PORT": str(port),
            "KG_API": "services",
            "KG_PORT_RETRIES": "0",
            "FASTKG_LOG_LEVEL": "WARNING",
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "app"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        try:
            wait_http(base, process, log_path)
            async with httpx.AsyncClient(base_url=base, timeout=120) as admin:
                started = time.perf_counter()
                created = await admin.post(
                    "/api/services", **multipart("bench", version_notebook("v0", pool_max=2))
                )
                assert created.status_code == 201, created.text
                first = await admin.get("/services/bench/version")
                deploy_first_200 = time.perf_counter() - started
                assert first.status_code == 200
                rss_before = gateway_rss(process.pid)
                for n in range(1, args.services):
                    extra = await admin.post(
                        "/api/services", **multipart(f"idle{n}", version_notebook("idle"), pool_max=1)
                    )
                    assert extra.status_code == 201, extra.text
                rss_after = gateway_rss(process.pid)
                steady, steady_bad = await phase(base, args.seconds)

                async def redeploy() -> None:
                    for n in range(1, args.reloads + 1):
                        response = await admin.put(
                            "/api/services/bench", **multipart("bench", version_notebook(f"v{n}"))
                        )
                        assert response.status_code == 200, response.text

                during, during_bad = await phase(base, args.seconds, redeploy)
        finally:
            stop_process(process)
    print(
        json.dumps(
            {
                "deploy_to_first_200_s": round(deploy_first_200, 3),
                "services": args.services,
                "gateway_rss_per_idle_service_kb": round(
                    (rss_after - rss_before) / max(1, args.services - 1)
                ),
                "steady_req_per_s": round(len(steady) / args.seconds),
                "steady": {
                    "requests": len(steady),
                    "failed": len(steady_bad),
                    "p99_ms": round(p99(steady) * 1000, 1),
                },
                "reloading": {
                    "reloads": args.reloads,
                    "requests": len(during),
                    "failed": len(during_bad),
                    "failed_statuses": sorted(set(during_bad)),
                    "p99_ms": round(p99(during) * 1000, 1),
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
