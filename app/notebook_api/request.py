"""Build KG's REQUEST object from an HTTP request and the kernel statement that assigns it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from email.message import Message
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value
from urllib.parse import parse_qsl

_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_JSON = "application/json"
_OUTSIDE_SAFE_ASCII = re.compile(r"[^\x20-\x7f]")
# Languages whose double-quoted strings interpolate `$...` or `#{...}`: those characters get escaped.
_DOLLAR_INTERPOLATING = frozenset({"julia", "kotlin", "groovy", "dart"})
_HASH_INTERPOLATING = frozenset({"crystal", "elixir"})
_SHELLS = frozenset({"bash", "sh", "zsh"})
# Languages where a newline may not end the statement: the assignment gets a `;` so the endpoint's
# code can follow it on the next line of the same execution.
_SEMICOLON = frozenset({"javascript", "typescript", "java", "c", "c++", "cpp", "c#", "csharp"})

HeaderValue = str | list[str]


class RequestBodyError(ValueError):
    """The body claims a structured content type but cannot be parsed; the edge should answer 400."""


def build_request(
    *,
    path_params: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    body: bytes,
    content_type: str | None,
) -> dict[str, object]:
    """KG's REQUEST dict, keys in KG's order: body, args (name -> [values]), path, headers.

    `query` holds decoded (name, value) pairs with blank values kept; `headers` the raw (name, value)
    pairs. Header names take Tornado's canonical form (`content-type` -> `Content-Type`) and a
    repeated header becomes a list, as KG's headers_to_dict does.
    Unlike KG, the `Authorization` header and every `token` query argument are dropped so the
    gateway's credentials never reach notebook code.
    """
    return {
        "body": parse_body(body, content_type),
        "args": _multi_dict((name, value) for name, value in query if name != "token"),
        "path": dict(path_params),
        "headers": _headers(headers),
    }


def parse_body(body: bytes, content_type: str | None) -> object:
    """KG's body rules: JSON -> parsed value (raw text if invalid), forms -> name -> [values], else text.

    Text is decoded as UTF-8 with replacement; an empty body is "" (or {} for forms). Unlike KG,
    which compares the whole header, only the media type is compared, so
    `application/json; charset=utf-8` is parsed too. Multipart file parts are left out, as KG does.
    """
    media_type = (content_type or "text/plain").partition(";")[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if media_type == _FORM:
        return _multi_dict(parse_qsl(text, keep_blank_values=True))
    if media_type == _MULTIPART:
        return _multipart_fields(body, content_type or "") if body else {}
    if media_type == _JSON:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return text
    return text


def request_assignment(language: str, request_json: str) -> str:
    """The statement setting `REQUEST` to the JSON text `request_json` in a kernel's language.

    KG's forms: `my $REQUEST = ...` for Perl and `REQUEST = "<json string>"` otherwise. To keep request
    content from ever being read as code, the text is first reduced to printable ASCII (re-encoding
    the JSON if needed) and put in a literal with no interpolation: single quotes for Perl, shells,
    Ruby and PowerShell, a JSON string (`\\$` / `\\#` escaped where those interpolate) elsewhere.
    The statement may be sent alone (as KG does) or put before an endpoint's code (`code_with_request`).
    """
    text = _safe_json_text(request_json)
    name = language.strip().lower()
    if name == "perl":
        return f"my $REQUEST = '{_backslash_single_quoted(text)}';"
    if name in _SHELLS:
        return "REQUEST='" + text.replace("'", "'\\''") + "'"
    if name == "ruby":
        return f"REQUEST = '{_backslash_single_quoted(text)}'"
    if name == "powershell":
        return "$REQUEST = '" + text.replace("'", "''") + "'"
    literal = json.dumps(text)
    if name in _DOLLAR_INTERPOLATING:
        literal = literal.replace("$", "\\$")
    elif name in _HASH_INTERPOLATING:
        literal = literal.replace("#", "\\#")
    return f"REQUEST = {literal}" + (";" if name in _SEMICOLON else "")


def code_with_request(language: str, request_json: str, source: str) -> str:
    """An endpoint's code with the `REQUEST` assignment in front, in one execution, on the same line.

    KG runs the assignment as a separate execution; one execution saves a round trip per request. So that
    line numbers in tracebacks stay the cell's own, the statement shares the first line, which is always
    the cell's annotation comment (`# GET /x`, `// operationId: x`): `REQUEST = "..."; # GET /x`. Every
    kernel language takes `statement; comment` (Python, shells, Perl, R, Scala, Ruby, Julia, JS ...).
    """
    assignment = request_assignment(language, request_json)
    return f"{assignment}{' ' if assignment.endswith(';') else '; '}{source}"


def _safe_json_text(request_json: str) -> str:
    if _OUTSIDE_SAFE_ASCII.search(request_json) is None:
        return request_json
    try:
        return json.dumps(json.loads(request_json))
    except (ValueError, RecursionError) as exc:
        raise ValueError("request_json must be JSON text") from exc


def _backslash_single_quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _multi_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _headers(pairs: Iterable[tuple[str, str]]) -> dict[str, HeaderValue]:
    out: dict[str, HeaderValue] = {}
    for raw_name, value in pairs:
        name = "-".join(word.capitalize() for word in raw_name.split("-"))
        if name == "Authorization":
            continue
        current = out.get(name)
        if current is None:
            out[name] = value
        elif isinstance(current, list):
            current.append(value)
        else:
            out[name] = [current, value]
    return out


def _multipart_fields(body: bytes, content_type: str) -> dict[str, list[str]]:
    """Non-file `form-data` fields of a multipart body (RFC 7578), values decoded as UTF-8."""
    boundary = _content_type_header(content_type).get_boundary()
    if not boundary:
        raise RequestBodyError("multipart/form-data request without a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1", errors="replace")
    data = b"\r\n" + body
    end = data.find(delimiter + b"--")
    if end < 0:
        raise RequestBodyError("multipart/form-data body has no closing boundary")
    fields: list[tuple[str, str]] = []
    for chunk in data[:end].split(delimiter)[1:]:
        part = chunk.partition(b"\r\n")[2]  # drop the rest of the delimiter line
        head, separator, value = part.partition(b"\r\n\r\n")
        headers = HeaderParser().parsestr(head.decode("utf-8", errors="replace") + "\r\n\r\n")
        raw_name = headers.get_param("name", header="content-disposition")
        if not separator or headers.get_content_disposition() != "form-data" or raw_name is None:
            continue  # like Tornado, skip a malformed part
        if not headers.get_filename():
            fields.append((collapse_rfc2231_value(raw_name), value.decode("utf-8", errors="replace")))
    return _multi_dict(fields)


def _content_type_header(content_type: str) -> Message:
    message = Message()
    message["Content-Type"] = content_type.replace("\r", " ").replace("\n", " ")
    return message
