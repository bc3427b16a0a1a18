# Firmware update over the hub channel (docs/hub-protocol.md §7.3.1): the requests
# update_begin, update_file, update_commit and update_abort (update_chunk is otachunk.py).
# server.py imports this module for one request and drops it again; the update's state lives
# in srv.ota, a list (no class: it would keep this module's code in the heap between
# requests): [client, data dir, slot dir, version, files, mpy, names done, current file
# [name, size, sha256 hex, bytes written], hash object, open file]. Each file is streamed to
# flash chunk by chunk (never whole in RAM), checked by SHA-256 and written into the slot
# directory that is not running; the commit switches to it by replacing ota.json atomically
# (otaboot.py), then the hub restarts into it on trial. One update at a time (the client that
# began it); a client that disconnects abandons it, and the next update_begin cleans the slot.
import os
import sys

import board
import log
from hubproto import E_BAD_REQUEST, E_BUSY, E_STORAGE, E_UNKNOWN_TYPE, HubErr

_MAX_FILES = const(64)
_MAX_FILE = const(262144)
SLOTS = ("ota_a", "ota_b")
_C = const(0)
_D = const(1)
_DIR = const(2)
_VER = const(3)
_N = const(4)
_MPY = const(5)
_DONE = const(6)
_CUR = const(7)
_H = const(8)
_F = const(9)


def _join(d, name):
    return d + "/" + name if d else name


def _otaboot():
    try:
        import otaboot
    finally:
        board.unload("otaboot")  # used for this request only (or its import failed)
    return otaboot


def abort(srv, clean=False):
    """End the update of `srv` (the client left, a hash failed, update_abort; srv.end_update
    closes its file); with `clean` the slot's files are removed now, else by the next
    update_begin."""
    u = srv.end_update()
    if u is not None and clean:
        try:
            _clean(u[_DIR])
        except OSError:
            pass


def request(srv, c, t, msg):
    """Handle update_begin/file/commit/abort of client `c`; returns the result data, raises
    HubErr."""
    if t == "update_begin":
        return _begin(srv, c, msg)
    if t not in ("update_file", "update_commit", "update_abort"):
        raise HubErr(E_UNKNOWN_TYPE, "unknown message type")
    u = getattr(srv, "ota", None)
    if u is None:
        raise HubErr(E_BAD_REQUEST, "no update in progress")
    if u[_C] is not c:
        raise HubErr(E_BUSY, "another client is updating the hub")
    if t == "update_file":
        return _file(u, msg)
    if t == "update_commit":
        return _commit(srv, u)
    abort(srv, True)
    return {}


def _bad(msg):
    raise HubErr(E_BAD_REQUEST, msg)


def _begin(srv, c, msg):
    info = srv.hub.cfg.get("ota") or ["", False, False]
    if info[1]:
        raise HubErr(E_BUSY, "the running firmware is still on trial")
    u = getattr(srv, "ota", None)
    if u is not None:
        if u[_C] is not c and not u[_C].closed:
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
            raise HubErr("incompatible", "modules for mpy %d, this hub runs %d" % (mpy, own))
    d = info[0]
    good = _otaboot().read(d).get("good") or ""
    slot = SLOTS[1] if good == SLOTS[0] else SLOTS[0]
    path = _join(d, slot)
    try:
        _clean(path)
        os.mkdir(path)
    except OSError as e:
        raise HubErr(E_STORAGE, "cannot prepare %s: %s" % (slot, e))
    free = _free(d)
    if free is not None and free < total + 8192:
        raise HubErr(E_STORAGE, "%d bytes of flash free, the update needs %d" % (free, total))
    # the client first, the version at _VER and the open file last: server.end_update
    # closes it without this module
    srv.ota = [c, d, path, ver, n, mpy, [], None, None, None]
    log.info("ota", "update to %s: %d files, %d bytes into %s" % (ver, n, total, slot))
    return {"chunk": 256}  # otachunk.CHUNK


def _file(u, msg):
    if u[_CUR] is not None:
        _bad("%s is not complete" % u[_CUR][0])
    if len(u[_DONE]) >= u[_N]:
        _bad("all %d files received" % u[_N])
    name = msg.get("name")
    size = msg.get("size")
    h = msg.get("sha256")
    if not _name_ok(name) or name in u[_DONE]:
        _bad("bad or repeated file name")
    if name[-4:] == ".mpy" and u[_MPY] is None:
        _bad(".mpy files need mpy in update_begin")
    if not isinstance(size, int) or not 0 < size <= _MAX_FILE:
        _bad("size out of range")
    if not isinstance(h, str) or len(h) != 64:
        _bad("sha256 must be 64 hex digits")
    import hashlib

    try:
        u[_F] = open(_join(u[_DIR], name), "wb")
    except OSError as e:
        raise HubErr(E_STORAGE, "cannot write %s: %s" % (name, e))
    u[_H] = hashlib.sha256()
    u[_CUR] = [name, size, h.lower(), 0]
    return {"name": name}


def _commit(srv, u):
    if u[_CUR] is not None or len(u[_DONE]) != u[_N]:
        _bad("%d of %d files received" % (len(u[_DONE]), u[_N]))
    ob = _otaboot()
    s = ob.read(u[_D])
    slot = u[_DIR][u[_DIR].rfind("/") + 1:]
    s["try"] = slot
    s["ver"] = u[_VER]
    s["boots"] = 0
    try:
        ob.write(u[_D], s)  # the switch: the next boot runs the new set, on trial
    except OSError as e:
        abort(srv, True)
        raise HubErr(E_STORAGE, "cannot switch: %s" % e)
    srv.ota = None
    log.info("ota", "firmware %s installed in %s; restarting" % (u[_VER], slot))
    import asyncio

    asyncio.create_task(_restart(u[_C]))
    return {"version": u[_VER]}


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
        os.remove(_join(path, n))
    os.rmdir(path)


def _free(d):
    try:
        s = os.statvfs(d or "/")
        return s[0] * s[3]
    except (AttributeError, OSError):
        return None
