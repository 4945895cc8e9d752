"""Local kernels' ports: leased from a range below the ephemeral one, distinct, free, returned."""

from __future__ import annotations

import random
import socket

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.kernels.ports import EPHEMERAL_RANGE, PortPool, PortRange, PortsExhausted
from tests.support import free_port_block


def test_default_range_lies_below_the_ephemeral_range() -> None:
    low, high = (int(v) for v in EPHEMERAL_RANGE.read_text().split())
    ports = PortRange.below_ephemeral()
    assert 1024 <= ports.lower < ports.upper < low <= high
    assert ports.enabled


def test_leases_are_distinct_free_and_returned() -> None:
    first = free_port_block(12)
    pool = PortPool(PortRange(first, first + 11), random.Random(7))
    taken = socket.socket()
    taken.bind(("127.0.0.1", first + 3))
    taken.listen()
    try:
        a, b = pool.lease("127.0.0.1"), pool.lease("127.0.0.1")
        assert len(a) == len(b) == 5
        assert not set(a) & set(b)
        assert first + 3 not in set(a) | set(b)  # bound by someone else
        assert all(first <= port <= first + 11 for port in (*a, *b))
        with pytest.raises(PortsExhausted, match=f"No free kernel ports left in {first}..{first + 11}"):
            pool.lease("127.0.0.1")  # one port left
        pool.release(a)
        assert pool.leased == 5
        assert len(pool.lease("127.0.0.1")) == 5
    finally:
        taken.close()


@pytest.mark.parametrize(
    ("text", "bounds"),
    [("auto", None), ("0..0", (0, 0)), ("40000..40999", (40000, 40999)), ("2000..2004", (2000, 2004))],
)
def test_port_range_setting(text: str, bounds: tuple[int, int] | None) -> None:
    assert Settings(kernel_port_range=text).kernel_port_range == bounds


@pytest.mark.parametrize("text", ["40000", "a..b", "40000..40003", "80..90", "50000..70000", "41000..40000"])
def test_invalid_port_range_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="port range"):
        Settings(kernel_port_range=text)


def test_zero_range_leaves_ports_to_jupyter_client() -> None:
    assert not PortRange.from_setting((0, 0)).enabled
    assert PortRange.from_setting(None) == PortRange.below_ephemeral()
