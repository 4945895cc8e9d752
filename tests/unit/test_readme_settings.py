"""README's configuration table against Settings and the CLI, so the two cannot drift apart.

Every row's variable is one Settings reads, every setting has a row, every flag shown is one `fastkg`
accepts (for that setting), and every default shown is the setting's default.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME

from app.cli import build_parser, normalise_argv
from app.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
CODE = re.compile(r"`([^`]+)`")
# Defaults the table states in words, and the values they stand for.
WORDS: dict[str, tuple[object, ...]] = {"unset": (None, ""), "empty": ([], ""), "unlimited": (None,)}
# Settings whose default the gateway resolves later: the table shows what a user gets.
RESOLVED = {"default_kernel_name": NATIVE_KERNEL_NAME}


@dataclass(frozen=True)
class Row:
    variable: str
    flags: tuple[str, ...]
    default: str
    text: str


def table_rows() -> list[Row]:
    """The rows of the table under `## Configuration` (up to the next `## ` heading)."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ", 3)]
        assert len(cells) == 4, line
        variable, flags, default, _ = cells
        (name,) = CODE.findall(variable)
        rows.append(Row(name, tuple(CODE.findall(flags)), default, line))
    assert len(rows) > 40, "the configuration table was not found"
    return rows


def env_names(field: str) -> list[str]:
    """The environment variables a setting reads (its upper-case aliases, the first one its own)."""
    choices = getattr(Settings.model_fields[field].validation_alias, "choices", [])
    return [alias for alias in choices if isinstance(alias, str) and alias.isupper()]


FIELD_OF = {name: field for field in Settings.model_fields for name in env_names(field)}
ROWS = table_rows()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("KG_", "FASTKG_", "EG_")):
            monkeypatch.delenv(name)


def test_every_variable_in_the_table_is_a_setting() -> None:
    variables = [row.variable for row in ROWS]
    assert len(variables) == len(set(variables)), "a variable is listed twice"
    unknown = [name for name in variables if name not in FIELD_OF]
    assert not unknown, f"listed in README but not read by Settings: {unknown}"


def test_every_setting_is_in_the_table() -> None:
    rows = {row.variable: row for row in ROWS}
    for field in Settings.model_fields:
        own, *others = env_names(field)
        assert own in rows, f"{field} ({own}) is missing from README's configuration table"
        for other in others:  # e.g. Enterprise Gateway's EG_* spelling, named in the row's text
            assert f"`{other}`" in rows[own].text, f"README's {own} row does not mention {other}"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.variable)
def test_flags_shown_reach_the_setting(row: Row) -> None:
    field = FIELD_OF[row.variable]
    assert row.flags, f"{row.variable} shows no flag"
    for flag in row.flags:
        parsed, unknown = build_parser().parse_known_args(normalise_argv([f"{flag}=probe"]))
        assert not unknown, f"fastkg does not accept {flag}"
        assert getattr(parsed, field) == "probe", f"{flag} does not set {field}"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.variable)
def test_default_shown_is_the_default(row: Row) -> None:
    field = FIELD_OF[row.variable]
    actual = getattr(Settings(), field)
    if field in RESOLVED:
        assert actual in WORDS["unset"], f"{field} is no longer resolved later"
        assert row.default == f"`{RESOLVED[field]}`"
        return
    if row.default in WORDS:
        assert actual in WORDS[row.default], f"{row.variable}: README {row.default}, code {actual!r}"
        return
    (shown,) = CODE.findall(row.default)
    documented = getattr(Settings(**{field: shown}), field)  # the shown text, read as the setting reads it
    assert documented == actual, f"{row.variable}: README {shown}, code {actual!r}"
