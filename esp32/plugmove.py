# The `host` request (docs/hub-protocol.md §7.3): a plug moved to a new IPv4 address (Home
# Assistant heard its broadcasts there). Imported by server.py for the request only.
import sys

import log
from hubproto import E_BAD_REQUEST, E_STORAGE, E_UNKNOWN_DEVICE, HubErr


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
    import config

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
        sys.modules.pop("config", None)
    p.set_host(host)
    log.info("hub", "plug %s moved to %s:%d" % (dev_id, p.host, p.port))
    hub._broadcast(hub.plug_msg(p))
    return {"id": dev_id}
