# The firmware loader's one job: pick the set of modules this boot runs, count the boots, roll
# a new firmware back when it does not come up, and confirm a boot once the hub has run a while
# (docs/hub-protocol.md §7.3.1, docs/hub-setup.md "Updating from Home Assistant").
#
# Layout, in the directory of config.json (the flash root on a board): the modules installed
# over USB (the base set, next to main.py), the slots `ota_a/` and `ota_b/` written by updates
# (ota.py), and `ota.json`, the state: {"good": slot of the last confirmed set ("" = base),
# "try": slot on trial (absent when none), "ver": its version, "boots": boots since the last
# confirmation, "failed": version last rolled back, "base": stamp of the base set (_stamp):
# when it changes, modules were installed over USB and the base set runs again}. ota.json is
# replaced atomically (write `ota.json.tmp`, then rename), so a power cut leaves the old or the
# new state.
#
# main.py imports this module from the base set before anything else and drops it: it imports
# only built-in modules, so no firmware module is loaded from the base set by mistake. The base
# set's copy is the loader used at boot; updates never replace it (only USB does).
import json
import os
import sys

_TRIES = const(2)  # boots a new firmware gets to confirm itself before the rollback
_SAFE = const(4)  # unconfirmed boots of a confirmed set before safe mode (no plugs started)
STATE = "ota.json"


def join(d, name):
    return d + "/" + name if d else name


def data_dir(cfg_path):
    """Directory of config.json ("" when relative to the current one, as on a board)."""
    i = cfg_path.rfind("/")
    return cfg_path[:i] if i > 0 else ("/" if i == 0 else "")


def read(d):
    """The state in `d` ({} when missing or unreadable)."""
    try:
        with open(join(d, STATE)) as f:
            s = json.load(f)
        if isinstance(s, dict):
            return s
    except (OSError, ValueError):
        pass
    return {}


def write(d, s):
    """Replace the state atomically. Raises OSError."""
    p = join(d, STATE)
    with open(p + ".tmp", "w") as f:
        f.write(json.dumps(s))
    try:
        os.rename(p + ".tmp", p)
    except OSError:  # a VFS that does not rename over a file
        os.remove(p)
        os.rename(p + ".tmp", p)


def _stamp(base):
    """Short SHA-256 of the base set's app module: it changes when modules are installed over
    USB (app.py carries the version), which then win over the update slots."""
    import binascii
    import hashlib

    for n in ("app.mpy", "app.py"):
        try:
            h = hashlib.sha256()
            with open(join(base, n), "rb") as f:
                while True:
                    b = f.read(512)
                    if not b:
                        break
                    h.update(b)
            return binascii.hexlify(h.digest()[:8]).decode()
        except OSError:
            pass
    return None


def boot(cfg_path):
    """Count this boot, roll back a trial after _TRIES boots without confirmation, and put the
    chosen set's directory first on sys.path. Returns [data dir, trial?, safe mode?]."""
    d = data_dir(cfg_path)
    s = read(d)
    st = _stamp(sys.path[0])
    if s.get("base") != st:
        if s.get("good") or s.get("try"):
            print("ota: modules installed over USB; they replace the updates")
        s = {"base": st}
    n = s.get("boots", 0)
    n = (n if isinstance(n, int) else 0) + 1
    trial = s.get("try")
    if trial and n > _TRIES:
        print("ota: firmware %s did not come up in %d boots; rolled back to %s" % (
            s.get("ver"), _TRIES, s.get("good") or "the base set"))
        s["failed"] = s.pop("ver", None)
        s.pop("try", None)
        trial = None
        n = 1  # the good set counts its own failures from here (safe mode)
    s["boots"] = n
    try:
        write(d, s)
    except OSError as e:
        print("ota: cannot write %s: %s" % (STATE, e))
    run = trial or s.get("good") or ""
    if run:
        sys.path[0] = join(d, run)
    safe = not trial and n > _SAFE
    print("ota: boot %d of %s%s" % (n, run or "the base set",
                                     " (trial)" if trial else " (safe mode)" if safe else ""))
    return [d, bool(trial), safe]


def confirm(d, trial):
    """This boot came up: if it runs a trial (`trial`), the trial becomes the good set; the boot
    count restarts. A trial committed by an update during this boot stays a trial: it has not
    booted yet. Returns the confirmed set's version for a trial, else None."""
    s = read(d)
    ver = None
    if trial and s.get("try"):
        s["good"] = s.pop("try")
        ver = s.get("ver")
    s["boots"] = 0
    write(d, s)
    return ver


def finish(cfg, ok):
    """End of server._confirm_boot: confirm this boot (`ok`), or restart the board because a
    new firmware on trial was not confirmed in time (a failed boot: after _TRIES of them the
    loader rolls back). `cfg["ota"]` is boot()'s result."""
    import board
    import log

    info = cfg["ota"]
    if ok:
        try:
            ver = confirm(info[0], info[1])
            if ver:
                log.info("ota", "firmware %s confirmed" % ver)
            info[1] = False
        except OSError as e:
            log.error("ota", "cannot confirm the boot: %s" % e)
        return
    log.error("ota", "new firmware not confirmed in %d s; restarting" % cfg.get("ota_trial_s", 600))
    board.reset()
    sys.exit(1)  # the unix port: as a board reset
