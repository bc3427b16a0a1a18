# Test-only fault injection for the hub firmware (tests/firmware/test_board_faults.py). Loaded
# only when config.json has "test_faults" ({point: count, ...}); a hub without it never imports
# this module, and the hooks in plug.py and app.py cost one global lookup each.
import asyncio

import log


class Faults:
    """Counts per fault point. hit(point) raises MemoryError (CancelledError for points named
    "kill_*", as a cancelled task sees it) while the count for `point` lasts. squeeze() is
    called once per tick: while the "squeeze" count lasts it holds "squeeze_kb" KiB of the heap
    in 256-byte blocks, so that allocations anywhere in the hub fail at random, then releases
    them."""

    def __init__(self, counts):
        self.c = counts
        self.hog = None

    def hit(self, point):
        c = self.c
        if c.get(point, 0) > 0:
            c[point] -= 1
            log.warn("fault", "injected at " + point)
            if point.startswith("kill_"):
                raise asyncio.CancelledError()
            raise MemoryError()

    def squeeze(self):
        c = self.c
        if c.get("squeeze", 0) <= 0:
            self.hog = None
            return
        c["squeeze"] -= 1
        if self.hog is None:
            hog = self.hog = []
            try:
                for _ in range(c.get("squeeze_kb", 0) * 4):
                    hog.append(bytearray(256))
            except MemoryError:
                pass
            log.warn("fault", "squeeze %d B" % (len(hog) * 256))
