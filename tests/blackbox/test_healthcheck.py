"""The Dockerfile's HEALTHCHECK command, run as Docker runs it, against the real command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, fastkg_process, free_port

TOKEN = "health-token-0123456789"


def healthcheck_code() -> str:
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(r"HEALTHCHECK [^\n]*\\\n\s+CMD python -c '([^']+)'", dockerfile)
    assert match, "the Dockerfile has a python -c HEALTHCHECK"
    return match.group(1)


def run_check(env: dict[str, str]) -> int:
    full = {**os.environ, **env}
    command = [sys.executable, "-c", healthcheck_code()]
    return subprocess.run(command, env=full, timeout=30, check=False).returncode


@pytest.mark.timeout(180)
def test_healthcheck_passes_when_ready_without_the_token(tmp_path: Path) -> None:
    port = str(free_port())
    env = {"KG_AUTH_TOKEN": TOKEN, "KG_PORT": port, "KG_BASE_URL": "/gw"}
    assert "readyz" in healthcheck_code()
    assert TOKEN not in healthcheck_code()
    with fastkg_process(env, tmp_path):
        probe_env = {"KG_PORT": port, "KG_BASE_URL": "/gw"}  # the container's env, minus the token
        assert run_check(probe_env) == 0
    assert run_check(probe_env) != 0  # nothing listens any more
