"""Install Debian's Chromium for the browser tests when it is missing (CI runs as root on Debian)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def main() -> int:
    if shutil.which("chromium"):
        return 0
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("setup_browser: chromium is missing and cannot be installed here", file=sys.stderr)
        return 1
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, stdout=subprocess.DEVNULL
    )
    return 0 if shutil.which("chromium") else 1


if __name__ == "__main__":
    raise SystemExit(main())
