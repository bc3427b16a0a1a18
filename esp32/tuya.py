# Tuya local protocol codec for the hub firmware (MicroPython), written from the facts collected
# in the project's protocol notes (shared tuya-protocol.md; section numbers below refer to it).
#
# Scope: 55AA frames (§1.1) with CRC32 (3.1/3.3) or HMAC-SHA256 (3.4); payload crypto of
# 3.1 (§2.2), 3.3 (§2.4) and 3.4 (§2.5) including the 3.4 session-key negotiation (§2.7).
# 3.5 (6699 frames, AES-GCM, §1.2/§2.6) is the Codec35 subclass in tuya35.py with its own frame
# packer/parser; its GHASH is @micropython.viper code in gcm.py (micropython-esp32.md §2.3).
#
# Sans-I/O: nothing here touches sockets; plug.py owns the connection and picks the codec class
# per plug (plug.make_codec). This module imports none of tuya31/34/35 (they import it), so the
# firmware has no import cycle (tests/firmware/test_import_graph.py).
import binascii
import json
import struct

import cryptolib

from hmacsha import equal

PREFIX_55AA = const(0x000055AA)
SUFFIX_55AA = const(0x0000AA55)
_PREFIX_BYTES = b"\x00\x00\x55\xaa"

# Command numbers (§2.0, tinytuya core/command_types.py).
SESS_KEY_NEG_START = const(0x03)
SESS_KEY_NEG_RESP = const(0x04)
SESS_KEY_NEG_FINISH = const(0x05)
CONTROL = const(0x07)
STATUS = const(0x08)
HEART_BEAT = const(0x09)
DP_QUERY = const(0x0A)
CONTROL_NEW = const(0x0D)
DP_QUERY_NEW = const(0x10)
UPDATEDPS = const(0x12)
LAN_EXT_STREAM = const(0x40)

# Commands sent WITHOUT the 15-byte "3.x" version header (§2.1, tinytuya NO_PROTOCOL_HEADER_CMDS).
NO_HEADER_CMDS = (DP_QUERY, DP_QUERY_NEW, UPDATEDPS, HEART_BEAT, SESS_KEY_NEG_START,
                  SESS_KEY_NEG_RESP, SESS_KEY_NEG_FINISH, LAN_EXT_STREAM)

# Largest frame accepted (whole frame, prefix..suffix). tinytuya refuses payloads over 1440 B
# (§1.3); plugs send 100-300 B, so 1024 keeps the per-plug buffer small.
MAX_FRAME = const(1024)
_HDR = const(16)

# Power DPs refreshed with UPDATEDPS by default (§5: current, power, voltage), as bytes (one
# DP id per byte): a plug's profile may give its own list (config.check_plug "refresh").
REFRESH_DPS = b"\x12\x13\x14"


class FrameError(Exception):
    """Bad CRC/HMAC, bad suffix, oversized frame, undecryptable payload."""


# What a parser returns in place of a frame it skipped (a frame is a tuple, None means "more
# bytes needed"): BAD_FRAME for a bad length, suffix or CRC (damaged on the way: the CRC does not
# involve the key), BAD_AUTH for a 3.4 HMAC or 3.5 GCM tag that does not verify (damaged, or
# keyed with another key). Either way the parser has consumed it and resynchronises on the next
# prefix (§1.3: tinytuya resynchronises the same way).
BAD_FRAME = const(1)
BAD_AUTH = const(2)


# --- CRC32 -------------------------------------------------------------------------------------
# Standard zlib CRC-32 (reflected 0xEDB88320, init/xorout 0xFFFFFFFF) over prefix..payload
# (§1.1; tinytuya message_helper.py uses binascii.crc32). Some builds lack binascii.crc32.
if hasattr(binascii, "crc32"):

    def crc32(data):
        return binascii.crc32(data) & 0xFFFFFFFF

else:  # the table-driven fallback is loaded only on builds without binascii.crc32
    from crc32soft import crc32


# --- AES-ECB + PKCS7 ---------------------------------------------------------------------------
# cryptolib.aes(key, 1) is ECB (mode constants are not compiled in; micropython-esp32.md §2.1).
def pad(data):
    n = 16 - (len(data) & 15)
    return data + bytes((n,)) * n


def unpad(data):
    # Strict PKCS7 (every pad byte checked, as the HA side's crypto.pkcs7_unpad): a wrong key
    # then fails here with probability ~255/256 instead of ~15/16.
    k = len(data)
    n = data[-1] if k else 0
    if not 1 <= n <= 16 or k < n:
        raise FrameError("bad padding")
    for i in range(k - n, k - 1):
        if data[i] != n:
            raise FrameError("bad padding")
    return data[: k - n]


def ecb_encrypt(key, data):
    return cryptolib.aes(key, 1).encrypt(data)


def ecb_decrypt(key, data):
    if not data or len(data) & 15:
        raise FrameError("ciphertext not a block multiple")
    return cryptolib.aes(key, 1).decrypt(data)


# --- 55AA frames -------------------------------------------------------------------------------
def pack_55aa(seqno, cmd, payload, mac_key=None):
    """Client->device 55AA frame (no retcode, §1.1). `mac_key` (HmacKey) selects the 3.4 HMAC
    trailer; otherwise CRC32. length = payload + integrity + suffix."""
    ilen = 32 if mac_key is not None else 4
    hdr = struct.pack(">4I", PREFIX_55AA, seqno, cmd, len(payload) + ilen + 4)
    if mac_key is not None:
        integ = mac_key.digest(hdr, payload)
    else:
        integ = struct.pack(">I", crc32(hdr + payload))
    return hdr + payload + integ + struct.pack(">I", SUFFIX_55AA)


def parse_55aa(buf, n, mac_key=None):
    """Look for one device->client frame in buf[0:n].

    Returns (frame, consumed): frame is (seqno, cmd, retcode, payload), None when more bytes
    are needed, or BAD_FRAME / BAD_AUTH for a frame that was skipped (bad length or suffix:
    one byte, to resynchronise on the next prefix; bad CRC / HMAC with a sane length and
    suffix: the whole frame). `consumed` bytes at the front may be dropped (garbage before a
    prefix, or the frame). Device frames always carry a retcode (tinytuya strips 4 bytes on
    receive, §1.1). Never raises for what the device sends."""
    start = buf.find(_PREFIX_BYTES, 0, n) if n >= 4 else -1
    if start < 0:
        # keep up to 3 trailing bytes that could be the start of a prefix
        return None, (n - 3 if n > 3 else 0)
    if n - start < _HDR:
        return None, start
    _, seqno, cmd, length = struct.unpack_from(">4I", buf, start)
    ilen = 32 if mac_key is not None else 4
    total = _HDR + length
    if total > MAX_FRAME or length < 4 + ilen + 4:
        return BAD_FRAME, start + 1
    if n - start < total:
        return None, start
    end = start + total
    mv = memoryview(buf)
    if struct.unpack_from(">I", buf, end - 4)[0] != SUFFIX_55AA:
        return BAD_FRAME, start + 1
    body_end = end - 4 - ilen
    if mac_key is not None:
        if not equal(mac_key.digest(mv[start:body_end]), bytes(mv[body_end : end - 4])):
            return BAD_AUTH, end
    elif crc32(mv[start:body_end]) != struct.unpack_from(">I", buf, body_end)[0]:
        return BAD_FRAME, end
    retcode = struct.unpack_from(">I", buf, start + _HDR)[0]
    payload = bytes(mv[start + _HDR + 4 : body_end])
    return (seqno, cmd, retcode, payload), end


# --- payload codecs per protocol version -------------------------------------------------------
def dumps(obj):
    # No spaces: some devices ignore payloads with spaces (§2.8, tinytuya generate_payload).
    return json.dumps(obj, separators=(",", ":"))


class Codec33:
    """Protocol 3.3: AES-128-ECB(local key) on every payload; the clear "3.3"+12x00 header
    in front of the ciphertext for commands outside NO_HEADER_CMDS (§2.4)."""

    version = "3.3"
    query_cmd = DP_QUERY
    control_cmd = CONTROL
    needs_session = False

    def __init__(self, dev_id, local_key):
        self.dev_id = dev_id
        self.key = local_key  # 16 raw bytes (the ASCII local key, §2.2)
        self.mac_key = None

    # JSON bodies are written by hand: MicroPython dicts do not keep insertion order and the
    # field order below is the one tinytuya sends (§2.8).
    def query_json(self, t):
        d = self.dev_id
        q = getattr(self, "d22", None)
        if q:
            # "device22" firmware: status is read with CONTROL_NEW and a map of nulls (§2.10)
            return '{"devId":"%s","uid":"%s","t":"%d","dps":{%s}}' % (
                d, d, t, ",".join('"%s":null' % k for k in q))
        return '{"gwId":"%s","devId":"%s","uid":"%s","t":"%d"}' % (d, d, d, t)

    def set_device22(self, dp_ids):
        """Switch to "device22" polling: the plug answered DP_QUERY with "json obj data
        unvalid" (§2.10); from now on status is read by CONTROL_NEW 0x0d with `dp_ids` set to
        null. Only for 3.3 (tinytuya and hass-localtuya switch only there)."""
        self.d22 = sorted(dp_ids, key=lambda k: (len(k), k))
        self.query_cmd = CONTROL_NEW

    def control_json(self, dps, t):
        d = self.dev_id
        return '{"devId":"%s","uid":"%s","t":"%d","dps":%s}' % (d, d, t, dumps(dps))

    def heartbeat_json(self):
        return '{"gwId":"%s","devId":"%s"}' % (self.dev_id, self.dev_id)

    def refresh_json(self, dp_ids=REFRESH_DPS):
        """UPDATEDPS body for `dp_ids` (DP ids as ints, or bytes of DP ids; spec §2.9)."""
        return '{"dpId":%s}' % dumps(list(dp_ids))

    def encrypt_payload(self, cmd, raw):
        ct = ecb_encrypt(self.key, pad(raw))
        if cmd in NO_HEADER_CMDS:
            return ct
        return b"3.3" + bytes(12) + ct

    def encode(self, seqno, cmd, text):
        """Whole client frame for command `cmd` carrying JSON `text` (str)."""
        return pack_55aa(seqno, cmd, self.encrypt_payload(cmd, text.encode()), self.mac_key)

    def parse(self, buf, n):
        return parse_55aa(buf, n, self.mac_key)

    def decrypt_payload(self, payload):
        n = len(payload)
        # Device frames may carry a clear 15-byte source header "3.x"|crc|seq|src (§2.1) before
        # the ciphertext: only then is the length 15 mod 16 (a ciphertext may start with "3.3").
        if n & 15 == 15 and (payload[:3] == b"3.3" or payload[:3] == b"3.2"):
            payload = payload[15:]
            n -= 15
        if not n:
            return b""
        if not n & 15:
            try:
                return unpad(ecb_decrypt(self.key, payload))
            except FrameError:
                # Some firmware answers in clear; a ciphertext may also start with "{", so
                # decryption is always tried first.
                if payload[:1] == b"{":
                    return payload
                raise
        if payload[:1] == b"{":
            return payload
        raise FrameError("payload is neither ciphertext nor JSON")

    def decode(self, payload):
        """Decode a device payload (retcode already removed).

        Returns (obj, text): obj is the JSON dict (with "data.dps" folded into "dps") or None;
        text is the raw plaintext when it is not JSON (e.g. b"data format error", §4)."""
        raw = self.decrypt_payload(payload)
        if not raw:
            return None, b""
        try:
            obj = json.loads(raw)
        except ValueError:
            return None, raw
        if not isinstance(obj, dict):
            return None, raw
        data = obj.get("data")
        if "dps" not in obj and isinstance(data, dict) and "dps" in data:
            obj["dps"] = data["dps"]  # 3.4/3.5 shape {"protocol":4,"data":{"dps":..}} (§2.9)
        return obj, raw

