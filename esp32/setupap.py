# Setup access point: when the hub has no working Wi-Fi and no USB cable is at hand, it opens
# the open access point "tuya-esp-hub-<id>" and serves one small page at http://192.168.4.1/
# (the ESP32 soft-AP address): a form for the Wi-Fi SSID and password. Saving writes them into
# config.json (provision.save, atomic) and, when the hub has no secret yet, generates one and
# shows it once on the answer page, to be pasted into Home Assistant. See docs/hub-setup.md.
#
# The HTTP handling (parse_form, respond) is plain code, tested on the unix port with a real
# HTTP client over loopback; only start_ap/stop_ap touch the radio.
import asyncio

import log
import provision

MAX_BODY = const(1024)
MAX_LINE = const(512)
MAX_HEADERS = const(24)
READ_MS = const(10000)  # a client that stalls longer mid-request is dropped

_HEAD = ("<!doctype html><html><head><meta charset=utf-8>"
         "<meta name=viewport content='width=device-width'><title>Tuya ESP hub setup</title>"
         "</head><body style='font-family:sans-serif;max-width:30em;margin:1em auto'>")


def _esc(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def _unquote(s):
    """application/x-www-form-urlencoded value -> str ('+' is a space, %XX a byte, UTF-8).
    Raises ValueError for a broken escape or invalid UTF-8."""
    b = s.replace("+", " ").encode()
    out = bytearray()
    i = 0
    while i < len(b):
        c = b[i]
        if c == 37:  # '%'
            h = b[i + 1:i + 3]
            if len(h) != 2:
                raise ValueError("bad escape")
            out.append(int(h, 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return bytes(out).decode()


def parse_form(body):
    """Decode a form body (bytes) into a dict of str; raises ValueError when malformed."""
    try:
        text = body.decode()
    except UnicodeError:
        raise ValueError("form is not UTF-8")
    out = {}
    for part in text.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out[_unquote(k)] = _unquote(v)
    return out


def page_form(hub_id, msg=""):
    return (_HEAD + "<h1>Tuya ESP hub " + _esc(hub_id) + "</h1>"
            + ("<p style='color:#b00'>" + _esc(msg) + "</p>" if msg else "")
            + "<form method=post action=/save>"
            "<p><label>Wi-Fi name (SSID)<br><input name=ssid maxlength=32 required></label></p>"
            "<p><label>Wi-Fi password<br><input name=password type=password maxlength=64>"
            "</label></p><p><button>Save</button></p></form></body></html>")


def page_saved(ssid, secret):
    if secret:
        s = ("<p>Hub secret (shown only this once; copy it into Home Assistant when it asks "
             "for the hub):</p><p><code style='font-size:1.3em'>" + _esc(secret) + "</code></p>")
    else:
        s = "<p>The hub secret is unchanged.</p>"
    return (_HEAD + "<h1>Saved</h1><p>The hub now joins <b>" + _esc(ssid) + "</b>.</p>" + s
            + "<p>Home Assistant finds the hub by DHCP (host name tuya-esp-hub-&hellip;); "
            "otherwise enter its IP address and port 6670.</p></body></html>")


class Setup:
    """State of the setup page. respond(method, path, body) -> (status, html); `done` turns
    True once a valid form has been saved."""

    def __init__(self, path):
        self.path = path
        self.done = False

    def respond(self, method, target, body):
        target = target.split("?", 1)[0]
        hid = provision.hub_id(self.path)
        if method == "GET" and target == "/":
            return 200, page_form(hid)
        if target != "/save":
            # other paths (captive-portal probes of phones included) lead to the form
            return 302, "/"
        if method != "POST":
            return 405, "POST only"
        try:
            form = parse_form(body)
            ssid = form.get("ssid", "")
            pw = form.get("password", "")
            provision.check_wifi(ssid, pw)
        except ValueError as e:
            return 400, page_form(hid, str(e))
        secret = None
        if not provision.secret_ok(provision.read(self.path).get("secret")):
            secret = provision.gen_secret()
        try:
            provision.save(self.path, wifi={"ssid": ssid, "password": pw}, secret=secret)
        except (OSError, ValueError) as e:
            return 500, page_form(hid, "cannot save: %s" % type(e).__name__)
        self.done = True
        log.info("setup", "configuration saved from the setup page")
        return 200, page_saved(ssid, secret)


_REASON = {200: "OK", 302: "Found", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
           413: "Content Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error"}


async def _read_request(r):
    """(method, target, body) or an int HTTP status for a request that is refused."""
    line = await r.readline()
    if len(line) > MAX_LINE:
        return 431
    parts = line.decode().split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return 400
    length = 0
    for _ in range(MAX_HEADERS):
        h = await r.readline()
        if len(h) > MAX_LINE:
            return 431
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode().partition(":")
        if k.strip().lower() == "content-length":
            try:
                length = int(v.strip())
            except ValueError:
                return 400
    else:
        return 431
    if parts[0] == "POST" and length <= 0:
        return 411
    if length > MAX_BODY or length < 0:
        return 413
    body = b""
    while len(body) < length:
        chunk = await r.read(length - len(body))
        if not chunk:
            return 400
        body += chunk
    return parts[0], parts[1], body


async def _handle(setup, r, w, done):
    try:
        try:
            req = await asyncio.wait_for_ms(_read_request(r), READ_MS)
        except asyncio.TimeoutError:
            req = 408
        except (ValueError, UnicodeError):
            req = 400
        if isinstance(req, int):
            status, body = req, _REASON.get(req, "")
        else:
            status, body = setup.respond(*req)
        head = "HTTP/1.0 %d %s\r\n" % (status, _REASON.get(status, ""))
        if status == 302:
            head += "Location: %s\r\n" % body
            body = ""
        b = body.encode()
        head += ("Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n"
                 "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(b))
        w.write(head.encode())
        w.write(b)
        await w.drain()
        if isinstance(req, int):
            # Unread request bytes at close() make the TCP stack send a reset, which can
            # destroy the answer before the client reads it: read them away first (bounded).
            for _ in range(4):
                try:
                    if not await asyncio.wait_for_ms(r.read(512), 200):
                        break
                except asyncio.TimeoutError:
                    break
    except OSError:
        pass
    finally:
        w.close()
        try:
            await w.wait_closed()
        except OSError:
            pass
    if setup.done and done is not None:
        done.set()


async def serve(path, host, port, done=None):
    """Serve the setup page on (host, port) until cancelled; sets `done` after the answer to
    a successful save has been sent."""
    setup = Setup(path)
    srv = await asyncio.start_server(lambda r, w: _handle(setup, r, w, done), host, port,
                                     backlog=2)
    log.info("setup", "setup page on %s:%d" % (host, port))
    try:
        while True:
            await asyncio.sleep_ms(1000)
    finally:
        srv.close()


def start_ap(hub_id):
    """Open the access point tuya-esp-hub-<id> (open network; 192.168.4.1). None on the unix
    port."""
    try:
        import network
    except ImportError:
        return None
    ap = network.WLAN(network.AP_IF)
    ap.active(True)
    ap.config(essid="tuya-esp-hub-" + hub_id, authmode=0)
    log.info("setup", "access point tuya-esp-hub-%s up" % hub_id)
    return ap


def stop_ap(ap):
    try:
        ap.active(False)
    except Exception:  # noqa: BLE001 - best effort
        pass
