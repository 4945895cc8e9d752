"""The admin page's first render with N kernels: navigation start to the kernels table showing N rows.

Starts the real `fastkg` (loopback, no token: the admin page is on and needs no login), starts N real
ipykernels over REST with bounded concurrency, waits until the machine settles, then loads `/admin` in headless
Chromium (Debian's `chromium`, driven by Playwright) `--loads` times in fresh browser contexts. The time is
taken inside the page: a MutationObserver installed before any script runs notes `performance.now()` (ms since
navigation start) when the table first holds N kernel rows.

    .venv/bin/python bench/admin_render.py [--kernels 100] [--loads 5] [--start-concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import fastkg_process  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

OBSERVER = """
(() => {
  const want = %d;
  const seen = () => document.querySelectorAll('#kernel-rows tr[data-kernel-id]').length;
  const watch = () => {
    const observer = new MutationObserver(() => {
      if (seen() >= want && window.__rendered === undefined) {
        window.__rendered = performance.now();
        observer.disconnect();
      }
    });
    observer.observe(document, { childList: true, subtree: true });
  };
  watch();
})();
"""


async def start_kernels(client: httpx.AsyncClient, count: int, concurrency: int) -> list[str]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with gate:
            response = await client.post("/api/kernels", json={"name": "python3"}, timeout=300)
            response.raise_for_status()
            return str(response.json()["id"])

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def settle(limit: float) -> float:
    """Wait until the 1-min load average falls (the kernels' start-up is over), at most `limit` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and os.getloadavg()[0] > 3:
        await asyncio.sleep(5)
    return os.getloadavg()[0]


async def measure(url: str, kernels: int, loads: int) -> list[dict[str, float]]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (tests/setup_browser.py installs it)"
    results = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for _ in range(loads + 1):  # the first load warms the browser itself and is not counted
                context = await browser.new_context(viewport={"width": 1500, "height": 900})
                page = await context.new_page()
                await page.add_init_script(OBSERVER % kernels)
                load = os.getloadavg()[0]
                await page.goto(f"{url}/admin")
                await page.wait_for_function("() => window.__rendered !== undefined", timeout=60_000)
                rendered = await page.evaluate("() => window.__rendered")
                timing = await page.evaluate(
                    "() => JSON.stringify(performance.getEntriesByType('navigation')[0].toJSON())"
                )
                nav = json.loads(timing)
                results.append(
                    {
                        "rendered_ms": round(rendered, 1),
                        "dom_content_loaded_ms": round(nav["domContentLoadedEventEnd"], 1),
                        "load1": round(load, 2),
                    }
                )
                await context.close()
        finally:
            await browser.close()
    return results[1:]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernels", type=int, default=100)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--start-concurrency", type=int, default=4)
    parser.add_argument("--settle", type=float, default=120, help="max seconds to wait for load < 3")
    args = parser.parse_args()
    env = {"KG_LIST_KERNELS": "true", "FASTKG_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as tmp, fastkg_process(env, Path(tmp)) as gw:
        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=gw.url) as client:
            ids = await start_kernels(client, args.kernels, args.start_concurrency)
            start_s = time.perf_counter() - started
            load = await settle(args.settle)
            api_started = time.perf_counter()
            listed = await client.get("/admin/api/kernels", timeout=60)
            api_ms = (time.perf_counter() - api_started) * 1000
            assert len(listed.json()) == len(ids)
            loads = await measure(gw.url, args.kernels, args.loads)
            for kernel_id in ids:
                await client.delete(f"/api/kernels/{kernel_id}", timeout=60)
    rendered = [row["rendered_ms"] for row in loads]
    print(
        json.dumps(
            {
                "kernels": args.kernels,
                "kernels_started_in_s": round(start_s, 1),
                "load1_before_loads": round(load, 2),
                "admin_api_kernels_with_usage_ms": round(api_ms, 1),
                "first_render_median_ms": statistics.median(rendered),
                "first_render_max_ms": max(rendered),
                "loads": loads,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
