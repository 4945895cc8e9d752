"""Layering rules, checked by reading app/'s imports with `ast` (nothing is imported to check them)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. app.routers.kernels
    target: str  # what it imports, e.g. zmq.asyncio or app.main
    type_checking: bool  # under `if TYPE_CHECKING:`
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(path: Path, source: str | None = None) -> list[Import]:
    module = module_name(path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, type_checking: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_checking)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, type_checking, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            found.append(Import(module, source, type_checking, node.lineno))
            # `from app import main` imports the module app.main
            found.extend(
                Import(module, f"{source}.{alias.name}", type_checking, node.lineno) for alias in node.names
            )
        for inner in ast.iter_child_nodes(node):
            visit(inner, type_checking)

    visit(ast.parse(path.read_text() if source is None else source, str(path)), False)
    return found


ALL = [imp for path in sorted(APP.rglob("*.py")) for imp in imports_of(path)]


def touches(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def test_scanner_sees_the_code() -> None:
    """Guard against a scanner that finds nothing and so passes every rule."""
    modules = {imp.module for imp in ALL}
    assert {"app.main", "app.cli", "app.routers.kernels", "app.kernels.channels"} <= modules
    assert any(imp.module == "app.kernels.channels" and touches(imp.target, "zmq") for imp in ALL)
    assert any(imp.module == "app.cli" and imp.target == "app.main" for imp in ALL)
    assert any(imp.type_checking for imp in ALL)


def test_scanner_resolves_relative_and_type_checking_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import main\n"
        "from ..kernels import wire\n"
        "if TYPE_CHECKING:\n"
        "    import zmq\n"
        "def f():\n"
        "    import jupyter_client\n"
    )
    found = imports_of(APP / "routers" / "_arch_probe.py", source)
    targets = {(i.target, i.type_checking) for i in found}
    assert ("app.routers.main", False) in targets
    assert ("app.kernels.wire", False) in targets
    assert ("zmq", True) in targets
    assert ("jupyter_client", False) in targets


def test_routers_never_import_zmq_or_jupyter_client() -> None:
    bad = [
        imp
        for imp in ALL
        if touches(imp.module, "app.routers")
        and (touches(imp.target, "zmq") or touches(imp.target, "jupyter_client"))
    ]
    assert bad == []


def test_only_channels_imports_zmq_at_runtime() -> None:
    bad = [
        imp
        for imp in ALL
        if touches(imp.target, "zmq") and not imp.type_checking and imp.module != "app.kernels.channels"
    ]
    assert bad == []


@pytest.mark.parametrize("module", ["app.config", "app.errors", "app.schemas"])
def test_pure_modules_import_only_each_other(module: str) -> None:
    allowed = {"app.config", "app.errors", "app.schemas"}
    app_imports = {imp.target for imp in ALL if imp.module == module and touches(imp.target, "app")}
    # `from app.errors import X` also records app.errors.X; judge by the module part
    bad = {t for t in app_imports if not any(t == a or t.startswith(a + ".") for a in allowed)}
    assert bad == set()


def test_only_cli_imports_main() -> None:
    importers = {imp.module for imp in ALL if imp.target == "app.main" and imp.module != "app.main"}
    assert importers == {"app.cli"}


def test_the_kernel_domain_knows_nothing_of_http_or_observability() -> None:
    edge = ("app.routers", "app.observability", "app.http", "app.state", "app.main", "fastapi", "starlette")
    bad = [
        imp
        for imp in ALL
        if touches(imp.module, "app.kernels") and any(touches(imp.target, package) for package in edge)
    ]
    assert bad == []


def test_services_domain_has_no_http_framework() -> None:
    """app/services owns services and their versions; the HTTP apps are built by app/routers and handed in."""
    bad = [
        imp
        for imp in ALL
        if touches(imp.module, "app.services")
        and any(touches(imp.target, t) for t in ("fastapi", "starlette", "app.routers", "app.main"))
    ]
    assert bad == []
    assert any(touches(imp.module, "app.services") for imp in ALL)
