"""Pure codecs between ZMQ message frames and the two websocket framings Jupyter clients speak.

A kernel message on ZMQ is `[..., b"<IDS|MSG>", signature, header, parent_header, metadata, content,
*buffers]`, each of the four dict parts already JSON. Relaying never re-encodes those parts: the legacy
JSON framing splices them into one JSON object, and `v1.kernel.websocket.jupyter.org` packs them as-is.
"""

from __future__ import annotations

import itertools
import json
import struct
from dataclasses import dataclass, field
from typing import Any

DELIMITER = b"<IDS|MSG>"
V1_SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
_MAX_V1_OFFSETS = 1024


class WireError(ValueError):
    """A frame from a client that cannot be decoded into a kernel message."""


@dataclass(slots=True)
class ClientMessage:
    """A message from a websocket client, ready to be signed and sent to the kernel."""

    channel: str  # as the client named it; the relay routes shell, control and stdin and drops the rest
    header: dict[str, Any]
    parts: list[bytes]  # header, parent_header, metadata, content as JSON bytes
    buffers: list[bytes] = field(default_factory=list)

    @property
    def msg_id(self) -> str:
        return str(self.header.get("msg_id", ""))

    @property
    def msg_type(self) -> str:
        return str(self.header.get("msg_type", ""))


def split_frames(frames: list[bytes]) -> tuple[bytes, list[bytes]]:
    """Split ZMQ frames into (signature, [header, parent, metadata, content, *buffers])."""
    try:
        index = frames.index(DELIMITER)
    except ValueError as exc:
        raise WireError("missing <IDS|MSG> delimiter") from exc
    body = frames[index + 1 :]
    if len(body) < 5:
        raise WireError("incomplete kernel message")
    return body[0], body[1:]


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogateescape")


def _require_dict(value: object, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WireError(f"{name} must be an object")
    return value


def _message_from_dict(msg: object, buffers: list[bytes]) -> ClientMessage:
    if not isinstance(msg, dict):
        raise WireError("a message must be a JSON object")
    channel = msg.get("channel") or "shell"  # Jupyter Server assumes shell too
    if not isinstance(channel, str):
        raise WireError("channel must be a string")
    header = _require_dict(msg.get("header"), "header")
    if not isinstance(header.get("msg_type"), str) or not header.get("msg_id"):
        raise WireError("header needs msg_id and msg_type")
    parent = _require_dict(msg.get("parent_header"), "parent_header")
    metadata = _require_dict(msg.get("metadata"), "metadata")
    content = _require_dict(msg.get("content"), "content")
    try:
        parts = [_dumps(header), _dumps(parent), _dumps(metadata), _dumps(content)]
    except ValueError as exc:
        raise WireError(f"message is not valid JSON: {exc}") from exc
    return ClientMessage(channel, header, parts, buffers)


def decode_legacy_text(text: str) -> ClientMessage:
    """Decode a legacy JSON text frame."""
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise WireError(f"invalid JSON: {exc}") from exc
    return _message_from_dict(msg, [])


def decode_legacy_binary(data: bytes) -> ClientMessage:
    """Decode Jupyter Server's legacy binary framing: offsets, then a JSON message, then buffers."""
    if len(data) < 4:
        raise WireError("binary message too short")
    (count,) = struct.unpack("!I", data[:4])
    if count < 1 or count > _MAX_V1_OFFSETS or len(data) < 4 * (count + 1):
        raise WireError("invalid binary message offsets")
    offsets = [*struct.unpack("!" + "I" * count, data[4 : 4 * (count + 1)]), len(data)]
    if any(b < a for a, b in itertools.pairwise(offsets)) or offsets[0] < 4 * (count + 1):
        raise WireError("invalid binary message offsets")
    chunks = [data[offsets[i] : offsets[i + 1]] for i in range(count)]
    try:
        msg = json.loads(chunks[0])
    except ValueError as exc:
        raise WireError(f"invalid JSON: {exc}") from exc
    return _message_from_dict(msg, chunks[1:])


def encode_legacy(channel: str, header: bytes, msg_id: str, msg_type: str, parts: list[bytes]) -> str | bytes:
    """Encode kernel frames for a legacy client: one JSON text, or the binary framing when buffers exist."""
    _, parent, metadata, content, *buffers = parts
    prefix = f'{{"channel":"{channel}","msg_id":{json.dumps(msg_id)},"msg_type":{json.dumps(msg_type)},'
    body = b"".join(
        [
            prefix.encode(),
            b'"header":',
            header,
            b',"parent_header":',
            parent,
            b',"metadata":',
            metadata,
            b',"content":',
            content,
            b',"buffers":[]}',
        ]
    )
    if not buffers:
        return body.decode("utf-8", "surrogateescape")
    chunks = [body, *buffers]
    offsets = [4 * (len(chunks) + 1)]
    for chunk in chunks[:-1]:
        offsets.append(offsets[-1] + len(chunk))
    return struct.pack("!" + "I" * (len(chunks) + 1), len(chunks), *offsets) + b"".join(chunks)


def encode_v1(channel: str, parts: list[bytes]) -> bytes:
    """Pack frames in the v1.kernel.websocket.jupyter.org layout: offsets, channel, then the parts."""
    name = channel.encode()
    offsets = [8 * (len(parts) + 3)]
    offsets.append(offsets[0] + len(name))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets)
    return b"".join([head, name, *parts])


def decode_v1(data: bytes) -> ClientMessage:
    """Unpack a v1 frame sent by a client."""
    if len(data) < 8:
        raise WireError("v1 message too short")
    (count,) = struct.unpack("<Q", data[:8])
    if count < 6 or count > _MAX_V1_OFFSETS or len(data) < 8 * (count + 1):
        raise WireError("invalid v1 offsets")
    offsets = list(struct.unpack(f"<{count}Q", data[8 : 8 * (count + 1)]))
    if offsets[0] != 8 * (count + 1) or offsets[-1] > len(data):
        raise WireError("invalid v1 offsets")
    if any(b < a for a, b in itertools.pairwise(offsets)):
        raise WireError("invalid v1 offsets")
    try:
        channel = data[offsets[0] : offsets[1]].decode()
    except UnicodeDecodeError as exc:
        raise WireError("invalid channel name") from exc
    parts = [data[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    try:
        header = json.loads(parts[0])
        for part in parts[1:4]:
            if part and not isinstance(json.loads(part), dict):
                raise WireError("message parts must be JSON objects")
    except ValueError as exc:
        raise WireError(f"invalid JSON: {exc}") from exc
    if (
        not isinstance(header, dict)
        or not isinstance(header.get("msg_type"), str)
        or not header.get("msg_id")
    ):
        raise WireError("header needs msg_id and msg_type")
    fixed = [part or b"{}" for part in parts[:4]]
    return ClientMessage(channel, header, fixed, parts[4:])


def reply_type(request_type: str) -> str:
    """`execute_request` -> `execute_reply`."""
    return request_type.removesuffix("_request") + "_reply"


@dataclass(slots=True)
class KernelMessage:
    """A verified message from a kernel; dict parts are decoded lazily, only when someone asks."""

    channel: str
    parts: list[bytes]  # header, parent_header, metadata, content, *buffers
    header: dict[str, Any]
    _parent: dict[str, Any] | None = None
    _content: dict[str, Any] | None = None
    size: int = field(init=False)  # bytes, for bounding buffers (asked on every push and pop)

    def __post_init__(self) -> None:
        self.size = sum(len(part) for part in self.parts)

    @property
    def msg_id(self) -> str:
        return str(self.header.get("msg_id", ""))

    @property
    def msg_type(self) -> str:
        return str(self.header.get("msg_type", ""))

    @property
    def parent(self) -> dict[str, Any]:
        if self._parent is None:
            self._parent = _loads_dict(self.parts[1])
        return self._parent

    @property
    def parent_id(self) -> str:
        return str(self.parent.get("msg_id", ""))

    @property
    def content(self) -> dict[str, Any]:
        if self._content is None:
            self._content = _loads_dict(self.parts[3])
        return self._content


def _loads_dict(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def parse_header(raw: bytes) -> dict[str, Any]:
    return _loads_dict(raw)
