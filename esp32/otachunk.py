# One chunk of a firmware update (update_chunk, docs/hub-protocol.md §7.3.1): decoded, written
# to the open file and hashed; at the file's last byte its SHA-256 is checked. server.py imports
# this small module for each chunk and drops it again, so between chunks only the update's
# state (srv.ota, see ota.py) stays in the heap, and a chunk's peak is this module plus the
# record, not the whole update code.
import binascii

from hubproto import E_BAD_REQUEST, E_BUSY, E_STORAGE, HubErr

CHUNK = const(256)  # largest chunk in bytes (ota.py tells the client)
# srv.ota: [client, data dir, slot dir, version, files, mpy, names done, current file
# [name, size, sha256 hex, bytes written], hash object, open file]
_C = const(0)
_VER = const(3)
_DONE = const(6)
_CUR = const(7)
_H = const(8)
_F = const(9)


def chunk(srv, c, msg):
    """Handle update_chunk {name, offset, data} of client `c`; returns {"name", "received"}.
    Raises HubErr: bad_request (no such file, wrong offset, bad base64, too large), busy (not
    the updating client), bad_hash and storage (both end the update, ota.abort)."""
    u = getattr(srv, "ota", None)
    if u is None:
        raise HubErr(E_BAD_REQUEST, "no update in progress")
    if u[_C] is not c:
        raise HubErr(E_BUSY, "another client is updating the hub")
    cur = u[_CUR]
    if cur is None or msg.get("name") != cur[0]:
        raise HubErr(E_BAD_REQUEST, "no such file being written")
    if msg.get("offset") != cur[3]:
        raise HubErr(E_BAD_REQUEST, "expected offset %d" % cur[3])
    data = msg.get("data")
    b = None
    if isinstance(data, str):
        try:
            b = binascii.a2b_base64(data)
        except ValueError:
            pass
    data = msg = None
    if not b or len(b) > CHUNK or cur[3] + len(b) > cur[1]:
        raise HubErr(E_BAD_REQUEST, "data must be base64 of 1-%d bytes within the file" % CHUNK)
    try:
        u[_F].write(b)
    except OSError as e:
        _end(srv)
        raise HubErr(E_STORAGE, "cannot write %s: %s" % (cur[0], e))
    u[_H].update(b)
    cur[3] += len(b)
    if cur[3] == cur[1]:
        got = binascii.hexlify(u[_H].digest()).decode()
        u[_F].close()
        u[_F] = u[_H] = u[_CUR] = None
        if got != cur[2]:
            import log

            log.warn("ota", "%s: SHA-256 mismatch; update to %s refused" % (cur[0], u[_VER]))
            _end(srv)
            raise HubErr("bad_hash", "%s: SHA-256 does not match" % cur[0])
        u[_DONE].append(cur[0])
    return {"name": cur[0], "received": cur[3]}


def _end(srv):
    import board

    try:
        import ota

        ota.abort(srv, True)
    finally:
        board.unload("ota")
