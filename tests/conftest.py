"""Shared fixtures: a real gateway (in-process uvicorn, real ipykernel) with a token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import Gateway, serve

TOKEN = "test-token-0123456789"


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    """The kernel API with a token and kernel listing on."""
    async with serve(auth_token=TOKEN, list_kernels=True) as gw:
        yield gw
