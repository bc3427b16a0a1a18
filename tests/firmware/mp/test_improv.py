# improv.py (Improv serial packet reader and provisioning state machine), provision.py
# (validation, atomic config merge) and setupap.py's form parser, on the unix port.
# Packet format: https://www.improv-wifi.com/serial/ ("Packet format": "IMPROV", version 1, type,
# length, data, checksum = low byte of the sum of all preceding bytes).
import os

import improv
import provision
import setupap
from testutil import eq, fresh_json, raises

DIR = "/tmp/tle_mp_improv_test"
PATH = DIR + "/config.json"


def _clean(cfg=None):
    fresh_json(DIR, "config.json", cfg)


def _rpc(cmd, data=b""):
    return improv.packet(improv.T_RPC, bytes((cmd, len(data))) + data)


def _feed(parser, data, t0=0, step=1):
    events = []
    t = t0
    for c in data:
        ev = parser.feed(c, t)
        t += step
        if ev is not None:
            events.append(ev)
    return events


def test_packet_checksum_matches_spec_example():
    # The spec's Wi-Fi example: 01 1E 0C "MyWirelessAP" 10 "mysecurepassword"
    data = b"\x01\x1e\x0cMyWirelessAP\x10mysecurepassword"
    pkt = improv.packet(improv.T_RPC, data)
    eq(pkt[:9], b"IMPROV\x01\x03" + bytes((len(data),)))
    eq(pkt[-1], sum(pkt[:-1]) & 0xFF)
    eq(_feed(improv.Parser(), pkt), [("rpc", 1, b"\x0cMyWirelessAP\x10mysecurepassword")])


def test_parser_skips_noise_and_resyncs():
    p = improv.Parser()
    noise = b"123 I main: log line with IMP and IMPROX\r\n"
    evs = _feed(p, noise + _rpc(improv.C_STATE) + b"\n" + _rpc(improv.C_INFO))
    eq(evs, [("rpc", improv.C_STATE, b""), ("rpc", improv.C_INFO, b"")])


def test_parser_errors_keep_step():
    p = improv.Parser()
    bad = bytearray(_rpc(improv.C_STATE))
    bad[-1] ^= 0x55
    oversize = b"IMPROV\x01\x03\xc8" + bytes(200) + b"\x00"
    wrong_type = improv.packet(improv.T_STATE, b"\x02")
    short_rpc = improv.packet(improv.T_RPC, b"\x01")
    bad_len = improv.packet(improv.T_RPC, b"\x01\x05ab")
    evs = _feed(p, bytes(bad) + oversize + wrong_type + short_rpc + bad_len + _rpc(2))
    eq(evs, [("error", improv.E_INVALID_RPC)] * 5 + [("rpc", 2, b"")])


def test_parser_drops_a_packet_interrupted_by_a_pause():
    p = improv.Parser()
    pkt = _rpc(improv.C_STATE)
    eq(_feed(p, pkt[:5], t0=0), [])
    # the rest arrives 5 s later: the partial packet is dropped, the next one parses
    eq(_feed(p, pkt[5:] + pkt, t0=5000), [("rpc", improv.C_STATE, b"")])


def test_wifi_failure_reports_unable_and_writes_nothing():
    _clean({"port": 7000})
    svc = improv.Service(PATH, connect=lambda ssid, pw: False)
    out, creds = svc.handle(improv.C_WIFI, b"\x04home\x08password")
    eq(out[-1], improv.packet(improv.T_STATE, bytes((improv.S_PROVISIONING,))))
    out = svc.finish_wifi(*creds)
    eq(out[0], improv.packet(improv.T_ERROR, bytes((improv.E_UNABLE_TO_CONNECT,))))
    eq(svc.state, improv.S_READY)
    eq(provision.read(PATH), {"port": 7000})


def test_wifi_connect_exception_is_an_error_not_a_crash():
    _clean({})

    def boom(ssid, pw):
        raise OSError(5)

    svc = improv.Service(PATH, connect=boom)
    _, creds = svc.handle(improv.C_WIFI, b"\x04home\x00")
    eq(svc.finish_wifi(*creds)[0], svc.error(improv.E_UNABLE_TO_CONNECT))


def test_wifi_without_secret_command_generates_one():
    _clean({"hub_id": "abc"})
    svc = improv.Service(PATH, connect=lambda ssid, pw: True)
    _, creds = svc.handle(improv.C_WIFI, b"\x04home\x08password")
    svc.finish_wifi(*creds)
    cfg = provision.read(PATH)
    eq(cfg["wifi"], {"ssid": "home", "password": "password"})
    eq(cfg["hub_id"], "abc")
    eq(len(cfg["secret"]), 32)
    eq(svc.state, improv.S_PROVISIONED)


def test_bad_rpc_data_is_rejected():
    _clean({})
    svc = improv.Service(PATH, connect=lambda ssid, pw: True)
    inv = [svc.error(improv.E_INVALID_RPC)]
    eq(svc.handle(improv.C_WIFI, b"\x04ho"), inv)  # truncated string
    eq(svc.handle(improv.C_WIFI, b"\x00\x08password"), inv)  # empty SSID
    eq(svc.handle(improv.C_WIFI, b"\x04home\x03abc"), inv)  # password too short
    eq(svc.handle(improv.C_SET_SECRET, b"\x05short"), inv)
    eq(svc.handle(improv.C_SET_SECRET, b"\x11has space 0123456"), inv)
    eq(svc.handle(0x42, b""), [svc.error(improv.E_UNKNOWN_RPC)])
    eq(provision.read(PATH), {})


def test_save_is_atomic_and_keeps_other_keys():
    _clean({"port": 7001, "plugs": [], "secret": "old-secret-0123456789"})
    with open(PATH + ".tmp", "w") as f:
        f.write("half a fi")  # left over by a power cut
    provision.save(PATH, wifi={"ssid": "n", "password": ""})
    cfg = provision.read(PATH)
    eq(cfg["port"], 7001)
    eq(cfg["secret"], "old-secret-0123456789")
    eq(cfg["wifi"], {"ssid": "n", "password": ""})
    raises(OSError, os.stat, PATH + ".tmp")
    raises(ValueError, provision.save, PATH, None, "short")
    eq(provision.read(PATH)["secret"], "old-secret-0123456789")


def test_check_wifi_and_secret():
    provision.check_wifi("x" * 32, "")
    provision.check_wifi("home", "a" * 63)
    provision.check_wifi("home", "0123456789abcdef" * 4)
    for ssid, pw in (("", "password"), ("x" * 33, ""), ("home", "1234567"), ("home", "g" * 64)):
        raises(ValueError, provision.check_wifi, ssid, pw)
    s = provision.gen_secret()
    eq(len(s), 32)
    eq(provision.secret_ok(s), True)
    eq(provision.secret_ok(s + " "), False)


def test_needed():
    _clean(None)
    eq(provision.needed(PATH), True)
    _clean({"secret": "0123456789abcdef"})
    eq(provision.needed(PATH), False)  # unix port: no Wi-Fi needed


def test_form_parsing():
    eq(
        setupap.parse_form(b"ssid=My+Net%21&password=p%C3%A4ss+word&x="),
        {"ssid": "My Net!", "password": "päss word", "x": ""},
    )
    raises(ValueError, setupap.parse_form, b"ssid=%G1")
    raises(ValueError, setupap.parse_form, b"ssid=%4")
    raises(ValueError, setupap.parse_form, b"ssid=%FF")  # not UTF-8
