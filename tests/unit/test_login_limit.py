"""The failed-login table: a sliding window per address, a bounded table, IPv6 counted by /64, and the
client address taken from proxy headers only when they are trusted."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import TooManyRequests
from app.http.asgi import Message, Receive, Scope, Send
from app.http.forwarded import ForwardedHeadersMiddleware, forwarded_scheme
from app.http.login_limit import LoginLimiter, bucket, client_address


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_locks_after_the_attempts_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(attempts=3, window=60, clock=clock)
    assert [limiter.failed("10.0.0.1") for _ in range(2)] == [False, False]
    assert limiter.retry_after("10.0.0.1") is None
    clock.now += 10
    assert limiter.failed("10.0.0.1") is True
    assert limiter.retry_after("10.0.0.1") == 50  # the first failure is 10 s old
    assert limiter.retry_after("10.0.0.2") is None
    clock.now += 49.5
    assert limiter.retry_after("10.0.0.1") == pytest.approx(0.5)
    clock.now += 0.5  # the first two failures are 60 s old: one attempt again, the third still counts
    assert limiter.retry_after("10.0.0.1") is None
    assert limiter.failed("10.0.0.1") is False
    clock.now += 60
    assert limiter.retry_after("10.0.0.1") is None
    assert len(limiter) == 0  # forgotten once nothing is recent


def test_the_table_keeps_the_most_recent_failures_only() -> None:
    clock = Clock()
    limiter = LoginLimiter(attempts=1, window=60, capacity=3, clock=clock)
    for n in range(5):
        limiter.failed(f"10.0.0.{n}")
    assert len(limiter) == 3
    assert limiter.retry_after("10.0.0.0") is None  # the least recent ones were dropped
    assert all(limiter.retry_after(f"10.0.0.{n}") is not None for n in (2, 3, 4))
    limiter.failed("10.0.0.2")  # failing again makes it the most recent
    limiter.failed("10.0.0.9")
    assert limiter.retry_after("10.0.0.2") is not None
    assert limiter.retry_after("10.0.0.3") is None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("", ""),
    ],
)
def test_bucket(address: str, key: str) -> None:
    assert bucket(address) == key


def scope(client: str | None, *headers: tuple[str, str]) -> dict[str, Any]:
    return {
        "client": (client, 50000) if client else None,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }


@pytest.mark.parametrize(
    ("headers", "trusted", "address"),
    [
        ((), False, "127.0.0.1"),
        ((("X-Forwarded-For", "198.51.100.7"),), False, "127.0.0.1"),
        ((("X-Forwarded-For", "198.51.100.7"),), True, "198.51.100.7"),
        ((("X-Forwarded-For", "203.0.113.9, 198.51.100.7"),), True, "198.51.100.7"),
        ((("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.7")), True, "198.51.100.7"),
        ((("X-Forwarded-For", "198.51.100.7"), ("X-Real-Ip", "198.51.100.8")), True, "198.51.100.8"),
        ((("X-Forwarded-For", "not-an-ip"),), True, "127.0.0.1"),
        ((("X-Real-Ip", " 2001:DB8::1 "),), True, "2001:db8::1"),
    ],
)
async def test_client_address(headers: tuple[tuple[str, str], ...], trusted: bool, address: str) -> None:
    """Proxy headers count only where ForwardedHeadersMiddleware is installed (KG_TRUST_XHEADERS)."""
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(client_address(scope))

    edge = ForwardedHeadersMiddleware(app) if trusted else app
    await edge({"type": "http", **scope("127.0.0.1", *headers)}, receive_nothing, send_nothing)
    assert seen == [address]


async def receive_nothing() -> Message:
    raise AssertionError("not read")


async def send_nothing(message: Message) -> None:
    raise AssertionError("not sent")


@pytest.mark.parametrize(
    ("headers", "scheme"),
    [
        ((), "http"),
        ((("X-Forwarded-Proto", "https"),), "https"),
        ((("X-Forwarded-Proto", "http, https"),), "https"),
        ((("X-Scheme", "https"), ("X-Forwarded-Proto", "http")), "https"),
        ((("X-Forwarded-Proto", "gopher"),), "http"),
    ],
)
def test_forwarded_scheme(headers: tuple[tuple[str, str], ...], scheme: str) -> None:
    assert (forwarded_scheme(scope("127.0.0.1", *headers)) or "http") == scheme


def test_client_address_without_a_peer() -> None:
    assert client_address(scope(None)) == ""


def test_too_many_requests_rounds_retry_after_up() -> None:
    assert TooManyRequests("m", 0.2).headers == {"Retry-After": "1"}
    assert TooManyRequests("m", 59.01).headers == {"Retry-After": "60"}
    assert TooManyRequests("m", 1).status == 429
