"""The Swagger UI page, rendered by real headless Chromium against the real `fastkg` command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, fastkg_process

TOKEN = "browser-token-123"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


def render(url: str, tmp_path: Path) -> str:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by tests/setup_browser.py (make test)"
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.timeout(180)
def test_swagger_ui_renders_both_apis_with_a_token(tmp_path: Path) -> None:
    env = {
        "KG_AUTH_TOKEN": TOKEN,
        "KG_API": "jupyter-websocket,notebook-http",
        "KG_SEED_URI": str(ROOT / "examples" / "api.ipynb"),
    }
    with fastkg_process(env, tmp_path) as gateway:
        dom = render(f"{gateway.url}/docs?token={TOKEN}", tmp_path)
        assert 'class="swagger-ui' in dom
        # Operations are only rendered after the UI fetched /openapi.json, which needs the token:
        # so these prove the page's request interceptor authenticated the fetch.
        for path in ("/api/kernels", "/api/kernelspecs", "/api/sessions", "/hello", "/items/{id}"):
            assert f'data-path="{path}"' in dom, path
        assert TOKEN not in dom.replace(f"token={TOKEN}", "")


@pytest.mark.timeout(180)
def test_swagger_ui_without_the_token_shows_no_operations(tmp_path: Path) -> None:
    with fastkg_process({"KG_AUTH_TOKEN": TOKEN}, tmp_path) as gateway:
        dom = render(f"{gateway.url}/docs", tmp_path)
        assert "Unauthorized" in dom or "swagger-ui" not in dom
        assert 'data-path="/api/kernels"' not in dom


@pytest.mark.timeout(180)
def test_swagger_ui_of_a_notebook_service(tmp_path: Path) -> None:
    """A service's own page at <prefix>/docs shows its endpoints and only them; the gateway's shows both."""
    env = {
        "KG_AUTH_TOKEN": TOKEN,
        "KG_API": "jupyter-websocket,services",
        "FASTKG_SERVICES_DIR": str(ROOT / "examples" / "services"),
    }
    with fastkg_process(env, tmp_path) as gateway:
        dom = render(f"{gateway.url}/greeter/docs?token={TOKEN}", tmp_path)
        for path in ("/greeter/hello/{name}", "/greeter/echo"):
            assert f'data-path="{path}"' in dom, path
        assert 'data-path="/api/kernels"' not in dom
        assert 'data-path="/services/stats/summary"' not in dom
        combined = render(f"{gateway.url}/docs?token={TOKEN}", tmp_path)
        for path in ("/api/services", "/greeter/hello/{name}", "/services/stats/summary"):
            assert f'data-path="{path}"' in combined, path
