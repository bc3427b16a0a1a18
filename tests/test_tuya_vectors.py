"""The codec against the published and synthetic vectors in tests/vectors/."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from custom_components.tuya_local_esp.tuya import crypto
from custom_components.tuya_local_esp.tuya.errors import TuyaFrameError, TuyaKeyError
from custom_components.tuya_local_esp.tuya.frame import FrameParser, RawFrame, crc32
from custom_components.tuya_local_esp.tuya.message import MessageCodec
from custom_components.tuya_local_esp.tuya.payload import extract_dps
from custom_components.tuya_local_esp.tuya.session import ClientNegotiation, derive_session_key
from tuya_sim.codec import DeviceCodec, DeviceHandshake

from .conftest import load_vectors

SYNTH = load_vectors("synthetic_tinytuya_generated.json")
KEY = SYNTH["local_key_ascii"].encode()


def one_frame(hexstr: str) -> RawFrame:
    items = FrameParser().feed(bytes.fromhex(hexstr))
    assert len(items) == 1
    frame = items[0]
    assert isinstance(frame, RawFrame)
    return frame


def frame_vectors(direction: str) -> list[dict[str, Any]]:
    return [
        v
        for v in SYNTH["vectors"]
        if v.get("direction") == direction and "frame_hex" in v and "version" in v
    ]


@pytest.mark.parametrize("vec", frame_vectors("client->device"), ids=lambda v: v["name"])
def test_client_frames_encode_byte_exact(vec: dict[str, Any]) -> None:
    """Our client encoder reproduces tinytuya's frames byte for byte."""
    raw = bytes.fromhex(vec["frame_hex"])
    iv = raw[18:30]
    codec = MessageCodec(vec["version"], KEY, iv_factory=lambda: iv)
    codec.session_key = bytes.fromhex(vec["frame_key_hex"])
    ours = codec.encode(int(vec["seqno"]), int(vec["cmd"]), vec["payload_plaintext"].encode())
    assert ours.hex() == vec["frame_hex"]


@pytest.mark.parametrize("vec", frame_vectors("client->device"), ids=lambda v: v["name"])
def test_client_frames_decode_as_device(vec: dict[str, Any]) -> None:
    """The device side (simulator) decodes every client frame to the documented plaintext."""
    codec = DeviceCodec(vec["version"], KEY)
    codec.session_key = bytes.fromhex(vec["frame_key_hex"])
    msg = codec.decode(one_frame(vec["frame_hex"]))
    assert msg.cmd == int(vec["cmd"])
    assert msg.seqno == int(vec["seqno"])
    assert msg.payload == vec["payload_plaintext"].encode()


@pytest.mark.parametrize("vec", frame_vectors("device->client"), ids=lambda v: v["name"])
def test_device_frames_decode(vec: dict[str, Any]) -> None:
    codec = MessageCodec(vec["version"], KEY)
    codec.session_key = bytes.fromhex(vec["frame_key_hex"])
    msg = codec.decode(one_frame(vec["frame_hex"]))
    assert msg.retcode == int(vec["retcode"])
    assert msg.cmd == int(vec["cmd"])
    assert msg.payload == vec["payload_plaintext"].encode()


def _device_header(vec: dict[str, Any]) -> bytes | None:
    """The 15-byte header slot of a device frame vector (clear, or inside the encryption)."""
    raw = bytes.fromhex(vec["frame_hex"])
    key = bytes.fromhex(vec["frame_key_hex"])
    if vec["version"] == "3.5":
        plain = crypto.gcm_decrypt(key, raw[18:30], raw[30:-4], raw[4:18])[4:]
    elif vec["version"] == "3.4":
        plain = crypto.ecb_decrypt(key, raw[20:-36])
    else:
        plain = raw[20:-8]
    return plain[:15] if plain[:2] == b"3." else None


@pytest.mark.parametrize("vec", frame_vectors("device->client"), ids=lambda v: v["name"])
def test_simulator_encodes_device_frames_byte_exact(vec: dict[str, Any]) -> None:
    """The simulator's independent device codec reproduces tinytuya's device frames exactly."""
    raw = bytes.fromhex(vec["frame_hex"])
    codec = DeviceCodec(vec["version"], KEY, nonce_factory=lambda: raw[18:30])
    codec.session_key = bytes.fromhex(vec["frame_key_hex"])
    ours = codec.encode(
        int(vec["seqno"]),
        int(vec["cmd"]),
        vec["payload_plaintext"].encode(),
        retcode=int(vec["retcode"]),
        header=_device_header(vec),
    )
    assert ours.hex() == vec["frame_hex"]


@pytest.mark.parametrize("name", ["3.4 session negotiation", "3.5 session negotiation"])
def test_session_negotiation_vectors(name: str) -> None:
    vec = next(v for v in SYNTH["vectors"] if v["name"] == name)
    version = vec["version"]
    cnonce = bytes.fromhex(vec["client_nonce_hex"])
    dnonce = bytes.fromhex(vec["device_nonce_hex"])
    start_hex, resp_hex, finish_hex = (f["frame_hex"] for f in vec["frames"])
    start_frame = one_frame(start_hex)
    iv = start_frame.data[18:30]
    client = MessageCodec(version, KEY, iv_factory=lambda: iv)
    neg = ClientNegotiation(version, KEY, cnonce)
    if version == "3.4":
        assert client.encode(1, 3, neg.start_payload).hex() == start_hex
    resp = client.decode(one_frame(resp_hex))
    assert resp.retcode == 0
    finish_payload = neg.handle_response(resp.payload)
    assert finish_payload.hex() == vec["hmac_device_nonce_hex"]
    assert neg.session_key is not None
    assert neg.session_key.hex() == vec["session_key_hex"]
    finish_frame = one_frame(finish_hex)
    if version == "3.4":
        assert client.encode(2, 5, finish_payload).hex() == finish_hex
    # the device side agrees on everything
    device = DeviceCodec(version, KEY)
    dneg = DeviceHandshake(version, KEY, dnonce)
    assert device.decode(start_frame).payload == cnonce
    assert dneg.handle_start(cnonce)[16:].hex() == vec["hmac_client_nonce_hex"]
    assert dneg.handle_finish(device.decode(finish_frame).payload) == neg.session_key


def test_session_negotiation_rejects_wrong_key() -> None:
    neg = ClientNegotiation("3.4", KEY)
    dneg = DeviceHandshake("3.4", b"x" * 16)
    with pytest.raises(TuyaKeyError):
        neg.handle_response(dneg.handle_start(neg.start_payload))


def test_openhab_v34_vectors() -> None:
    data = load_vectors("openhab_smarthomej_v34_session.json")
    key = data["local_key_ascii"].encode()
    by_name = {v["name"].split(" (")[0]: v for v in data["vectors"]}
    start = next(v for k, v in by_name.items() if "START" in k)
    codec = MessageCodec("3.4", key)
    assert (
        codec.encode(start["seq"], 3, bytes.fromhex(start["client_nonce_hex"])).hex()
        == start["frame_hex"]
    )
    resp = next(v for k, v in by_name.items() if "RESP" in k)
    msg = codec.decode(one_frame(resp["frame_hex"]))
    assert msg.seqno == resp["seq"]
    assert msg.payload.hex() == resp["decrypted_payload_hex"]
    for v in data["vectors"]:
        if "session_key_hex" in v and "client_nonce_hex" in v and "device_nonce_hex" in v:
            got = derive_session_key(
                "3.4",
                key,
                bytes.fromhex(v["client_nonce_hex"]),
                bytes.fromhex(v["device_nonce_hex"]),
            )
            assert got.hex() == v["session_key_hex"]


def test_tuyapi_v31_payload_vectors() -> None:
    data = load_vectors("tuyapi_test_cipher_v31.json")
    key = data["local_key_ascii"].encode()
    v1, v2, v3 = data["vectors"]
    b64 = v1["base64_ciphertext"].encode()
    assert crypto.v31_signature(b64, key).decode() == v1["md5_sig_recomputed"]
    assert crypto.ecb_decrypt(key, base64.b64decode(b64)).decode() == v1["decrypted_json"]
    assert crypto.ecb_encrypt(key, v3["plaintext"].encode()).hex() == v3["ciphertext_hex"]
    raw = base64.b64decode(v2["payload_ascii"][19:])
    assert crypto.ecb_decrypt(key, raw).decode() == v2["decrypted"]
    assert (
        crypto.v31_signature(v2["payload_ascii"][19:].encode(), key).decode()
        == (v2["md5_sig_recomputed"])
    )


def test_rust_tuyapi_frames() -> None:
    data = load_vectors("rust-tuyapi_mesparse.json")
    key = bytes.fromhex("6c1ec8e2bb9bb59ab50b0daf649b410a")
    codec = MessageCodec("3.3", key)
    for vec in data["vectors"]:
        items = FrameParser().feed(bytes.fromhex(vec["frame_hex"]))
        if "decrypted" in vec:
            msg = codec.decode(items[0])  # type: ignore[arg-type]
            assert msg.retcode == vec["retcode"]
            assert msg.payload.decode() == vec["decrypted"]
        elif "length" in vec and vec.get("crc_ok"):
            msg = codec.decode(items[0])  # type: ignore[arg-type]
            assert (msg.seqno, msg.cmd, msg.retcode, msg.payload) == (
                vec["seq"],
                vec["cmd"],
                vec["retcode"],
                b"",
            )
        elif "two concatenated" in vec["name"]:
            assert len(items) == 2
            assert codec.decode(items[0]).cmd == 9  # type: ignore[arg-type]
            with pytest.raises(TuyaFrameError, match="CRC"):
                codec.decode(items[1])  # type: ignore[arg-type]


def test_real_captures_framing() -> None:
    """Real 3.3 STATUS pushes: structure, length and CRC verify; the key is unknown."""
    data = load_vectors("real_captures_no_key_weather-or-not.json")
    parser = FrameParser()
    stream = b"".join(bytes.fromhex(v["frame_hex"]) for v in data["vectors"])
    items = parser.feed(stream)
    frames = [i for i in items if isinstance(i, RawFrame)]
    assert len(frames) >= len(data["vectors"]) - 1
    for vec in data["vectors"]:
        if not vec.get("crc_ok") or not vec.get("length_consistent", True):
            continue
        frame = one_frame(vec["frame_hex"])
        assert frame.cmd == vec["cmd"]
        assert len(frame.data) == vec["frame_len"]
        body_end = len(frame.data) - 8  # CRC32 covers everything before CRC and suffix
        assert crc32(frame.data[:body_end]) == int.from_bytes(frame.data[body_end:-4], "big")


def test_misc_real_v34_handshake_frames() -> None:
    """Real 3.4 START/RESP captures (keys unpublished): framing, lengths and the PKCS#7 block."""
    data = load_vectors("misc_examples_and_partial_captures.json")
    pairs = [e for e in data["entries"] if "start_frame_hex" in e and "resp_frame_hex" in e]
    assert len(pairs) >= 2
    for entry in pairs:
        start = one_frame(entry["start_frame_hex"])
        resp = one_frame(entry["resp_frame_hex"])
        assert (start.cmd, start.seqno, len(start.data)) == (3, 1, 16 + 0x44)
        assert resp.cmd == 4
        assert len(resp.data) == 16 + 0x68
        assert resp.data[16:20] == bytes(4)  # retcode 0 in clear, before the ciphertext
        assert resp.seqno != start.seqno  # the device's own counter (spec §2.7)
        # a 16-byte nonce gets a whole PKCS#7 block: ECB(key, 16 x 0x10) ends both ciphertexts
        start_ct = start.data[16 : 16 + 32]
        resp_ct = resp.data[20 : 20 + 64]
        assert start_ct[16:] == resp_ct[48:]


def test_misc_v35_reply_shapes() -> None:
    """DP_QUERY_NEW replies and 3.4 pushes nest the DPS in ``data`` (spec §2.9)."""
    data = load_vectors("misc_examples_and_partial_captures.json")
    fake = next(e for e in data["entries"] if "dp_query_new_reply_json" in e)
    reply = fake["dp_query_new_reply_json"]
    assert extract_dps(reply) == reply["data"]["dps"]
    assert extract_dps(reply)["20"] is True
