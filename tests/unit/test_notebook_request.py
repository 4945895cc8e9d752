"""REQUEST building (body, args, path, headers) and its safe per-language assignment."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.notebook_api.request import (
    RequestBodyError,
    build_request,
    code_with_request,
    parse_body,
    request_assignment,
)


def _multipart(data: dict[str, Any], files: Any = None) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data=data, files=files)
    return request.read(), request.headers["Content-Type"]


def test_build_request_shape_order_and_header_rules() -> None:
    request = build_request(
        path_params={"name": "café"},
        query=[("person", "a"), ("token", "secret"), ("person", "b"), ("empty", "")],
        headers=[
            ("content-type", "application/json"),
            ("authorization", "token secret"),
            ("x-API-key", "k"),
            ("set-cookie", "A=B"),
            ("Set-Cookie", "C=D"),
            ("if-none-match", '""9a28"'),
        ],
        body=b'{"foo": "bar"}',
        content_type="application/json",
    )
    assert list(request) == ["body", "args", "path", "headers"]
    assert request["body"] == {"foo": "bar"}
    assert request["args"] == {"person": ["a", "b"], "empty": [""]}
    assert request["path"] == {"name": "café"}
    assert request["headers"] == {
        "Content-Type": "application/json",
        "X-Api-Key": "k",
        "Set-Cookie": ["A=B", "C=D"],
        "If-None-Match": '""9a28"',
    }


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"test value", "text/plain", "test value"),
        (b'{"foo" : "bar"}', None, '{"foo" : "bar"}'),
        (b'{ "foo" : "bar" }', "application/json", {"foo": "bar"}),
        (b"[1, 2]", "Application/JSON; charset=utf-8", [1, 2]),
        (b'{ "foo" "bar" }', "application/json", '{ "foo" "bar" }'),
        (b"", "application/json", ""),
        (b"", None, ""),
        (b"<a/>", "application/atom+xml", "<a/>"),
        (b"caf\xe9", "text/plain", "caf\ufffd"),
        (
            b"a=1&b=x+y&a=%C3%A9&blank=",
            "application/x-www-form-urlencoded",
            {"a": ["1", "é"], "b": ["x y"], "blank": [""]},
        ),
        (b"", "application/x-www-form-urlencoded", {}),
        (b"", "multipart/form-data; boundary=x", {}),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "[" * 100_000 + "]" * 100_000),
    ],
)
def test_parse_body(body: bytes, content_type: str | None, expected: object) -> None:
    assert parse_body(body, content_type) == expected


def test_multipart_fields_without_files() -> None:
    body, content_type = _multipart(
        {"foo": "bar", "multi": ["1", "2"], "text": "line\r\nbreak"},
        files={"upload": ("a.txt", b"file content", "text/plain")},
    )
    assert parse_body(body, content_type) == {"foo": ["bar"], "multi": ["1", "2"], "text": ["line\r\nbreak"]}


def test_multipart_quoted_and_rfc2231_names_and_padding() -> None:
    body = (
        b"preamble\r\n--XyZ  \r\n"
        b'Content-Disposition: form-data; name="na;me"\r\n\r\nv1\r\n'
        b"--XyZ\r\nContent-Disposition: form-data; name*=UTF-8''caf%C3%A9\r\n\r\nv\xc3\xa9\r\n"
        b"--XyZ\r\nContent-Disposition: attachment; name=skipped\r\n\r\nignored\r\n"
        b"--XyZ--\r\nepilogue"
    )
    assert parse_body(body, 'multipart/form-data; boundary="XyZ"') == {"na;me": ["v1"], "café": ["vé"]}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--", "multipart/form-data"),
        (b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n", "multipart/form-data; boundary=x"),
    ],
)
def test_malformed_multipart_is_a_request_body_error(body: bytes, content_type: str) -> None:
    with pytest.raises(RequestBodyError):
        parse_body(body, content_type)


NASTY = [
    '"; import os; os.system("touch pwned") #',
    "'; touch pwned; echo '",
    "$(touch pwned) `touch pwned` ${HOME}",
    '@{[ system("touch pwned") ]} $0 @ARGV',
    "#{`touch pwned`} \\' \\\" \\\\ \\u0022 \\x41",
    "line\nbreak\r\ttab\x00nul\x7f",
    "café ☕ 😀 \ud800",
]


def _request_json(nasty: str) -> str:
    request = build_request(
        path_params={"p": nasty},
        query=[(nasty, nasty)],
        headers=[("x-nasty", nasty)],
        body=nasty.encode("utf-8", errors="surrogatepass"),
        content_type="text/plain",
    )
    return json.dumps(request)


@pytest.mark.parametrize("nasty", NASTY)
def test_python_assignment_round_trips_and_matches_kg(nasty: str) -> None:
    request_json = _request_json(nasty)
    statement = request_assignment("python", request_json)
    assert statement == "REQUEST = " + json.dumps(request_json)  # KG's exact form
    namespace: dict[str, object] = {}
    exec(statement, namespace)
    assert namespace["REQUEST"] == request_json
    assert json.loads(str(namespace["REQUEST"]))["path"]["p"] == nasty


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, check=True, timeout=30)
    assert not (cwd / "pwned").exists()
    return done.stdout.decode("ascii")


@pytest.mark.parametrize("nasty", NASTY)
def test_bash_assignment_round_trips(nasty: str, tmp_path: Path) -> None:
    request_json = _request_json(nasty)
    statement = request_assignment("bash", request_json)
    assert _run(["bash", "-c", statement + '\n# GET /x\nprintf %s "$REQUEST"'], tmp_path) == request_json


@pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")
@pytest.mark.parametrize("nasty", NASTY)
def test_perl_assignment_round_trips(nasty: str, tmp_path: Path) -> None:
    request_json = _request_json(nasty)
    statement = request_assignment("Perl", request_json)
    assert statement.startswith("my $REQUEST = '")
    assert _run(["perl", "-e", statement + "\n# GET /x\nprint $REQUEST;"], tmp_path) == request_json


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("nasty", NASTY)
def test_default_form_round_trips_in_javascript(nasty: str, tmp_path: Path) -> None:
    request_json = _request_json(nasty)
    statement = request_assignment("javascript", request_json)
    assert statement.endswith(";")
    code = statement + "\n[0].forEach(() => process.stdout.write(REQUEST));"  # no ASI hazard
    assert _run(["node", "-e", code], tmp_path) == request_json


def test_non_ascii_json_is_reencoded_before_quoting() -> None:
    request_json = '{"body": "caf\u00e9 \u2028 \U0001f600 $x #{y}", "args": {}}'
    statement = request_assignment("python", request_json)
    assert statement.isascii()
    namespace: dict[str, object] = {}
    exec(statement, namespace)
    assert json.loads(str(namespace["REQUEST"])) == json.loads(request_json)
    with pytest.raises(ValueError, match="JSON"):
        request_assignment("python", "not json \n")


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("R", 'REQUEST = "{\\"a\\": \\"$x #{y} \\\\\\" \'\\"}"'),
        ("scala", 'REQUEST = "{\\"a\\": \\"$x #{y} \\\\\\" \'\\"}"'),
        ("julia", 'REQUEST = "{\\"a\\": \\"\\$x #{y} \\\\\\" \'\\"}"'),
        ("ruby", 'REQUEST = \'{"a": "$x #{y} \\\\" \\\'"}\''),
        ("elixir", 'REQUEST = "{\\"a\\": \\"$x \\#{y} \\\\\\" \'\\"}"'),
        ("powershell", '$REQUEST = \'{"a": "$x #{y} \\" \'\'"}\''),
        ("sh", "REQUEST='{\"a\": \"$x #{y} \\\" '\\''\"}'"),
    ],
)
def test_language_forms(language: str, expected: str) -> None:
    assert request_assignment(language, json.dumps({"a": "$x #{y} \" '"})) == expected


# An endpoint cell: annotation on line 1, the line number printed from line 3.
LINE_PROBES = {
    "python": "# GET /x\nimport inspect\nprint(inspect.currentframe().f_lineno, end='')",
    "bash": '# GET /x\n:\nprintf %s "$LINENO"',
    "perl": "# GET /x\n1;\nprint __LINE__;",
}


@pytest.mark.parametrize("language", sorted(LINE_PROBES))
def test_code_with_request_keeps_the_cells_line_numbers(language: str, tmp_path: Path) -> None:
    request_json = _request_json("$x; #{y} '\" \n")
    code = code_with_request(language, request_json, LINE_PROBES[language])
    assert code.count("\n") == LINE_PROBES[language].count("\n")  # nothing added before line 1
    argv = {
        "python": [sys.executable, "-c", code],
        "bash": ["bash", "-c", code],
        "perl": ["perl", "-e", code],
    }
    assert _run(argv[language], tmp_path) == "3"


def test_code_with_request_assigns_request_in_python() -> None:
    request_json = _request_json("x")
    namespace: dict[str, object] = {}
    exec(code_with_request("python", request_json, "# GET /x\nSEEN = REQUEST"), namespace)
    assert namespace["SEEN"] == request_json


@pytest.mark.parametrize(
    ("language", "first_line"),
    [
        ("R", 'REQUEST = "{}"; # GET /x'),
        ("scala", 'REQUEST = "{}"; // GET /x'),
        ("perl", "my $REQUEST = '{}'; # GET /x"),
        ("javascript", 'REQUEST = "{}"; // GET /x'),
    ],
)
def test_code_with_request_shares_the_annotation_line(language: str, first_line: str) -> None:
    annotation = first_line.rpartition("; ")[2]
    code = code_with_request(language, "{}", f"{annotation}\nbody")
    assert code.split("\n") == [first_line, "body"]
