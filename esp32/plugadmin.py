# The requests that change the plug list (docs/hub-protocol.md §7.3): `add`, `remove`,
# `host` (a plug moved to a new IPv4 address) and `profile` (a plug's refresh/dps lists). Imported by server.py for one request and
# dropped again, with config.py, so their code does not stay in the heap. The stored plug list
# (with local keys) is not kept in RAM either: each request reads it back from flash, changes
# it and writes it atomically (config.save_plugs).
import gc

import board
import log
from hubproto import E_BAD_REQUEST, E_EXISTS, E_LIMIT, E_STORAGE, E_UNKNOWN_DEVICE, HubErr


def _config():
    try:
        import config
    except BaseException:
        board.unload("config")  # a half-loaded module must not stay in the heap
        raise
    return config


def add(hub, fields):
    """Validate `fields` (config.check_plug: id, key, host, port, ver, name and the optional
    profile refresh/dps), persist, then start the plug; every client gets a `plug` push.
    Returns {"id"}; raises HubErr (bad_request, exists, limit, storage)."""
    config = _config()
    try:
        try:
            rec = config.check_plug(fields)
        except ValueError as e:
            raise HubErr(E_BAD_REQUEST, str(e))
        if rec["id"] in hub.plugs:
            raise HubErr(E_EXISTS, "device id already configured")
        if len(hub.plugs) >= hub.max_plugs:
            raise HubErr(E_LIMIT, "hub serves at most %d plugs (socket budget)" % hub.max_plugs)
        try:
            records = [r for r in config.load_plugs(hub.cfg) if r["id"] in hub.plugs]
            records.append(rec)
            config.save_plugs(hub.cfg, records)
        except OSError as e:
            raise HubErr(E_STORAGE, "cannot write plug list: %s" % e)
    finally:
        records = None
        config = None
        board.unload("config")
    hub._start_plug(rec)
    hub._broadcast(hub.plug_msg(hub.plugs[rec["id"]]))
    return {"id": rec["id"]}


async def remove(hub, dev_id):
    """Persist the plug list without `dev_id`, then stop that plug (its socket closed); every
    client gets a `removed` push. Returns {"id"}; raises HubErr (unknown_device, storage)."""
    p = hub.plugs.get(dev_id)
    if p is None:
        raise HubErr(E_UNKNOWN_DEVICE, "no such device id")
    config = _config()
    try:
        keep = [r for r in config.load_plugs(hub.cfg)
                if r["id"] != dev_id and r["id"] in hub.plugs]
        config.save_plugs(hub.cfg, keep)
    except OSError as e:
        raise HubErr(E_STORAGE, "cannot write plug list: %s" % e)
    finally:
        keep = None
        config = None
        board.unload("config")
    del hub.plugs[dev_id]
    await p.stop()
    gc.collect()
    log.info("hub", "plug %s removed" % dev_id)
    hub._broadcast({"t": "removed", "id": dev_id})
    return {"id": dev_id}


def move(hub, dev_id, host):
    """Validate `host` like an added plug's, write the plug list atomically, then point the
    plug at the new address (it reconnects at once, keeping its DPs); every client gets a
    `plug` push. The same host is a no-op. Returns {"id": dev_id}; raises HubErr
    (unknown_device, bad_request, storage)."""
    p = hub.plugs.get(dev_id)
    if p is None:
        raise HubErr(E_UNKNOWN_DEVICE, "no such device id")
    if host == p.host:
        return {"id": dev_id}
    config = _config()
    try:
        records = [r for r in config.load_plugs(hub.cfg) if r["id"] in hub.plugs]
        found = False
        for i in range(len(records)):
            if records[i]["id"] == dev_id:
                rec = dict(records[i])
                rec["host"] = host
                records[i] = config.check_plug(rec)
                found = True
        if not found:
            raise HubErr(E_STORAGE, "plug missing from the stored plug list")
        config.save_plugs(hub.cfg, records)
    except ValueError as e:
        raise HubErr(E_BAD_REQUEST, str(e))
    except OSError as e:
        raise HubErr(E_STORAGE, "cannot write plug list: %s" % e)
    finally:
        records = None
        config = None
        board.unload("config")
    p.set_host(host)
    log.info("hub", "plug %s moved to %s:%d" % (dev_id, p.host, p.port))
    hub._broadcast(hub.plug_msg(p))
    return {"id": dev_id}


def profile(hub, dev_id, refresh, dps):
    """Give plug `dev_id` a new profile: `refresh` and `dps` validated as add's (None: the
    default, as absent from add), written to the plug list atomically, then used by the
    running plug without reconnecting (its next tick sends UPDATEDPS for the new refresh
    DPs); every client gets a `plug` push. The same lists are a no-op. Returns {"id": dev_id};
    raises HubErr (unknown_device, bad_request, storage)."""
    p = hub.plugs.get(dev_id) if isinstance(dev_id, str) else None
    if p is None:
        raise HubErr(E_UNKNOWN_DEVICE, "no such device id")
    config = _config()
    try:
        records = [r for r in config.load_plugs(hub.cfg) if r["id"] in hub.plugs]
        rec = None
        for i in range(len(records)):
            if records[i]["id"] == dev_id:
                old = records[i]
                rec = dict(old)
                rec.pop("refresh", None)
                rec.pop("dps", None)
                if refresh is not None:
                    rec["refresh"] = refresh
                if dps is not None:
                    rec["dps"] = dps
                rec = records[i] = config.check_plug(rec)
        if rec is None:
            raise HubErr(E_STORAGE, "plug missing from the stored plug list")
        if rec.get("refresh") == old.get("refresh") and rec.get("dps") == old.get("dps"):
            return {"id": dev_id}
        config.save_plugs(hub.cfg, records)
    except ValueError as e:
        raise HubErr(E_BAD_REQUEST, str(e))
    except OSError as e:
        raise HubErr(E_STORAGE, "cannot write plug list: %s" % e)
    finally:
        records = old = None
        config = None
        board.unload("config")
    p.set_profile(rec)
    log.info("hub", "plug %s: refresh %s" % (dev_id, list(p.refresh)))
    hub._broadcast(hub.plug_msg(p))
    return {"id": dev_id}
