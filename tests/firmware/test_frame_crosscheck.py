"""The firmware's Tuya frames decode with the integration's codec and with tinytuya.

The firmware (esp32/tuya*.py) is its own implementation of the Tuya exchange; here its client
frames, built under the real MicroPython interpreter, are decoded by two other implementations.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import tinytuya

from custom_components.tuya_local_esp.tuya import FrameParser, RawFrame
from tuya_sim.codec import DeviceCodec

from .conftest import ESP32, MICROPYTHON, ROOT

KEY = b"0123456789abcdef"
SESSION = bytes(range(16))


def firmware_frames() -> list[dict[str, Any]]:
    res = subprocess.run(
        [MICROPYTHON, str(ROOT / "tests/firmware/mp/emit_frames.py"), str(ESP32)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [json.loads(line) for line in res.stdout.splitlines()]


FRAMES = firmware_frames()


@pytest.mark.parametrize("item", FRAMES, ids=lambda i: f"{i['version']}-cmd{i['cmd']}")
def test_firmware_frame_decodes_with_the_integration_codec(item: dict[str, Any]) -> None:
    codec = DeviceCodec(item["version"], KEY)
    if item["version"] in ("3.4", "3.5"):
        codec.session_key = SESSION
    (frame,) = FrameParser().feed(bytes.fromhex(item["frame"]))
    assert isinstance(frame, RawFrame)
    msg = codec.decode(frame)
    assert (msg.seqno, msg.cmd) == (item["seqno"], item["cmd"])
    assert msg.payload.decode() == item["text"]


def _tinytuya_plaintext(version: str, data: bytes) -> bytes:
    key = SESSION if version in ("3.4", "3.5") else None
    msg = tinytuya.unpack_message(data, hmac_key=key, no_retcode=True)
    assert msg.crc_good
    payload: bytes = msg.payload
    if version == "3.1":
        if payload[:3] == b"3.1":  # CONTROL: "3.1" + md5 signature + base64 (spec §2.2)
            return tinytuya.AESCipher(KEY).decrypt(payload[19:], decode_text=False)
        return payload
    if version == "3.3":
        if payload[:3] == b"3.3":
            payload = payload[15:]
        return tinytuya.AESCipher(KEY).decrypt(payload, use_base64=False, decode_text=False)
    if version == "3.4":
        payload = tinytuya.AESCipher(SESSION).decrypt(payload, use_base64=False, decode_text=False)
    return payload[15:] if payload[:3] == version.encode() else payload


@pytest.mark.parametrize("item", FRAMES, ids=lambda i: f"{i['version']}-cmd{i['cmd']}")
def test_firmware_frame_decodes_with_tinytuya(item: dict[str, Any]) -> None:
    plain = _tinytuya_plaintext(item["version"], bytes.fromhex(item["frame"]))
    assert plain.decode() == item["text"]
