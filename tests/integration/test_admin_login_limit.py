"""Failed admin logins are limited per client address, against a real server on loopback: 10 wrong tokens
and the 11th login, even with the right token, is 429 with Retry-After until the window has passed; another
address (a client bound to 127.0.0.2) is not affected; X-Forwarded-For counts only when trusted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import Gateway, serve

TOKEN = "admin-limit-token-0123456789"
WINDOW = 4.0
pytestmark = pytest.mark.timeout(120)


def client(gw: Gateway, local_address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client without the token, its connections made from `local_address` (all of 127/8 is loopback)."""
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    return httpx.AsyncClient(base_url=gw.url, transport=transport, timeout=60)


async def login(browser: httpx.AsyncClient, token: str, **headers: str) -> httpx.Response:
    return await browser.post("/admin/api/login", json={"token": token}, headers=headers)


async def fail(browser: httpx.AsyncClient, times: int, **headers: str) -> None:
    for _ in range(times):
        response = await login(browser, "wrong", **headers)
        assert response.status_code == 401, response.text


def assert_limited(response: httpx.Response, window: float = WINDOW) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {
        "reason": "Too Many Requests",
        "message": "Too many failed logins: try again later",
    }
    assert 1 <= int(response.headers["retry-after"]) <= window
    assert "set-cookie" not in response.headers


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with serve(auth_token=TOKEN, admin_login_window=WINDOW) as gateway:
        yield gateway


async def test_wrong_tokens_lock_out_one_address_for_the_window(gw: Gateway) -> None:
    async with client(gw) as mine, client(gw, "127.0.0.2") as other:
        started = time.monotonic()
        await fail(mine, 10)
        assert_limited(await login(mine, TOKEN))  # even the right token
        assert_limited(await login(mine, "wrong"))
        # untrusted X-Forwarded-For is ignored: a made-up address does not escape the limit
        assert_limited(await login(mine, TOKEN, **{"X-Forwarded-For": "10.1.2.3"}))
        assert time.monotonic() - started < WINDOW, "the machine was too slow to test within the window"

        # another address has its own count: a wrong token is a plain 401, the right one logs in
        await fail(other, 1)
        answer = await login(other, TOKEN)
        assert answer.status_code == 204
        assert "fastkg_admin=" in answer.headers["set-cookie"]
        assert (await other.get("/admin/api/overview")).status_code == 200
        assert_limited(await login(mine, TOKEN))  # that success reset nobody else's count

        # the window passes: the right token logs in again (blocked attempts did not extend it)
        async with asyncio.timeout(WINDOW + 30):
            while (answer := await login(mine, TOKEN)).status_code == 429:
                await asyncio.sleep(min(0.2, float(answer.headers["retry-after"])))
        assert answer.status_code == 204
        assert time.monotonic() - started >= WINDOW - 0.5


async def test_forwarded_address_counts_when_trusted() -> None:
    window = 600.0  # nothing here waits for it
    async with (
        serve(auth_token=TOKEN, admin_login_window=window, trust_xheaders=True) as gw,
        client(gw) as proxy,
    ):
        await fail(proxy, 10, **{"X-Forwarded-For": "198.51.100.7"})
        assert_limited(await login(proxy, TOKEN, **{"X-Forwarded-For": "198.51.100.7"}), window)
        # the client may write anything before the entry its proxy appends: the last entry counts
        spoofed = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
        assert_limited(await login(proxy, TOKEN, **spoofed), window)
        assert_limited(await login(proxy, TOKEN, **{"X-Real-Ip": "198.51.100.7"}), window)
        # the proxy itself and other clients behind it are not locked out
        assert (await login(proxy, TOKEN)).status_code == 204
        assert (await login(proxy, TOKEN, **{"X-Forwarded-For": "198.51.100.8"})).status_code == 204
        assert (await login(proxy, TOKEN, **{"X-Real-Ip": "198.51.100.8"})).status_code == 204
