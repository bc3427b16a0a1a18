"""Simulated plugs served from a background thread, for synchronous code (tinytuya, scripts).

Example::

    with PlugThread(SimulatedPlug(device_id="bf...", local_key="0123456789abcdef")) as sims:
        plug = sims.plugs[0]
        dev = tinytuya.OutletDevice(plug.device_id, "127.0.0.1", "0123456789abcdef",
                                    version=3.3, port=plug.port)
        dev.status()
        sims.call(plug.set_dps_local, {"1": True})   # runs in the simulator's loop

Every plug method must run in the simulator's loop: use :meth:`PlugThread.call` for plain
functions and :meth:`PlugThread.run` for coroutines (``sims.run(plug.stop())``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from .server import SimulatedPlug


class PlugThread:
    """Run ``plugs`` in a daemon thread with its own event loop while the context is open.

    Args:
        plugs: the plugs to start (ports are known once the context is entered).
        timeout: seconds allowed for start-up, shutdown and each :meth:`call`/:meth:`run`.

    """

    def __init__(self, *plugs: SimulatedPlug, timeout: float = 10.0) -> None:
        self.plugs = list(plugs)
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _loop_or_raise(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("PlugThread is not running")
        return self._loop

    def run[T](self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the simulator's loop and return its result."""
        loop = self._loop_or_raise()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(self.timeout)

    def call[T](self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` in the simulator's loop and return its result."""
        loop = self._loop_or_raise()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def invoke() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as err:  # handed to the caller
                future.set_exception(err)

        loop.call_soon_threadsafe(invoke)
        return future.result(self.timeout)

    def start(self) -> None:
        """Start the thread and every plug (returns once all listen)."""
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="tuya_sim", daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        try:
            for plug in self.plugs:
                self.run(plug.start())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every plug, then the loop and the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            for plug in self.plugs:
                asyncio.run_coroutine_threadsafe(plug.stop(), loop).result(self.timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(self.timeout)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
