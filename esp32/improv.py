# Improv serial service: receives the Wi-Fi credentials (and, by a vendor command, the hub
# secret) over the USB serial console and writes them into config.json (provision.save).
#
# Protocol: "Improv via Serial", https://www.improv-wifi.com/serial/ (improv-wifi/website,
# src/serial.md). A packet is  "IMPROV" | version (1) | type | length | data | checksum,  the
# checksum being the low byte of the sum of all bytes before it (header included; the same rule
# in improv-wifi/sdk-cpp src/improv.cpp). Types: 0x01 current state, 0x02 error state (device
# to client), 0x03 RPC command (client to device), 0x04 RPC result. An RPC is
# command | data length | data; results are length-prefixed strings. Commands served: 0x01 send
# Wi-Fi settings, 0x02 request current state, 0x03 request device information, and two vendor
# commands of this project (docs/hub-setup.md): 0x80 set hub secret (one string), 0x81 hub
# address (result: hub id, IP, port, hostname). Other commands get error 0x02.
#
# Log lines share the console with the packets (as in ESPHome); clients skip non-packet bytes.
# Packets go out through sys.stdout.buffer (no newline translation), and Ctrl-C is disabled
# while the service runs, because 0x03 (the RPC type) is the keyboard-interrupt character.
import asyncio
import sys
import time

import board
import log
import provision
import wifi

T_STATE = const(1)
T_ERROR = const(2)
T_RPC = const(3)
T_RESULT = const(4)

S_READY = const(2)
S_PROVISIONING = const(3)
S_PROVISIONED = const(4)

E_NONE = const(0)
E_INVALID_RPC = const(1)
E_UNKNOWN_RPC = const(2)
E_UNABLE_TO_CONNECT = const(3)
E_UNKNOWN = const(0xFF)

C_WIFI = const(1)
C_STATE = const(2)
C_INFO = const(3)
C_SET_SECRET = const(0x80)
C_HUB_INFO = const(0x81)

MAX_DATA = const(128)  # longest accepted packet data (Wi-Fi settings: 2 + 32 + 64 bytes)
GAP_MS = const(1000)  # a packet whose bytes pause longer than this is dropped
LINGER_MS = const(3000)  # after provisioning, serve follow-up requests until this long idle

HEADER = b"IMPROV"
VERSION = const(1)
FW_NAME = "tuya_local_esp hub"
FW_VERSION = "0.2.1"


def packet(typ, data):
    """One Improv serial packet with its checksum (spec: "Packet format")."""
    b = bytearray(HEADER)
    b.append(VERSION)
    b.append(typ)
    b.append(len(data))
    b.extend(data)
    b.append(sum(b) & 0xFF)
    return bytes(b)


def result(cmd, strings):
    """RPC result packet: command, data length, then each string as length + UTF-8 bytes."""
    body = bytearray()
    for s in strings:
        s = s.encode() if isinstance(s, str) else s
        body.append(len(s))
        body.extend(s)
    return packet(T_RESULT, bytes((cmd, len(body))) + body)


def strings(data):
    """Split length-prefixed strings (bytes); raises ValueError when the lengths do not add up."""
    out = []
    i = 0
    while i < len(data):
        n = data[i]
        if i + 1 + n > len(data):
            raise ValueError("truncated string")
        out.append(bytes(data[i + 1:i + 1 + n]))
        i += 1 + n
    return out


class Parser:
    """Byte-at-a-time packet reader. feed(byte) returns None while a packet is incomplete (or
    bytes are skipped), ("rpc", command, data) for a valid RPC, or ("error", code) for a packet
    that must be answered with an error state: bad checksum, oversize, malformed RPC, a type
    a client must not send."""

    def __init__(self):
        self.buf = bytearray()
        self.skip = 0
        self.last = 0

    def reset(self):
        self.buf = bytearray()

    def feed(self, c, now=None):
        if now is not None:
            if self.buf and time.ticks_diff(now, self.last) > GAP_MS:
                self.reset()
            self.last = now
        if self.skip:
            self.skip -= 1
            return None
        buf = self.buf
        n = len(buf)
        if n < 6:
            if c == HEADER[n]:
                buf.append(c)
            else:
                self.reset()
                if c == HEADER[0]:
                    self.buf.append(c)
            return None
        buf.append(c)
        if n == 6:
            if c != VERSION:
                self.reset()
            return None
        if n < 9:
            if n == 8 and c > MAX_DATA:
                self.reset()
                self.skip = c + 1  # drop its data and checksum, stay in step
                return ("error", E_INVALID_RPC)
            return None
        size = buf[8]
        if n < 9 + size:
            return None
        # n == 9 + size: c is the checksum
        self.reset()
        if (sum(buf) - c) & 0xFF != c:
            return ("error", E_INVALID_RPC)
        if buf[7] != T_RPC:
            return ("error", E_INVALID_RPC)
        data = buf[9:9 + size]
        if size < 2 or data[1] != size - 2:
            return ("error", E_INVALID_RPC)
        return ("rpc", data[0], bytes(data[2:]))


class Service:
    """The provisioning state machine. handle(cmd, data) returns the list of packets to send
    back; for a valid C_WIFI it returns (packets, (ssid, password)) instead, and
    finish_wifi(ssid, password), called once those packets are written, joins the network and
    saves. `connect(ssid, password)` joins the Wi-Fi (blocking) and returns True on success."""

    def __init__(self, path, connect=None):
        self.path = path
        self.connect = connect or wifi.connect
        self.secret = None  # from C_SET_SECRET, saved together with the Wi-Fi
        self.state = S_READY
        self.done = False

    def _state(self):
        return packet(T_STATE, bytes((self.state,)))

    @staticmethod
    def error(code):
        return packet(T_ERROR, bytes((code,)))

    def _provisioned_result(self):
        return result(C_WIFI, ())  # no URL: the hub has no web page once it runs

    def handle(self, cmd, data):
        if cmd == C_STATE:
            out = [self._state()]
            if self.state == S_PROVISIONED:
                out.append(self._provisioned_result())
            return out
        if cmd == C_INFO:
            import os

            try:
                chip = os.uname().machine
            except (AttributeError, OSError):
                chip = sys.platform
            hid = provision.hub_id(self.path)
            return [result(C_INFO, (FW_NAME, FW_VERSION, chip[:60], "tuya-esp-hub-" + hid))]
        if cmd == C_HUB_INFO:
            cfg = provision.read(self.path)
            return [result(C_HUB_INFO, (provision.hub_id(self.path), wifi.ip_address() or "",
                                        str(cfg.get("port") or 6670),
                                        "tuya-esp-hub-" + provision.hub_id(self.path)))]
        if cmd == C_SET_SECRET:
            try:
                parts = strings(data)
                sec = parts[0].decode() if len(parts) == 1 else None
            except (ValueError, UnicodeError):
                sec = None
            if not provision.secret_ok(sec):
                return [self.error(E_INVALID_RPC)]
            if self.state == S_PROVISIONED:
                try:
                    provision.save(self.path, secret=sec)
                except OSError:
                    return [self.error(E_UNKNOWN)]
            else:
                self.secret = sec
            log.info("improv", "hub secret received")
            return [self.error(E_NONE), result(C_SET_SECRET, ())]
        if cmd == C_WIFI:
            return self._wifi(data)
        return [self.error(E_UNKNOWN_RPC)]

    def _wifi(self, data):
        try:
            parts = strings(data)
            if len(parts) != 2:
                raise ValueError("two strings expected")
            ssid = parts[0].decode()
            pw = parts[1].decode()
            provision.check_wifi(ssid, pw)
        except (ValueError, UnicodeError):
            return [self.error(E_INVALID_RPC)]
        # Improv reports progress with state packets; they are written before the (blocking)
        # connection attempt, so the client sees "provisioning" at once.
        self.state = S_PROVISIONING
        out = [self.error(E_NONE), self._state()]
        return out, (ssid, pw)

    def finish_wifi(self, ssid, pw):
        """Second half of C_WIFI, after the packets above are on the wire: connect, save."""
        ok = False
        try:
            ok = self.connect(ssid, pw)
        except Exception as e:  # noqa: BLE001 - reported to the client as "unable to connect"
            log.warn("improv", "wifi: %s" % type(e).__name__)
        if not ok:
            self.state = S_READY
            log.warn("improv", "wifi: cannot join the network")
            return [self.error(E_UNABLE_TO_CONNECT), self._state()]
        cfg = provision.read(self.path)
        sec = self.secret
        if sec is None and not provision.secret_ok(cfg.get("secret")):
            sec = provision.gen_secret()  # a client without the vendor command: see setup page
        try:
            provision.save(self.path, wifi={"ssid": ssid, "password": pw}, secret=sec)
        except (OSError, ValueError):
            self.state = S_READY
            return [self.error(E_UNKNOWN), self._state()]
        self.secret = None
        self.state = S_PROVISIONED
        self.done = True
        log.info("improv", "provisioned, wifi %s" % ("up" if wifi.ip_address() else "ok"))
        return [self._state(), self._provisioned_result()]


def _out():
    return getattr(sys.stdout, "buffer", sys.stdout)


def _write(w, pkts):
    for p in pkts:
        w.write(p)
    try:
        w.flush()
    except (AttributeError, OSError):
        pass


async def serve(path, done=None, connect=None, eof_ends=True):
    """Run the service on the console (sys.stdin/sys.stdout) until provisioned and then idle
    for LINGER_MS, or until the console is closed (unix port) when `eof_ends`; sets `done` (an
    asyncio.Event) when it returns. Returns True when provisioned. Never raises on bad input:
    every malformed packet is answered with an Improv error state."""
    import micropython

    svc = Service(path, connect)
    parser = Parser()
    w = _out()
    inp = getattr(sys.stdin, "buffer", sys.stdin)
    r = asyncio.StreamReader(inp)
    micropython.kbd_intr(-1)
    try:
        while True:
            if svc.done:
                try:
                    c = await asyncio.wait_for_ms(r.read(1), LINGER_MS)
                except asyncio.TimeoutError:
                    break
            else:
                c = await r.read(1)
            if not c:
                if eof_ends:
                    break  # console closed (unix port)
                await asyncio.sleep_ms(50)  # the setup page still serves
                continue
            ev = parser.feed(c[0], time.ticks_ms())
            if ev is None:
                continue
            if ev[0] == "error":
                _write(w, [svc.error(ev[1])])
                continue
            try:
                out = svc.handle(ev[1], ev[2])
            except Exception as e:  # noqa: BLE001 - a bug must not end provisioning
                log.error("improv", "command %d: %s" % (ev[1], type(e).__name__))
                out = [svc.error(E_UNKNOWN)]
            if isinstance(out, tuple):
                _write(w, out[0])
                await asyncio.sleep_ms(0)
                out = svc.finish_wifi(*out[1])
            _write(w, out)
    finally:
        micropython.kbd_intr(3)
        if done is not None:
            done.set()
    return svc.done


def main(path="config.json"):
    """Serve Improv on the console until provisioned (for `scripts/hub-setup`, which starts it
    from the raw REPL on a board that is already configured). Returns True when provisioned."""
    try:
        return asyncio.run(serve(path))
    finally:
        asyncio.new_event_loop()
