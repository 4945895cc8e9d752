"""Notebooks for the services tests, built in code so each test says what its cells do."""

from __future__ import annotations

import json
from typing import Any


def notebook(*cells: str, metadata: dict[str, Any] | None = None, kernel: str = "python3") -> bytes:
    """An nbformat-4 notebook of code cells."""
    document = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": kernel, "display_name": kernel, "language": "python"},
            "language_info": {"name": "python"},
            **(metadata or {}),
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {},
                "source": c,
                "outputs": [],
                "execution_count": None,
            }
            for i, c in enumerate(cells)
        ],
    }
    return json.dumps(document).encode()


def version_notebook(tag: str, **metadata: Any) -> bytes:
    """`GET /version` prints `tag`; `GET /env/:name` prints an env var; `GET /file/:name` reads a file
    relative to the kernel's working directory; `GET /sleep/:secs` sleeps then prints `tag`."""
    return notebook(
        "import json, os, time",
        f"# GET /version\nprint({tag!r})",
        "# GET /env/:name\nprint(os.environ.get(json.loads(REQUEST)['path']['name'], '<unset>'))",
        "# GET /file/:name\nprint(open(json.loads(REQUEST)['path']['name']).read())",
        f"# GET /sleep/:secs\ntime.sleep(float(json.loads(REQUEST)['path']['secs']))\nprint({tag!r})",
        "# POST /echo\nprint(json.loads(REQUEST)['body'])",
        metadata={"fastkg": metadata} if metadata else None,
    )


def multipart(name: str, raw: bytes, **fields: str) -> dict[str, Any]:
    """httpx arguments for a multipart deploy."""
    return {
        "files": {"notebook": (f"{name}.ipynb", raw, "application/x-ipynb+json")},
        "data": {"name": name, **fields},
    }
