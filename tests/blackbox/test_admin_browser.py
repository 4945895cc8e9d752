"""The admin page in real headless Chromium (Playwright driving Debian's chromium) against the real
`fastkg` command: log in (refused for a while after a wrong token), watch a kernel appear, interrupt,
restart and shut it down from the page.
Screenshots are saved in the test's tmp directory; the token never shows up in the page, URLs or logs."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from tests.support import ROOT, execute_content, fastkg_process

TOKEN = "admin-browser-token-0123456789"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


async def cell(page: Page, kernel_id: str, column: int) -> str:
    return await page.inner_text(f'tr[data-kernel-id="{kernel_id}"] td:nth-child({column})')


async def log_in(page: Page, token: str) -> str:
    """Submit the login form; the error it shows ("" once logged in)."""
    await page.evaluate("document.getElementById('login-error').textContent = ''")
    await page.fill("#token", token)
    await page.click("#login-form button[type=submit]")
    shown = "!document.getElementById('kernels').hidden || document.getElementById('login-error').textContent"
    await page.wait_for_function(f"() => {shown}", timeout=WAIT_MS)
    return await page.inner_text("#login-error")


@pytest.mark.timeout(240)
async def test_admin_page_drives_a_kernel(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by tests/setup_browser.py (make test)"
    env = {
        "KG_AUTH_TOKEN": TOKEN,
        "KG_LIST_KERNELS": "true",
        "FASTKG_CULL_IDLE_TIMEOUT": "3600",
        # one wrong token locks this address out for 3 s: the page says so, then logs in
        "FASTKG_ADMIN_LOGIN_ATTEMPTS": "1",
        "FASTKG_ADMIN_LOGIN_WINDOW": "3",
    }
    with fastkg_process(env, tmp_path) as gw:
        urls: list[str] = []
        problems: list[str] = []  # script errors and CSP violations
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1500, "height": 700})
                page.on("request", lambda request: urls.append(request.url))
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                await page.goto(f"{gw.url}/admin")
                await page.wait_for_selector("#login-form", state="visible", timeout=WAIT_MS)
                await page.screenshot(path=tmp_path / "admin-login.png")
                readable = await page.evaluate("document.cookie")
                assert readable.startswith("fastkg_csrf=")  # only the CSRF token is readable by scripts
                assert ";" not in readable
                assert await log_in(page, "wrong") == "Wrong token."
                refused = await log_in(page, TOKEN)
                assert re.fullmatch(r"Too many failed logins: try again in [123] s\.", refused), refused
                async with asyncio.timeout(WAIT_MS / 1000):
                    while await log_in(page, TOKEN):  # refused until the 3 s have passed
                        await asyncio.sleep(0.2)
                assert await page.is_visible("#kernels")

                kernel_id = await gw.start_kernel(env={"KERNEL_USERNAME": "alice"})
                row = f'tr[data-kernel-id="{kernel_id}"]'
                await page.wait_for_selector(row, timeout=WAIT_MS)  # live: no reload
                assert await cell(page, kernel_id, 10) == "alice"
                services = await page.inner_text("#services-status")
                assert services == "Notebook services are off on this gateway."

                socket = await gw.connect(kernel_id)
                try:
                    run = await socket.send("execute_request", execute_content("import time; time.sleep(60)"))
                    await page.wait_for_selector(f'{row}[data-state="busy"]', timeout=WAIT_MS)
                    await page.screenshot(path=tmp_path / "admin-busy.png")
                    if os.environ.get("FASTKG_UPDATE_SCREENSHOT"):
                        await page.screenshot(path=ROOT / "docs" / "admin.png")
                    await page.click(f'{row} button[data-action="interrupt"]')
                    reply = await socket.until(lambda m: m.msg_type == "execute_reply" and m.parent_id == run)
                    assert reply.content["ename"] == "KeyboardInterrupt"
                finally:
                    await socket.close()

                await page.click(f'{row} button[data-action="restart"]')
                async with asyncio.timeout(WAIT_MS / 1000):
                    while await cell(page, kernel_id, 9) != "1":
                        await asyncio.sleep(0.2)
                await page.click(f'{row} button[data-action="shutdown"]')
                await page.wait_for_selector(row, state="detached", timeout=WAIT_MS)
                assert (await gw.client.get(f"/api/kernels/{kernel_id}")).status_code == 404
                await page.screenshot(path=tmp_path / "admin-after.png")

                html = await page.content()
                cookies = await page.evaluate("document.cookie")
                stored = await browser.contexts[0].cookies()
            finally:
                await browser.close()
        await gw.client.aclose()
    # the browser reports the refused logins (401, then 429), nothing else
    assert [p for p in problems if not re.search(r"status of (401|429)", p)] == []
    assert any("429" in p for p in problems)
    # services are off: the overview in the event stream says so, the page never asks for the list
    assert not any("/admin/api/services" in url for url in urls)
    assert TOKEN not in html
    assert "fastkg_admin" not in cookies  # HttpOnly: scripts cannot read the login cookie
    assert all(TOKEN not in c["value"] for c in stored)
    assert urls
    assert all(TOKEN not in url for url in urls)
    assert TOKEN not in gw.log()
    assert (tmp_path / "admin-busy.png").stat().st_size > 10_000
    assert any(url.endswith("/admin/api/login") for url in urls)
