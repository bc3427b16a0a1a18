# Firmware Tuya codec against the shared test vectors (tests/vectors/, copied from the project's
# shared vectors; sources are named inside each file).
import crc32soft
import plug
import tuya
from testutil import eq, h, load_vectors, raises

SYN = load_vectors("synthetic_tinytuya_generated.json")
KEY = SYN["local_key_ascii"].encode()
DEV = SYN["dev_id"]
T = 1700000000


def _vec(name_start):
    for v in SYN["vectors"]:
        if v["name"].startswith(name_start):
            return v
    raise KeyError(name_start)


def _parse_all(frame, mac_key=None):
    buf = bytearray(frame)
    out = []
    n = len(buf)
    while n:
        fr, used = tuya.parse_55aa(buf, n, mac_key)
        if used:
            buf[0 : n - used] = buf[used:n]
            n -= used
        if fr is None:
            break
        if fr not in (tuya.BAD_FRAME, tuya.BAD_AUTH):
            out.append(fr)
    return out


def test_crc32_soft_matches():
    for data in (b"", b"a", b"123456789", bytes(range(256))):
        eq(crc32soft.crc32(data), tuya.crc32(data), "crc")
    eq(crc32soft.crc32(b"123456789"), 0xCBF43926, "check value")


def test_33_client_frames_match_tinytuya():
    c = plug.make_codec("3.3", DEV, KEY)
    eq(c.encode(1, tuya.DP_QUERY, c.query_json(T)).hex(), _vec("3.3 DP_QUERY")["frame_hex"])
    eq(
        c.encode(2, tuya.CONTROL, c.control_json({"1": True}, T)).hex(),
        _vec("3.3 CONTROL")["frame_hex"],
    )
    eq(c.encode(3, tuya.HEART_BEAT, c.heartbeat_json()).hex(), _vec("3.3 HEART_BEAT")["frame_hex"])
    eq(c.encode(4, tuya.UPDATEDPS, c.refresh_json()).hex(), _vec("3.3 UPDATEDPS")["frame_hex"])


def test_31_client_frames_match_tinytuya():
    c = plug.make_codec("3.1", DEV, KEY)
    eq(c.encode(1, tuya.DP_QUERY, c.query_json(T)).hex(), _vec("3.1 DP_QUERY")["frame_hex"])
    eq(
        c.encode(2, tuya.CONTROL, c.control_json({"1": True}, T)).hex(),
        _vec("3.1 CONTROL")["frame_hex"],
    )
    eq(c.encode(3, tuya.HEART_BEAT, c.heartbeat_json()).hex(), _vec("3.1 HEART_BEAT")["frame_hex"])


def test_31_device_payload_tuyapi():
    v = load_vectors("tuyapi_test_cipher_v31.json")
    c = plug.make_codec("3.1", "x", v["local_key_ascii"].encode())
    obj, _ = c.decode(v["vectors"][0]["payload_ascii"].encode())
    eq(obj["dps"], {"1": False, "2": 0})
    eq(obj["devId"], "002004265ccf7fb1b659")
    obj, text = c.decode(v["vectors"][1]["payload_ascii"].encode())
    eq(obj, None)
    eq(text, b"gw id invalid")


def test_33_device_frames():
    c = plug.make_codec("3.3", DEV, KEY)
    for name, want in (
        ("3.3 device DP_QUERY response", {"1": True, "18": 0, "19": 0, "20": 2305}),
        ("3.3 device STATUS push", {"1": False}),
    ):
        v = _vec(name)
        frames = _parse_all(h(v["frame_hex"]))
        eq(len(frames), 1)
        seq, cmd, ret, payload = frames[0]
        eq((seq, cmd, ret), (v["seqno"], v["cmd"], v["retcode"]))
        obj, _ = c.decode(payload)
        eq(obj["dps"], want, name)
    seq, cmd, ret, payload = _parse_all(h(_vec("3.3 device CONTROL ack")["frame_hex"]))[0]
    eq((cmd, ret, payload), (tuya.CONTROL, 0, b""))


def test_stream_garbage_split_and_bad_crc():
    v = h(_vec("3.3 device STATUS push")["frame_hex"])
    ack = h(_vec("3.3 device CONTROL ack")["frame_hex"])
    stream = b"\x01\x02\x00\x00" + v + ack
    buf = bytearray(2048)
    n = 0
    got = []
    for i in range(0, len(stream), 7):  # feed 7 bytes at a time
        chunk = stream[i : i + 7]
        buf[n : n + len(chunk)] = chunk
        n += len(chunk)
        while True:
            fr, used = tuya.parse_55aa(buf, n)
            if used:
                buf[0 : n - used] = buf[used:n]
                n -= used
            if fr is None:
                break
            got.append(fr if fr == tuya.BAD_FRAME else fr[1])
    eq(got, [tuya.STATUS, tuya.CONTROL])
    # a bad CRC: the whole frame is skipped (reported, not raised) and the next one is parsed
    bad = bytearray(ack)
    bad[-6] ^= 1
    eq(tuya.parse_55aa(bad, len(bad)), (tuya.BAD_FRAME, len(bad)))
    two = bytearray(bad + ack)
    eq(_parse_all(bytes(two))[0][1], tuya.CONTROL)
    # an absurd length or a bad suffix: one byte is skipped, the parser resynchronises on the
    # next prefix
    big = bytearray(h("000055aa00000000000000080000ffff"))
    eq(tuya.parse_55aa(big, len(big)), (tuya.BAD_FRAME, 1))
    nosuf = bytearray(ack)
    nosuf[-1] ^= 1
    eq(tuya.parse_55aa(nosuf, len(nosuf)), (tuya.BAD_FRAME, 1))
    eq([f[1] for f in _parse_all(bytes(big) + bytes(nosuf) + v)], [tuya.STATUS])


def test_rust_tuyapi_error_reply():
    v = load_vectors("rust-tuyapi_mesparse.json")["vectors"]
    import hashlib

    c = plug.make_codec("3.3", "x", hashlib.md5(b"yGAdlopoPVldABfn").digest())
    _seq, _cmd, ret, payload = _parse_all(h(v[2]["frame_hex"]))[0]
    eq(ret, 1)
    obj, text = c.decode(payload)
    eq(obj, None)
    eq(text, b"data format error")
    # second frame of the pair has a copied (wrong) CRC: strict parsers reject it
    buf = bytearray(h(v[3]["frame_hex"]))
    fr, used = tuya.parse_55aa(buf, len(buf))
    eq(fr[1], 9)
    buf2 = bytearray(buf[used:])
    eq(tuya.parse_55aa(buf2, len(buf2)), (tuya.BAD_FRAME, len(buf2)))


def test_34_session_and_frames():
    neg = _vec("3.4 session negotiation")
    c = plug.make_codec("3.4", DEV, KEY)
    start = c.neg_start(1, h(neg["client_nonce_hex"]))
    eq(start.hex(), neg["frames"][0]["frame_hex"])
    resp = _parse_all(h(neg["frames"][1]["frame_hex"]), c.mac_key)[0]
    eq(resp[1], tuya.SESS_KEY_NEG_RESP)
    fin = c.neg_finish(2, resp[3])
    eq(fin.hex(), neg["frames"][2]["frame_hex"])
    eq(c.key.hex(), neg["session_key_hex"])
    eq(c.encode(3, c.query_cmd, c.query_json(T)).hex(), _vec("3.4 status query")["frame_hex"])
    eq(
        c.encode(4, c.control_cmd, c.control_json({"1": True}, T)).hex(),
        _vec("3.4 set dp1=true")["frame_hex"],
    )
    eq(c.encode(5, tuya.HEART_BEAT, c.heartbeat_json()).hex(), _vec("3.4 HEART_BEAT")["frame_hex"])
    push = _vec("3.4 device STATUS push")
    seq, cmd, ret, payload = _parse_all(h(push["frame_hex"]), c.mac_key)[0]
    eq((seq, cmd, ret), (push["seqno"], 8, 0))
    obj, _ = c.decode(payload)
    eq(obj["dps"], {"1": True})


def test_34_openhab_start_and_wrong_key():
    v = load_vectors("openhab_smarthomej_v34_session.json")
    key = v["local_key_ascii"].encode()
    c = plug.make_codec("3.4", "x", key)
    st = v["vectors"][0]
    eq(c.neg_start(st["seq"], h(st["client_nonce_hex"])).hex(), st["frame_hex"])
    # The RESP in this file answers another nonce: its device proof must be refused.
    resp = _parse_all(h(v["vectors"][1]["frame_hex"]), c.mac_key)[0]
    raises(tuya.FrameError, c.neg_finish, 2, resp[3])


def test_33_ciphertext_starting_with_brace_or_version():
    # About 1 payload in 256 encrypts to a ciphertext whose first byte is "{": it must still be
    # decrypted, not taken for clear JSON.
    c = plug.make_codec("3.3", DEV, KEY)
    for t in range(T, T + 5000):
        raw = ('{"t":' + str(t) + ',"dps":{"1":true}}').encode()  # t in the 1st ECB block
        ct = tuya.ecb_encrypt(KEY, tuya.pad(raw))
        if ct[:1] == b"{":
            break
    else:
        raise AssertionError("no ciphertext starting with '{' found")
    obj, _ = c.decode(ct)
    eq(obj["t"], t)
    obj, _ = c.decode(b"3.3" + bytes(12) + ct)  # with the clear source header
    eq(obj["t"], t)
    obj, _ = c.decode(b'{"dps":{"1":false}}')  # clear JSON (not a block multiple)
    eq(obj["dps"], {"1": False})


def test_35_session_and_frames():
    neg = _vec("3.5 session negotiation")
    c = plug.make_codec("3.5", DEV, KEY)
    fr = [h(f["frame_hex"]) for f in neg["frames"]]
    eq(
        c.neg_start(1, h(neg["client_nonce_hex"]), fr[0][18:30]).hex(),
        neg["frames"][0]["frame_hex"],
    )
    buf = bytearray(fr[1])
    resp, used = c.parse(buf, len(buf))
    eq((resp[1], resp[2], used), (tuya.SESS_KEY_NEG_RESP, 0, len(buf)))
    eq(c.neg_finish(2, resp[3], fr[2][18:30]).hex(), neg["frames"][2]["frame_hex"])
    eq(c.key.hex(), neg["session_key_hex"])
    for name, seq, cmd, text in (
        ("3.5 status query", 3, c.query_cmd, c.query_json(T)),
        ("3.5 set dp1=true", 4, c.control_cmd, c.control_json({"1": True}, T)),
        ("3.5 HEART_BEAT", 5, tuya.HEART_BEAT, c.heartbeat_json()),
    ):
        want = _vec(name)["frame_hex"]
        eq(c.encode(seq, cmd, text, h(want)[18:30]).hex(), want, name)
    push = _vec("3.5 device STATUS push")
    buf = bytearray(h(push["frame_hex"]))
    (seq, cmd, ret, payload), _ = c.parse(buf, len(buf))
    eq((seq, cmd, ret), (push["seqno"], 8, 0))
    obj, _ = c.decode(payload)
    eq(obj["dps"], {"1": True})
    eq(bytes(buf[34 : 34 + len(payload)]), payload)  # decrypted in place (after the retcode)
    buf = bytearray(h(push["frame_hex"]))
    buf[40] ^= 1  # tampered ciphertext: tag check fails, frame skipped, buffer left as it was
    eq(c.parse(buf, len(buf)), (tuya.BAD_AUTH, len(buf)))
    buf[40] ^= 1
    eq(bytes(buf), h(push["frame_hex"]))
    frame = h(push["frame_hex"])  # an immutable buffer is not decrypted in place
    eq(c.parse(frame, len(frame))[0][3], payload)
    eq(frame, h(push["frame_hex"]))


def test_33_device22_query_matches_tinytuya():
    c = plug.make_codec("3.3", DEV, KEY)
    c.set_device22(["2", "1"])
    v = _vec("3.3 device22 status query")
    eq(c.query_cmd, tuya.CONTROL_NEW)
    eq(c.encode(1, c.query_cmd, c.query_json(T)).hex(), v["frame_hex"])


def test_wrong_key_fails_verification_or_decryption():
    # 3.3: the CRC holds (it does not involve the key), the payload does not decrypt: strict
    # PKCS7 padding refuses it
    v = _vec("3.3 device STATUS push")
    fr = _parse_all(h(v["frame_hex"]))[0]
    raises(tuya.FrameError, plug.make_codec("3.3", DEV, b"wrongwrongwrong!").decode, fr[3])
    eq(plug.make_codec("3.3", DEV, KEY).decode(fr[3])[0]["dps"], {"1": False})
    # 3.4: the HMAC is keyed: the frame is skipped as BAD_AUTH
    from hmacsha import HmacKey

    buf = bytearray(h(_vec("3.4 device STATUS push")["frame_hex"]))
    eq(tuya.parse_55aa(buf, len(buf), HmacKey(b"wrongwrongwrong!")), (tuya.BAD_AUTH, len(buf)))
    raises(tuya.FrameError, tuya.unpad, b"abcdefghijklmn\x01\x02")
    eq(tuya.unpad(b"abcdefghijklmn\x02\x02"), b"abcdefghijklmn")
