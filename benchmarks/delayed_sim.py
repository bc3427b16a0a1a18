"""Simulated plugs behind a latency-injecting TCP relay, in one separate process.

Usage::

    .venv/bin/python -m benchmarks.delayed_sim --plugs N --version 3.3 --delay-ms 25 [--seed 1]

Loopback answers in ~0.1 ms, a Tuya plug on Wi-Fi in tens of milliseconds, so start-up benchmarks
on loopback alone hide the cost of waiting for devices one after the other. This module starts
``N`` :class:`tuya_sim.SimulatedPlug` servers on free loopback ports plus one relay port in front of
each; the relay forwards every chunk in each direction after ``--delay-ms`` (order preserved), so
each request/answer exchange pays ``2 * delay``. The TCP handshake itself is not delayed (the
relay accepts at once). Prints one JSON line per plug, like ``python -m tuya_sim``, with the
relay's port. Throwaway ids and keys come from ``random.Random(seed)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import string
import sys

from tuya_sim import SimulatedPlug

_KEY_CHARS = string.ascii_letters + string.digits


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def sender() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(sender())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await task
    except OSError, asyncio.CancelledError:
        task.cancel()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def _relay(target_port: int, delay: float) -> asyncio.Server:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pump(reader, up_writer, delay),
            _pump(up_reader, writer, delay),
            return_exceptions=True,
        )

    return await asyncio.start_server(on_client, "127.0.0.1", 0, backlog=1024)


async def serve(count: int, version: str, delay: float, seed: int) -> None:
    rng = random.Random(seed)
    plugs = []
    relays = []
    for index in range(count):
        dev = "bf" + "".join(rng.choice("0123456789abcdef") for _ in range(18))
        key = "".join(rng.choice(_KEY_CHARS) for _ in range(16))
        plug = SimulatedPlug(
            device_id=dev,
            local_key=key,
            version=version,
            host="127.0.0.1",
            port=0,
            seed=seed + index,
            idle_timeout=3600.0,
        )
        await plug.start()
        plugs.append(plug)
        relay = await _relay(plug.port, delay)
        relays.append(relay)
        info = plug.info()
        info["port"] = relay.sockets[0].getsockname()[1]
        print(json.dumps(info), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for relay in relays:
        relay.close()
    await asyncio.gather(*(p.stop() for p in plugs), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.delayed_sim", description=__doc__)
    p.add_argument("--plugs", type=int, default=1)
    p.add_argument("--version", default="3.3")
    p.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay per chunk")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    asyncio.run(serve(args.plugs, args.version, args.delay_ms / 1000.0, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
