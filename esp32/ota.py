# Firmware update over the hub channel (docs/hub-protocol.md §7.3.1): the requests
# update_begin, update_file, update_chunk, update_commit and update_abort. server.py imports
# this module for these requests only; it stays loaded while an update runs and is dropped
# when the update ends. Each file is streamed to flash chunk by chunk (never whole in RAM),
# checked by SHA-256, and written into the slot directory that is not running; the commit
# switches to it by replacing ota.json atomically (otaboot.py), then the hub restarts into it
# on trial. One update at a time (the client that began it); a client that disconnects
# abandons it, and the next update_begin cleans the slot.
import binascii
import hashlib
import os
import sys

import log
import otaboot
from hubproto import E_BAD_REQUEST, E_BUSY, E_STORAGE, E_UNKNOWN_TYPE, HubErr

CHUNK = const(1024)  # largest chunk: 1368 base64 characters, well within a record (§3, §5)
_MAX_FILES = const(64)
_MAX_FILE = const(262144)
SLOTS = ("ota_a", "ota_b")
E_BAD_HASH = "bad_hash"
E_INCOMPATIBLE = "incompatible"


class Update:
    """The update in progress: its client, slot, declared file count and total size, the file
    being written (name, size, SHA-256 expected, bytes so far, hash object, open file)."""

    def __init__(self, c, d, slot, ver, nfiles, total, mpy):
        self.c = c
        self.d = d
        self.slot = slot
        self.dir = otaboot.join(d, slot)
        self.ver = ver
        self.nfiles = nfiles
        self.total = total
        self.mpy = mpy
        self.done = []  # names of the files received and checked
        self.cur = None  # [name, size, sha256 hex, bytes written]
        self.h = None
        self.f = None

    def close(self):
        f = self.f
        self.f = self.h = self.cur = None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


def abort(srv, clean=False):
    """End the update of `srv` (the client left, a hash failed, update_abort); with `clean`
    the slot's files are removed now, else by the next update_begin."""
    u = getattr(srv, "ota", None)
    srv.ota = None
    sys.modules.pop("ota", None)
    sys.modules.pop("otaboot", None)
    if u is not None:
        u.close()
        log.info("ota", "update to %s abandoned" % u.ver)
        if clean:
            try:
                _clean(u.dir)
            except OSError:
                pass


def request(srv, c, t, msg):
    """Handle one update request of client `c`; returns the result data, raises HubErr. The
    module drops itself from sys.modules when no update remains."""
    try:
        if t == "update_begin":
            return _begin(srv, c, msg)
        if t not in ("update_file", "update_chunk", "update_commit", "update_abort"):
            raise HubErr(E_UNKNOWN_TYPE, "unknown message type")
        u = getattr(srv, "ota", None)
        if u is None:
            raise HubErr(E_BAD_REQUEST, "no update in progress")
        if u.c is not c:
            raise HubErr(E_BUSY, "another client is updating the hub")
        if t == "update_file":
            return _file(u, msg)
        if t == "update_chunk":
            return _chunk(srv, u, msg)
        if t == "update_commit":
            return _commit(srv, u)
        abort(srv, True)
        return {}
    finally:
        if getattr(srv, "ota", None) is None:
            sys.modules.pop("ota", None)
            sys.modules.pop("otaboot", None)


def _bad(msg):
    raise HubErr(E_BAD_REQUEST, msg)


def _begin(srv, c, msg):
    info = srv.hub.cfg.get("ota") or ["", False, False]
    if info[1]:
        raise HubErr(E_BUSY, "the running firmware is still on trial")
    u = getattr(srv, "ota", None)
    if u is not None:
        if u.c is not c and not u.c.closed:
            raise HubErr(E_BUSY, "another client is updating the hub")
        abort(srv)
    ver = msg.get("version")
    n = msg.get("files")
    total = msg.get("size")
    mpy = msg.get("mpy")
    if not isinstance(ver, str) or not 0 < len(ver) <= 32:
        _bad("version must be a string of 1-32 characters")
    if not isinstance(n, int) or not 0 < n <= _MAX_FILES:
        _bad("files must be 1-%d" % _MAX_FILES)
    if not isinstance(total, int) or not 0 < total <= n * _MAX_FILE:
        _bad("size out of range")
    if mpy is not None:
        own = sys.implementation._mpy
        if not isinstance(mpy, int):
            _bad("mpy must be an integer or null")
        arch = mpy >> 10
        # byte 0: bytecode version; with native code (arch != 0) also the sub-version and
        # the architecture must match (MicroPython docs, "MicroPython .mpy files")
        if mpy & 0xFF != own & 0xFF or arch and (mpy & 0x3FF != own & 0x3FF or
                                                  arch != own >> 10):
            raise HubErr(E_INCOMPATIBLE, "modules for mpy %d, this hub runs %d" % (mpy, own))
    d = info[0]
    good = otaboot.read(d).get("good") or ""
    slot = SLOTS[1] if good == SLOTS[0] else SLOTS[0]
    u = Update(c, d, slot, ver, n, total, mpy)
    try:
        _clean(u.dir)
        os.mkdir(u.dir)
    except OSError as e:
        raise HubErr(E_STORAGE, "cannot prepare %s: %s" % (slot, e))
    free = _free(d)
    if free is not None and free < total + 8192:
        raise HubErr(E_STORAGE, "%d bytes of flash free, the update needs %d" % (free, total))
    srv.ota = u
    log.info("ota", "update to %s: %d files, %d bytes into %s" % (ver, n, total, slot))
    return {"chunk": CHUNK}


def _file(u, msg):
    if u.cur is not None:
        _bad("%s is not complete" % u.cur[0])
    if len(u.done) >= u.nfiles:
        _bad("all %d files received" % u.nfiles)
    name = msg.get("name")
    size = msg.get("size")
    h = msg.get("sha256")
    if not _name_ok(name) or name in u.done:
        _bad("bad or repeated file name")
    if name[-4:] == ".mpy" and u.mpy is None:
        _bad(".mpy files need mpy in update_begin")
    if not isinstance(size, int) or not 0 < size <= _MAX_FILE:
        _bad("size out of range")
    if not isinstance(h, str) or len(h) != 64:
        _bad("sha256 must be 64 hex digits")
    try:
        u.f = open(otaboot.join(u.dir, name), "wb")
    except OSError as e:
        raise HubErr(E_STORAGE, "cannot write %s: %s" % (name, e))
    u.h = hashlib.sha256()
    u.cur = [name, size, h.lower(), 0]
    return {"name": name}


def _chunk(srv, u, msg):
    cur = u.cur
    if cur is None or msg.get("name") != cur[0]:
        _bad("no such file being written")
    if msg.get("offset") != cur[3]:
        _bad("expected offset %d" % cur[3])
    data = msg.get("data")
    if not isinstance(data, str):
        _bad("data must be base64")
    try:
        b = binascii.a2b_base64(data)
    except ValueError:
        _bad("data must be base64")
    data = None
    if not b or len(b) > CHUNK or cur[3] + len(b) > cur[1]:
        _bad("chunk of %d bytes does not fit" % len(b))
    try:
        u.f.write(b)
    except OSError as e:
        abort(srv, True)
        raise HubErr(E_STORAGE, "cannot write %s: %s" % (cur[0], e))
    u.h.update(b)
    cur[3] += len(b)
    if cur[3] == cur[1]:
        got = binascii.hexlify(u.h.digest()).decode()
        u.close()
        if got != cur[2]:
            log.warn("ota", "%s: SHA-256 mismatch; update to %s refused" % (cur[0], u.ver))
            abort(srv, True)
            raise HubErr(E_BAD_HASH, "%s: SHA-256 does not match" % cur[0])
        u.done.append(cur[0])
    return {"name": cur[0], "received": cur[3]}


def _commit(srv, u):
    if u.cur is not None or len(u.done) != u.nfiles:
        _bad("%d of %d files received" % (len(u.done), u.nfiles))
    s = otaboot.read(u.d)
    s["try"] = u.slot
    s["ver"] = u.ver
    s["boots"] = 0
    try:
        otaboot.write(u.d, s)  # the switch: the next boot runs the new set, on trial
    except OSError as e:
        abort(srv, True)
        raise HubErr(E_STORAGE, "cannot switch: %s" % e)
    srv.ota = None
    log.info("ota", "firmware %s installed in %s; restarting" % (u.ver, u.slot))
    import asyncio

    asyncio.create_task(_restart(u.c))
    return {"version": u.ver}


async def _restart(c):
    """Restart once the commit's result has left (at most ~2 s)."""
    import asyncio

    import board

    for _ in range(100):
        await asyncio.sleep_ms(20)
        if c.closed or not c.out:
            break
    await asyncio.sleep_ms(300)  # the writer's last drain
    board.reset()
    sys.exit(0)  # the unix port (no reset): the process ends, as the board would restart


def _name_ok(n):
    """A module file name: [a-z0-9_]+ then .py or .mpy, not the loader's main.py/boot.py."""
    if not isinstance(n, str) or not 3 < len(n) <= 32 or n in ("main.py", "boot.py"):
        return False
    stem = n[:-4] if n[-4:] == ".mpy" else n[:-3] if n[-3:] == ".py" else ""
    for ch in stem:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "_"):
            return False
    return stem != ""


def _clean(path):
    """Remove the files of a slot directory and the directory (nothing if it is missing)."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        os.remove(otaboot.join(path, n))
    os.rmdir(path)


def _free(d):
    try:
        s = os.statvfs(d or "/")
        return s[0] * s[3]
    except (AttributeError, OSError):
        return None
