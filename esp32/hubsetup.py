# Set-up of an unconfigured hub: runs Improv serial on the console (improv.py) and, on a
# board, the setup access point's page (setupap.py) until one of them has written a usable
# config.json (provision.py). A module of its own so that improv.py and setupap.py can use
# provision.py without an import cycle; imported by startup.py only when set-up is needed.
import asyncio
import sys

import board
import log
from provision import hub_id, needed


def setup(path, http=None, serial=True, timeout_s=0):
    """Serve Improv serial on the console and (on a board, or when `http` = (host, port) is
    given) the setup page, until one of them has written a usable configuration. Blocks;
    returns True when provisioned, False after `timeout_s` seconds (0 = no limit), when
    neither channel can run, or when the console closes and no setup page runs."""
    if http is None and board.is_hardware():
        http = ("0.0.0.0", 80)
    log.warn("setup", "hub not configured: Improv serial%s" % (
        ", setup access point" if http else ""))
    try:
        return asyncio.run(_setup(path, http, serial, timeout_s))
    finally:
        asyncio.new_event_loop()


async def _setup(path, http, serial, timeout_s):
    done = asyncio.Event()
    tasks = []
    ap = None
    if serial:
        import improv

        tasks.append(asyncio.create_task(improv.serve(path, done, eof_ends=not http)))
    if http:
        import setupap

        ap = setupap.start_ap(hub_id(path))
        tasks.append(asyncio.create_task(setupap.serve(path, http[0], http[1], done)))
    if not tasks:
        return False
    try:
        if timeout_s:
            await asyncio.wait_for(done.wait(), timeout_s)
        else:
            await done.wait()
        return not needed(path)
    except asyncio.TimeoutError:
        return False
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.sleep_ms(0)
        if ap is not None:
            setupap.stop_ap(ap)
        for m in ("improv", "setupap"):
            sys.modules.pop(m, None)
