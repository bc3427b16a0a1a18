"""Frame parser robustness and the frame sizes of the field report (design.md)."""

from __future__ import annotations

import json
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.tuya_local_esp.tuya import Command, MessageCodec, TuyaProtocolError
from custom_components.tuya_local_esp.tuya.const import MAX_FRAME_LENGTH
from custom_components.tuya_local_esp.tuya.crypto import ecb_decrypt, pkcs7_unpad
from custom_components.tuya_local_esp.tuya.errors import TuyaFrameError
from custom_components.tuya_local_esp.tuya.frame import FrameParser, RawFrame, pack_55aa
from custom_components.tuya_local_esp.tuya.payload import (
    control_request,
    extract_dps,
    heartbeat_request,
    status_request,
)
from tuya_sim.codec import DeviceCodec, SimProtocolError

KEY = b"0123456789abcdef"
DEV20 = "bf0123456789abcdefgh"  # a 20-character device id, as in the field report


def frames_of(items: list[RawFrame | TuyaFrameError]) -> list[RawFrame]:
    return [i for i in items if isinstance(i, RawFrame)]


def sample_stream() -> tuple[bytes, list[bytes]]:
    codec = DeviceCodec("3.3", KEY)
    frames = [
        codec.encode(1, Command.DP_QUERY, b'{"dps":{"1":true}}'),
        codec.encode(2, Command.HEART_BEAT, b""),
        codec.encode(0, Command.STATUS, b'{"dps":{"19":1234}}'),
    ]
    return b"".join(frames), frames


@pytest.fixture(autouse=True)
def fixed_time():  # type: ignore[no-untyped-def]
    with patch("custom_components.tuya_local_esp.tuya.payload.time.time", return_value=1.7e9):
        yield


def test_field_report_frame_sizes() -> None:
    """136-byte DP_QUERY, 151/135-byte CONTROL and 88-byte HEART_BEAT for a 20-char id."""
    codec = MessageCodec("3.3", KEY)
    assert len(codec.encode(1, *status_request("3.3", DEV20))) == 136
    assert len(codec.encode(2, *control_request("3.3", DEV20, {"1": False}))) == 151
    assert len(codec.encode(3, *control_request("3.3", DEV20, {"1": True}))) == 135
    assert len(codec.encode(4, *heartbeat_request(DEV20))) == 88


def test_partial_reads_and_several_frames_per_read() -> None:
    stream, frames = sample_stream()
    parser = FrameParser()
    got: list[RawFrame] = []
    for i in range(len(stream)):  # one byte at a time
        got += frames_of(parser.feed(stream[i : i + 1]))
    assert [f.data for f in got] == frames
    assert [f.data for f in frames_of(FrameParser().feed(stream))] == frames
    assert parser.buffered == 0


def test_junk_before_prefix_is_skipped() -> None:
    stream, frames = sample_stream()
    parser = FrameParser()
    items = parser.feed(b"\x00\x00garbage\x00\x00\x55" + stream)
    assert [f.data for f in frames_of(items)] == frames
    assert parser.skipped_bytes == 12


def test_absurd_length_is_reported_and_stream_resyncs() -> None:
    stream, frames = sample_stream()
    bogus = bytes.fromhex("000055aa00000001000000070fffffff")
    items = FrameParser().feed(bogus + stream)
    assert isinstance(items[0], TuyaFrameError)
    assert "length" in str(items[0])
    assert [f.data for f in frames_of(items)] == frames


def test_bad_suffix_is_reported() -> None:
    _, frames = sample_stream()
    broken = frames[0][:-4] + b"\xde\xad\xbe\xef"
    items = FrameParser().feed(broken + frames[1])
    assert isinstance(items[0], TuyaFrameError)
    assert frames_of(items)[-1].data == frames[1]


def test_bad_crc_is_rejected_by_the_codec() -> None:
    _, frames = sample_stream()
    tampered = bytearray(frames[0])
    tampered[25] ^= 0x01
    (frame,) = frames_of(FrameParser().feed(bytes(tampered)))
    with pytest.raises(TuyaFrameError, match="CRC"):
        MessageCodec("3.3", KEY).decode(frame)


@pytest.mark.parametrize("version", ["3.4", "3.5"])
def test_tampered_frames_are_rejected(version: str) -> None:
    device = DeviceCodec(version, KEY)
    frame_bytes = bytearray(device.encode(7, Command.STATUS, b'{"dps":{"1":true}}'))
    frame_bytes[-10] ^= 0x80
    (frame,) = frames_of(FrameParser().feed(bytes(frame_bytes)))
    with pytest.raises(TuyaFrameError):
        MessageCodec(version, KEY).decode(frame)


def test_wrong_key_fails_decryption() -> None:
    device = DeviceCodec("3.3", KEY)
    (frame,) = frames_of(FrameParser().feed(device.encode(1, 10, b'{"dps":{"1":true}}')))
    with pytest.raises(TuyaProtocolError):
        MessageCodec("3.3", b"x" * 16).decode(frame)


def test_frame_kind_must_match_version() -> None:
    (frame,) = frames_of(FrameParser().feed(DeviceCodec("3.5", KEY).encode(1, 8, b"{}")))
    with pytest.raises(TuyaFrameError, match="kind"):
        MessageCodec("3.3", KEY).decode(frame)


def test_crypto_rejects_bad_blocks() -> None:
    with pytest.raises(TuyaProtocolError):
        ecb_decrypt(KEY, b"short")
    with pytest.raises(TuyaProtocolError):
        pkcs7_unpad(b"\x00" * 16)


def test_codec_validates_arguments() -> None:
    with pytest.raises(ValueError, match="version"):
        MessageCodec("4.0", KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        MessageCodec("3.3", b"short")


def test_message_json_errors() -> None:
    codec = DeviceCodec("3.3", KEY)
    items = FrameParser().feed(codec.encode(1, 10, b"data format error", retcode=1))
    msg = MessageCodec("3.3", KEY).decode(frames_of(items)[0])
    assert msg.retcode == 1
    with pytest.raises(TuyaProtocolError, match="not JSON"):
        msg.json()
    items = FrameParser().feed(codec.encode(2, 10, b"[1, 2]"))
    with pytest.raises(TuyaProtocolError, match="object"):
        MessageCodec("3.3", KEY).decode(frames_of(items)[0]).json()


def test_extract_dps_shapes() -> None:
    assert extract_dps({"dps": {"1": True}}) == {"1": True}
    assert extract_dps({"protocol": 4, "data": {"dps": {20: 2300}}}) == {"20": 2300}
    assert extract_dps({"data": "nope"}) == {}


def test_v31_plaintext_and_signed_payloads() -> None:
    device = DeviceCodec("3.1", KEY)
    client = MessageCodec("3.1", KEY)
    for cmd, body in ((10, b'{"dps":{"1":true}}'), (8, b'{"dps":{"1":false}}')):
        (frame,) = frames_of(FrameParser().feed(device.encode(1, cmd, body)))
        assert client.decode(frame).payload == body
    (frame,) = frames_of(FrameParser().feed(client.encode(3, 7, b'{"dps":{"1":true}}')))
    assert json.loads(device.decode(frame).payload)["dps"] == {"1": True}
    forged = pack_55aa(4, 7, b"3.1" + b"0" * 16 + b"AAAA")
    (frame,) = frames_of(FrameParser().feed(forged))
    with pytest.raises(SimProtocolError, match="signature"):
        device.decode(frame)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3 * MAX_FRAME_LENGTH), st.integers(min_value=1, max_value=64))
def test_parser_never_raises_and_stays_bounded(data: bytes, chunk: int) -> None:
    parser = FrameParser()
    for i in range(0, len(data), chunk):
        for item in parser.feed(data[i : i + chunk]):
            assert isinstance(item, RawFrame | TuyaFrameError)
        assert parser.buffered <= MAX_FRAME_LENGTH + 32


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_split_of_a_valid_stream_gives_the_same_frames(data: st.DataObject) -> None:
    stream, frames = sample_stream()
    cuts = sorted(data.draw(st.sets(st.integers(min_value=1, max_value=len(stream) - 1))))
    parser = FrameParser()
    got: list[RawFrame] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        got += frames_of(parser.feed(stream[start:cut]))
        start = cut
    assert [f.data for f in got] == frames


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_decoding_garbage_frames_raises_only_protocol_errors(body: bytes) -> None:
    for version in ("3.1", "3.3", "3.4"):
        frame = RawFrame(False, 1, 8, pack_55aa(1, 8, body))
        try:
            msg = MessageCodec(version, KEY).decode(frame)
        except TuyaProtocolError as err:
            assert str(err)  # noqa: PT017 - a clear message, never another exception type
        else:
            assert msg.cmd == 8
