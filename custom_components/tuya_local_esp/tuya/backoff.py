"""Reconnect pacing shared by the Tuya device client and the hub client.

One job: decide how long to wait before the next connection attempt, and wait that long unless
something wakes the wait early (the plug's UDP broadcast was heard, it moved to a new address).

The policy aims at two things users notice (see ``docs/reliability.md``):

* **back within seconds**: after a connection is lost the first attempts come quickly
  (``first`` doubling up to ``steady``), then every ``steady`` seconds, so a plug that was
  switched off at the wall is reached again at most ``steady`` (+ jitter) seconds after it is back;
* **no hammering**: after ``slow_after`` seconds of continuous failure the wait grows to
  ``slow`` (a plug away for hours costs a SYN every ``slow`` seconds; its broadcast still cuts the
  wait short), and a ``polite`` wait (another client holds the plug's only connection) is
  ``polite`` seconds, so the other client is not fought for the socket.

Every delay gets ±``jitter`` (a fraction) of random spread, so many plugs that dropped at the same
moment (a Wi-Fi access point rebooting) do not reconnect in lock-step.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable


class Backoff:
    """Delays between reconnection attempts; see the module docstring for the policy.

    Args:
        first: seconds before the first retry after a failure (doubles up to ``steady``).
        steady: the longest wait during the first ``slow_after`` seconds of an outage.
        slow: the wait once an outage lasted ``slow_after`` seconds.
        slow_after: seconds of continuous failure before waits grow to ``slow``.
        polite: the wait when the peer is held by another client.
        jitter: relative random spread of every delay (0.2 = ±20 %).
        clock: monotonic clock in seconds (injectable for tests).
        rng: uniform random number in [0, 1) (injectable for tests).

    Raises:
        ValueError: a delay is not positive, or ``jitter`` is not in [0, 1).

    """

    def __init__(
        self,
        *,
        first: float = 0.25,
        steady: float = 2.0,
        slow: float = 30.0,
        slow_after: float = 600.0,
        polite: float = 15.0,
        jitter: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Create the pacing state; the first failure waits ``first`` seconds."""
        if min(first, steady, slow, polite) <= 0 or slow_after < 0:
            raise ValueError("backoff delays must be positive")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.first = first
        self.steady = max(steady, first)
        self.slow = max(slow, self.steady)
        self.slow_after = slow_after
        self.polite = polite
        self.jitter = jitter
        self._clock = clock
        self._rng = rng
        self._failures = 0
        self._since: float | None = None

    @property
    def failures(self) -> int:
        """Failed attempts since the last :meth:`reset`."""
        return self._failures

    @property
    def outage(self) -> float:
        """Seconds since the first failure of the current outage (0 when none)."""
        return 0.0 if self._since is None else self._clock() - self._since

    def reset(self) -> None:
        """Forget the outage: call after a successful connection."""
        self._failures = 0
        self._since = None

    def next_delay(self, *, polite: bool = False) -> float:
        """Record one failed attempt and return the seconds to wait before the next one."""
        if self._since is None:
            self._since = self._clock()
        self._failures += 1
        if polite:
            base = self.polite
        elif self.outage >= self.slow_after:
            base = self.slow
        else:
            base = min(self.first * 2 ** (self._failures - 1), self.steady)
        return base * (1 + self.jitter * (2 * self._rng() - 1))

    async def wait(self, wake: asyncio.Event | None = None, *, polite: bool = False) -> bool:
        """Wait :meth:`next_delay` seconds, or less when ``wake`` is set meanwhile.

        ``wake`` is cleared before returning, so one signal cuts one wait short.

        Returns:
            True when ``wake`` cut the wait short.

        """
        delay = self.next_delay(polite=polite)
        if wake is None:
            await asyncio.sleep(delay)
            return False
        woken = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wake.wait()
                woken = True
        wake.clear()
        return woken
