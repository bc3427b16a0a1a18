# The `host` request (docs/hub-protocol.md §7.3): a plug moved to a new IPv4 address (Home
# Assistant heard its broadcasts there). Imported by server.py for the request only.
import sys

import log
import plug
from hubproto import E_BAD_REQUEST, E_STORAGE, E_UNKNOWN_DEVICE, HubErr


async def move(hub, dev_id, host):
    """Validate `host` like an added plug's, write the plug list atomically, then reconnect the
    plug at once to the new address; every client gets a `plug` push. The same host is a
    no-op. Returns {"id": dev_id}; raises HubErr (unknown_device, bad_request, storage)."""
    p = hub.plugs.get(dev_id)
    if p is None:
        raise HubErr(E_UNKNOWN_DEVICE, "no such device id")
    if host == p.host:
        return {"id": dev_id}
    import config

    try:
        records = [r for r in config.load_plugs(hub.cfg) if r["id"] in hub.plugs]
        rec = None
        for i in range(len(records)):
            if records[i]["id"] == dev_id:
                rec = dict(records[i])
                rec["host"] = host
                records[i] = rec = config.check_plug(rec)
        if rec is None:
            raise HubErr(E_STORAGE, "plug missing from the stored plug list")
        config.save_plugs(hub.cfg, records)
    except ValueError as e:
        raise HubErr(E_BAD_REQUEST, str(e))
    except OSError as e:
        raise HubErr(E_STORAGE, "cannot write plug list: %s" % e)
    finally:
        records = None
        config = None
        sys.modules.pop("config", None)
    # A fresh Plug connects at the next tick (no backoff) and keeps the DPs last seen.
    await p.stop()
    if hub.plugs.get(dev_id) is not p:  # removed meanwhile by another request
        return {"id": dev_id}
    q = plug.Plug(rec)
    q.dps = p.dps
    q.ts = p.ts
    hub.plugs[dev_id] = q
    log.info("hub", "plug %s moved to %s:%d" % (dev_id, q.host, q.port))
    hub._broadcast(hub.plug_msg(q))
    return {"id": dev_id}
