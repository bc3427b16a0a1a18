# Firmware side of the hub channel against the worked example of docs/hub-protocol.md
# (tests/vectors/hub_channel_v1.json, produced by the HA-side library).
import hubauth
import hubproto
from testutil import eq, h, load_vectors, raises

V = load_vectors("hub_channel_v1.json")


def _server():
    hs = hubauth.ServerHandshake(V["secret_ascii"].encode(), V["hub_id"])
    body = h(V["client_hello_record"])[2:]
    eq(hs.server_hello(body, h(V["nonce_s"])), h(V["server_hello_record"])[2:], "server hello")
    eq(hs.rejected, False)
    return hs.finish(h(V["client_proof_record"])[2:])


def test_handshake_and_records():
    ch = _server()
    ping = V["c2s_seq0_ping"]
    eq(ch.open(h(ping["record"])[2:]), {"t": "ping", "rid": 1})
    res = V["s2c_seq0_result"]
    eq(bytes(ch.seal(res["message"], h(res["iv"]))).hex(), res["record"], "sealed result")


def test_wrong_client_proof():
    hs = hubauth.ServerHandshake(V["secret_ascii"].encode(), V["hub_id"])
    hs.server_hello(h(V["client_hello_record"])[2:])
    bad = bytearray(h(V["client_proof_record"])[2:])
    bad[0] ^= 1
    raises(hubproto.ProtoError, hs.finish, bytes(bad))


def test_version_reject():
    hs = hubauth.ServerHandshake(b"x" * 16, "hub")
    body = bytearray(h(V["client_hello_record"])[2:])
    body[4] = 2
    eq(hs.server_hello(bytes(body)), b"TLEH\x00\x01")
    eq(hs.rejected, True)
    raises(hubproto.ProtoError, hs.server_hello, b"XXXX" + bytes(17))


def test_tamper_replay_size():
    ch = _server()
    rec = h(V["c2s_seq0_ping"]["record"])[2:]
    bad = bytearray(rec)
    bad[20] ^= 1
    raises(hubproto.ProtoError, ch.open, bytes(bad))
    ch = _server()
    ch.open(rec)
    raises(hubproto.ProtoError, ch.open, rec)  # replay: sequence number 1 expected
    raises(hubproto.ProtoError, ch.open, bytes(48))
    raises(hubproto.ProtoError, ch.open, bytes(4097))
