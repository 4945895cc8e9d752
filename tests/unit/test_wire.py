"""The websocket codecs, checked against Jupyter Server's own serializers where one exists."""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

import pytest
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from app.kernels.wire import (
    DELIMITER,
    WireError,
    decode_legacy_binary,
    decode_legacy_text,
    decode_v1,
    encode_legacy,
    encode_v1,
    reply_type,
    split_frames,
)


def header(msg_type: str = "execute_request", msg_id: str | None = None) -> dict[str, Any]:
    return {
        "msg_id": msg_id or uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": "u",
        "session": "s",
        "date": "2024-01-01T00:00:00.000000Z",
        "version": "5.3",
    }


def message(channel: str = "shell", **overrides: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "channel": channel,
        "header": header(),
        "parent_header": {},
        "metadata": {"m": 1},
        "content": {"code": "1+1", "silent": False},
        "buffers": [],
    }
    msg.update(overrides)
    return msg


def kernel_parts(content: dict[str, Any], *buffers: bytes) -> tuple[dict[str, Any], list[bytes]]:
    hdr = header("display_data")
    parent = header("execute_request")
    parts = [
        json.dumps(hdr).encode(),
        json.dumps(parent).encode(),
        json.dumps({"k": "v"}).encode(),
        json.dumps(content).encode(),
        *buffers,
    ]
    return hdr, parts


# -- legacy text --------------------------------------------------------------------------------------


def test_decode_legacy_text() -> None:
    msg = message("control")
    decoded = decode_legacy_text(json.dumps(msg))
    assert decoded.channel == "control"
    assert decoded.msg_id == msg["header"]["msg_id"]
    assert decoded.msg_type == "execute_request"
    assert [json.loads(p) for p in decoded.parts] == [
        msg["header"],
        msg["parent_header"],
        msg["metadata"],
        msg["content"],
    ]
    assert decoded.buffers == []


def test_decode_legacy_text_defaults_channel_and_missing_parts() -> None:
    decoded = decode_legacy_text(json.dumps({"header": header("kernel_info_request")}))
    assert decoded.channel == "shell"
    assert [json.loads(p) for p in decoded.parts[1:]] == [{}, {}, {}]


def test_decode_legacy_text_keeps_unicode() -> None:
    msg = message(content={"code": "print('héllo ☃')"})
    decoded = decode_legacy_text(json.dumps(msg, ensure_ascii=False))
    assert json.loads(decoded.parts[3])["code"] == "print('héllo ☃')"


def test_encode_legacy_text_is_one_json_message() -> None:
    hdr, parts = kernel_parts({"data": {"text/plain": "42"}, "metadata": {}})
    encoded = encode_legacy("iopub", parts[0], hdr["msg_id"], hdr["msg_type"], parts)
    assert isinstance(encoded, str)
    msg = json.loads(encoded)
    assert set(msg) == {
        "channel",
        "msg_id",
        "msg_type",
        "header",
        "parent_header",
        "metadata",
        "content",
        "buffers",
    }
    assert msg["channel"] == "iopub"
    assert msg["msg_id"] == hdr["msg_id"]
    assert msg["msg_type"] == "display_data"
    assert msg["header"] == hdr
    assert msg["parent_header"]["msg_type"] == "execute_request"
    assert msg["metadata"] == {"k": "v"}
    assert msg["content"] == {"data": {"text/plain": "42"}, "metadata": {}}
    assert msg["buffers"] == []


def test_encode_legacy_escapes_awkward_ids() -> None:
    _, parts = kernel_parts({})
    encoded = encode_legacy("shell", parts[0], 'a"b\\c', "t\n", parts)
    assert isinstance(encoded, str)
    msg = json.loads(encoded)
    assert msg["msg_id"] == 'a"b\\c'
    assert msg["msg_type"] == "t\n"


# -- legacy binary ------------------------------------------------------------------------------------


def test_encode_legacy_with_buffers_is_jupyter_servers_binary_format() -> None:
    buffers = [b"\x00\x01\x02binary", b"", b"x" * 1000]
    hdr, parts = kernel_parts({"data": {}}, *buffers)
    encoded = encode_legacy("iopub", parts[0], hdr["msg_id"], hdr["msg_type"], parts)
    assert isinstance(encoded, bytes)
    msg = deserialize_binary_message(encoded)
    assert msg["channel"] == "iopub"
    assert msg["msg_type"] == "display_data"
    assert msg["header"]["msg_id"] == hdr["msg_id"]
    assert msg["content"] == {"data": {}}
    assert msg["buffers"] == buffers


def test_decode_legacy_binary_from_jupyter_server_serializer() -> None:
    msg = message("shell", buffers=[b"first", b"\xff\xfe second"])
    data = serialize_binary_message(msg)
    decoded = decode_legacy_binary(data)
    assert decoded.channel == "shell"
    assert decoded.msg_id == msg["header"]["msg_id"]
    assert decoded.buffers == [b"first", b"\xff\xfe second"]
    assert json.loads(decoded.parts[3]) == msg["content"]


def test_legacy_binary_round_trip() -> None:
    hdr, parts = kernel_parts({"comm_id": "c", "data": {}}, b"abc", b"\x00" * 17)
    encoded = encode_legacy("shell", parts[0], hdr["msg_id"], hdr["msg_type"], parts)
    assert isinstance(encoded, bytes)
    decoded = decode_legacy_binary(encoded)
    assert decoded.channel == "shell"
    assert decoded.header == hdr
    assert decoded.buffers == [b"abc", b"\x00" * 17]
    assert json.loads(decoded.parts[3]) == {"comm_id": "c", "data": {}}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00",
        struct.pack("!I", 0),  # no chunks
        struct.pack("!I", 5000),  # absurd count
        struct.pack("!II", 2, 12),  # truncated offset table
        struct.pack("!II", 1, 2) + b"{}",  # first offset inside the table
        struct.pack("!III", 2, 12, 8) + b"{}",  # decreasing offsets
        struct.pack("!II", 1, 8) + b"not json",
        struct.pack("!II", 1, 8) + b"[1, 2]",
    ],
)
def test_decode_legacy_binary_rejects_malformed(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_legacy_binary(data)


# -- v1 -----------------------------------------------------------------------------------------------


def v1_parts(msg: dict[str, Any]) -> list[bytes]:
    return [json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")]


def test_encode_v1_matches_jupyter_server() -> None:
    msg = message("iopub")
    parts = v1_parts(msg)
    assert encode_v1("iopub", parts) == serialize_msg_to_ws_v1(parts, "iopub")
    channel, decoded = deserialize_msg_from_ws_v1(encode_v1("iopub", [*parts, b"buf"]))
    assert channel == "iopub"
    assert decoded == [*parts, b"buf"]


def test_v1_round_trip_with_buffers() -> None:
    msg = message("control")
    parts = v1_parts(msg)
    decoded = decode_v1(encode_v1("control", [*parts, b"\x00buf", b"two"]))
    assert decoded.channel == "control"
    assert decoded.header == msg["header"]
    assert decoded.msg_id == msg["header"]["msg_id"]
    assert decoded.parts == parts
    assert decoded.buffers == [b"\x00buf", b"two"]


def test_decode_v1_from_jupyter_server_serializer() -> None:
    msg = message("stdin", content={"value": "typed"})
    data = serialize_msg_to_ws_v1(msg, "stdin", pack=lambda d: json.dumps(d).encode())
    decoded = decode_v1(data)
    assert decoded.channel == "stdin"
    assert json.loads(decoded.parts[3]) == {"value": "typed"}


def test_decode_v1_empty_parts_become_empty_objects() -> None:
    parts = [json.dumps(header()).encode(), b"", b"", b""]
    decoded = decode_v1(encode_v1("shell", parts))
    assert decoded.parts[1:] == [b"{}", b"{}", b"{}"]


def _v1_with_offsets(offsets: list[int], tail: bytes) -> bytes:
    return struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets) + tail


GOOD = v1_parts(message())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x00",
        struct.pack("<Q", 2) + b"x" * 40,  # too few offsets
        struct.pack("<Q", 1 << 40),  # absurd count
        encode_v1("shell", GOOD)[:60],  # truncated offset table
        encode_v1("shell", GOOD)[:-10],  # truncated body: last offset beyond the data
        encode_v1("shell", GOOD).replace(b"shell", b"\xff\xfe\xfd\xfc\xfb", 1),  # channel not UTF-8
        _v1_with_offsets([8 * 7, 8 * 7 + 5, 8 * 7 + 3, 8 * 7 + 9, 8 * 7 + 9, 8 * 7 + 9], b"shellx" * 5),
        _v1_with_offsets([0, 5, 5, 5, 5, 5], b"shell"),  # first offset does not follow the table
        encode_v1("shell", [b"not json", *GOOD[1:]]),
        encode_v1("shell", [b"[1, 2]", *GOOD[1:]]),  # header not an object
        encode_v1("shell", [json.dumps({"msg_id": "x"}).encode(), *GOOD[1:]]),  # no msg_type
        encode_v1("shell", [GOOD[0], b"[]", *GOOD[2:]]),  # parent not an object
        encode_v1("shell", [*GOOD[:3], b'"text"']),  # content not an object
    ],
)
def test_decode_v1_rejects_malformed(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_v1(data)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "not json",
        "[]",
        '"a string"',
        "42",
        json.dumps({**message(), "channel": ["shell"]}),  # the channel is not a name
        json.dumps(message(header="x")),
        json.dumps(message(header={"msg_type": "execute_request"})),  # no msg_id
        json.dumps(message(header={"msg_id": "1", "msg_type": 5})),
        json.dumps(message(parent_header=[1])),
        json.dumps(message(metadata="m")),
        json.dumps(message(content=[1, 2])),
    ],
)
def test_decode_legacy_text_rejects_malformed(text: str) -> None:
    with pytest.raises(WireError):
        decode_legacy_text(text)


@pytest.mark.parametrize("channel", ["iopub", "nonsense"])
def test_well_formed_messages_on_any_channel_decode_for_the_relay_to_drop(channel: str) -> None:
    # routing is the relay's job: it drops these with a log line, as Jupyter Server does
    assert decode_legacy_text(json.dumps(message(channel))).channel == channel
    assert decode_v1(encode_v1(channel, GOOD)).channel == channel


def test_wire_error_is_a_value_error() -> None:
    assert issubclass(WireError, ValueError)


# -- zmq frames --------------------------------------------------------------------------------------


def test_split_frames() -> None:
    signature, body = split_frames([b"ident", DELIMITER, b"sig", b"h", b"p", b"m", b"c", b"buf"])
    assert signature == b"sig"
    assert body == [b"h", b"p", b"m", b"c", b"buf"]


@pytest.mark.parametrize("frames", [[b"h", b"p", b"m", b"c"], [DELIMITER, b"sig", b"h", b"p", b"m"]])
def test_split_frames_rejects_incomplete(frames: list[bytes]) -> None:
    with pytest.raises(WireError):
        split_frames(frames)


def test_reply_type() -> None:
    assert reply_type("execute_request") == "execute_reply"
    assert reply_type("kernel_info_request") == "kernel_info_reply"
