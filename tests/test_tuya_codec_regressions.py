"""Regression tests for the payload decoder (found while validating the simulator).

Under AES-ECB the first ciphertext block depends only on the first 16 plaintext bytes, which for a
device's replies (``{"devId":"bf01...``) are the same every time. For about one (device id, local
key) pair in 256 that block starts with ``{`` (0x7b), and the decoder used to return such
ciphertext as if it were a plaintext reply: every DP_QUERY answer and STATUS push of that device
was unreadable. The key below is such a case for the device id below (found by search).
"""

from __future__ import annotations

import pytest

from custom_components.tuya_local_esp.tuya.const import Command
from custom_components.tuya_local_esp.tuya.crypto import ecb_encrypt
from custom_components.tuya_local_esp.tuya.frame import FrameParser, RawFrame, pack_55aa
from custom_components.tuya_local_esp.tuya.message import MessageCodec, version_header
from custom_components.tuya_local_esp.tuya.payload import dumps
from custom_components.tuya_local_esp.tuya.session import ClientNegotiation
from tuya_sim.codec import DeviceCodec, DeviceHandshake, SimProtocolError

DEVICE_ID = "bf0123456789abcdefgh"
UNLUCKY_KEY = b"0000000000000316"
REPLY = dumps({"devId": DEVICE_ID, "dps": {"1": True}})


def one_frame(data: bytes) -> RawFrame:
    items = FrameParser().feed(data)
    assert len(items) == 1
    assert isinstance(items[0], RawFrame)
    return items[0]


def test_the_key_really_is_unlucky() -> None:
    assert ecb_encrypt(UNLUCKY_KEY, REPLY)[:1] == b"{"


@pytest.mark.parametrize("version", ["3.2", "3.3"])
@pytest.mark.parametrize("cmd", [Command.DP_QUERY, Command.STATUS, Command.CONTROL])
def test_ciphertext_starting_with_brace_is_decrypted(version: str, cmd: int) -> None:
    device = DeviceCodec(version, UNLUCKY_KEY)
    client = MessageCodec(version, UNLUCKY_KEY)
    msg = client.decode(one_frame(device.encode(7, cmd, REPLY)))
    assert msg.payload == REPLY
    assert msg.json()["dps"] == {"1": True}


def test_device_decodes_client_frames_with_unlucky_key() -> None:
    request = dumps({"devId": DEVICE_ID, "dps": {"1": True}})
    client = MessageCodec("3.3", UNLUCKY_KEY)
    device = DeviceCodec("3.3", UNLUCKY_KEY)
    for cmd in (Command.DP_QUERY, Command.CONTROL):
        assert device.decode(one_frame(client.encode(1, cmd, request))).payload == request


def test_plaintext_replies_still_accepted_by_the_client_only() -> None:
    """Plaintext JSON from a device (with or without the clear header) is still understood."""
    client = MessageCodec("3.3", UNLUCKY_KEY)
    device = DeviceCodec("3.3", UNLUCKY_KEY)
    for body in (REPLY, version_header("3.3") + REPLY):
        frame = one_frame(pack_55aa(3, Command.STATUS, body, retcode=0))
        assert client.decode(frame).payload == REPLY
    # a device (the simulator) never accepts unencrypted JSON from a 3.3 client
    with pytest.raises(SimProtocolError):
        device.decode(one_frame(pack_55aa(3, Command.CONTROL, version_header("3.3") + REPLY)))


@pytest.mark.parametrize("version", ["3.4", "3.5"])
def test_negotiation_nonce_starting_like_a_header_is_kept(version: str) -> None:
    """A random client nonce (or HMAC) beginning with b"3." is not a version header.

    The decoder used to strip 15 bytes from it, failing one handshake in 65536.
    """
    key = b"0123456789abcdef"
    client = MessageCodec(version, key)
    device = DeviceCodec(version, key)
    client_neg = ClientNegotiation(version, key, client_nonce=b"3.4" + bytes(13))
    device_neg = DeviceHandshake(version, key)
    start = device.decode(
        one_frame(client.encode(1, Command.SESS_KEY_NEG_START, client_neg.start_payload))
    )
    assert start.payload == client_neg.start_payload
    resp = client.decode(
        one_frame(
            device.encode(9, Command.SESS_KEY_NEG_RESP, device_neg.handle_start(start.payload))
        )
    )
    finish = client_neg.handle_response(resp.payload)
    got = device.decode(one_frame(client.encode(2, Command.SESS_KEY_NEG_FINISH, finish)))
    assert device_neg.handle_finish(got.payload) == client_neg.session_key
