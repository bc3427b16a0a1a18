"""Command line: serve one or many simulated plugs until interrupted.

Examples::

    python -m tuya_sim --port 6668 --device-id bf0123456789abcdefgh --local-key 0123456789abcdef
    python -m tuya_sim --plugs 5 --port 7000 --version 3.4 --seed 1
    python -m tuya_sim --config plugs.json

At start-up one JSON line per plug is printed on stdout (``host``, ``port``, ``device_id``,
``local_key``, ``version``), or a table with ``--format table``. Local keys are printed there once,
for the user; they are never logged.

``--config`` takes a JSON list of objects (or ``{"plugs": [...]}``); each object needs
``local_key`` or gets a generated one, and may use any keyword of :class:`SimulatedPlug`
(``device_id``, ``version``, ``profile``, ``host``, ``port``, ``dps``, ``load_w``, ``idle_timeout``,
``power_needs_updatedps``, ``push_interval``, ``device22``, ...); a ``name`` key is ignored.
Missing ``port`` values continue upward from ``--port``; command-line options are defaults that the
file overrides per plug.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import secrets
import signal
import string
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .broadcast import PlugBroadcaster, broadcasters_from_args
from .broadcast import add_arguments as add_broadcast_arguments
from .codec import VERSIONS
from .profiles import DEFAULT_PROFILE, PROFILES
from .server import SimulatedPlug

#: TCP port of a plug (spec §1).
DEFAULT_PORT = 6668

_KEY_ALPHABET = string.ascii_letters + string.digits + "!#$%&()*+,-./:;<=>?@[]^_{|}~"


def generate_credentials(rng: random.Random | None = None) -> tuple[str, str]:
    """A device id shaped like a real one (``bf`` + 18 hex) and a 16-character local key.

    With ``rng`` the values are reproducible (``--seed``); otherwise they come from ``secrets``.
    """
    if rng is None:
        dev = "bf" + secrets.token_hex(9)
        key = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    else:
        dev = "bf" + "".join(rng.choice("0123456789abcdef") for _ in range(18))
        key = "".join(rng.choice(_KEY_ALPHABET) for _ in range(16))
    return dev, key


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m tuya_sim`` argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m tuya_sim", description="Simulated Tuya Wi-Fi plugs (local protocol)."
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="TCP port of the first plug; more plugs count upward (0: any free port)",
    )
    p.add_argument("--device-id", help="device id (single plug)")
    p.add_argument("--local-key", help="16-character local key (single plug)")
    p.add_argument("--version", default="3.3", choices=VERSIONS, help="protocol version")
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        choices=list(PROFILES),
        metavar="PROFILE",
        help="DP layout: "
        + "; ".join(f"{name}: {prof.description}" for name, prof in PROFILES.items()),
    )
    p.add_argument("--plugs", type=int, default=None, help="serve N plugs with generated ids/keys")
    p.add_argument("--config", type=Path, help="JSON file with a list of plugs")
    p.add_argument("--seed", type=int, default=None, help="reproducible ids, keys and readings")
    p.add_argument("--load-w", type=float, default=100.0, help="appliance power while on (W)")
    p.add_argument("--idle-timeout", type=float, default=30.0, help="drop idle connections (s)")
    p.add_argument("--max-connections", type=int, default=1, help="simultaneous connections")
    p.add_argument(
        "--power-needs-updatedps",
        action="store_true",
        help="DPs 18/19/20 refresh only on UPDATEDPS 0x12",
    )
    p.add_argument("--push-interval", type=float, default=None, help="push meter updates (s)")
    p.add_argument("--device22", action="store_true", help="3.3 device22 firmware")
    p.add_argument(
        "--accept-stale-timestamp", action="store_true", help="answer requests with any 't'"
    )
    p.add_argument("--energy-speedup", type=float, default=1.0, help="energy accrual factor")
    p.add_argument(
        "--status-delay", type=float, default=0.0, help="seconds between an ACK and its STATUS"
    )
    p.add_argument("--format", choices=("json", "table"), default="json", help="start-up listing")
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    add_broadcast_arguments(p)
    return p


def _common_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "version": args.version,
        "profile": args.profile,
        "load_w": args.load_w,
        "idle_timeout": args.idle_timeout,
        "max_connections": args.max_connections,
        "power_needs_updatedps": args.power_needs_updatedps,
        "push_interval": args.push_interval,
        "device22": args.device22,
        "reject_stale_timestamp": not args.accept_stale_timestamp,
        "energy_speedup": args.energy_speedup,
        "status_delay": args.status_delay,
    }


def _next_port(base: int, index: int) -> int:
    return 0 if base == 0 else base + index


def plugs_from_args(args: argparse.Namespace) -> list[SimulatedPlug]:
    """Build (not start) the plugs the arguments describe.

    Raises:
        ValueError: inconsistent arguments or a bad config file.

    """
    rng = random.Random(args.seed) if args.seed is not None else None
    common = _common_options(args)
    specs: list[dict[str, Any]] = []
    if args.config is not None:
        loaded = json.loads(args.config.read_text())
        if isinstance(loaded, dict):
            loaded = loaded.get("plugs")
        if not isinstance(loaded, list) or not all(isinstance(x, dict) for x in loaded):
            raise ValueError("config must be a JSON list of plug objects (or {'plugs': [...]})")
        specs = [dict(x) for x in loaded]
    elif args.plugs is not None:
        if args.plugs < 1:
            raise ValueError("--plugs must be at least 1")
        specs = [{} for _ in range(args.plugs)]
    else:
        specs = [{"device_id": args.device_id, "local_key": args.local_key}]
    plugs = []
    for index, spec in enumerate(specs):
        dev, key = generate_credentials(rng)
        spec.pop("name", None)  # a label for humans (scripts/demo_plugs.json)
        options = {**common, **{k: v for k, v in spec.items() if v is not None}}
        options.setdefault("device_id", dev)
        options.setdefault("local_key", key)
        options.setdefault("port", _next_port(args.port, index))
        if args.seed is not None:
            options.setdefault("seed", args.seed + index)
        plugs.append(SimulatedPlug(**options))
    return plugs


def print_plugs(plugs: Sequence[SimulatedPlug], fmt: str, out: TextIO) -> None:
    """Print the connection details of started plugs (includes the local keys, by design)."""
    rows = [plug.info() for plug in plugs]
    if fmt == "json":
        for row in rows:
            out.write(json.dumps(row) + "\n")
    else:
        cols = ("host", "port", "device_id", "local_key", "version")
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
        out.write("  ".join(c.ljust(widths[c]) for c in cols).rstrip() + "\n")
        for row in rows:
            out.write("  ".join(str(row[c]).ljust(widths[c]) for c in cols).rstrip() + "\n")
    out.flush()


async def serve(
    plugs: Sequence[SimulatedPlug],
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    fmt: str = "json",
    out: TextIO = sys.stdout,
    broadcasters: Sequence[PlugBroadcaster] = (),
) -> None:
    """Start ``plugs``, print them, run until ``stop`` is set (or SIGINT/SIGTERM), then stop.

    ``broadcasters`` (UDP discovery, :mod:`tuya_sim.broadcast`) start after the plugs.

    ``ready`` is set once every plug listens and the listing is printed.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    started: list[SimulatedPlug] = []
    try:
        for plug in plugs:
            await plug.start()
            started.append(plug)
        for caster in broadcasters:
            await caster.start()
        print_plugs(started, fmt, out)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await asyncio.gather(*(c.stop() for c in broadcasters), return_exceptions=True)
        await asyncio.gather(*(plug.stop() for plug in started), return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tuya_sim``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        plugs = plugs_from_args(args)
    except (ValueError, OSError, TypeError) as err:
        parser.error(str(err))
    try:
        broadcasters = broadcasters_from_args(args, plugs)
        asyncio.run(serve(plugs, fmt=args.format, broadcasters=broadcasters))
    except OSError as err:  # e.g. port in use
        print(f"tuya_sim: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
