"""The ``python -m tuya_sim`` command line: argument handling, listing, serving several plugs."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from custom_components.tuya_local_esp.tuya.const import Command
from custom_components.tuya_local_esp.tuya.frame import FrameParser, RawFrame
from custom_components.tuya_local_esp.tuya.message import MessageCodec
from custom_components.tuya_local_esp.tuya.payload import extract_dps, status_request
from tuya_sim.__main__ import build_parser, generate_credentials, main, plugs_from_args, serve

pytestmark = pytest.mark.usefixtures("socket_enabled")

ROOT = Path(__file__).parent.parent


def test_generated_credentials_look_real_and_are_seeded() -> None:
    import random

    dev, key = generate_credentials(random.Random(7))
    assert (dev, key) == generate_credentials(random.Random(7))
    assert len(dev) == 20
    assert dev.startswith("bf")
    assert len(key.encode("latin1")) == 16
    assert generate_credentials() != generate_credentials()


def test_plugs_option_counts_ports_upward() -> None:
    args = build_parser().parse_args(
        [
            "--plugs",
            "3",
            "--port",
            "7000",
            "--version",
            "3.4",
            "--seed",
            "1",
            "--load-w",
            "60",
            "--status-delay",
            "0.05",
        ]
    )
    plugs = plugs_from_args(args)
    assert [p.port for p in plugs] == [7000, 7001, 7002]
    assert {p.version for p in plugs} == {"3.4"}
    assert len({p.device_id for p in plugs}) == 3
    assert len({p.info()["local_key"] for p in plugs}) == 3
    assert all(p.model.load_w == 60 for p in plugs)
    assert all(p.status_delay == 0.05 for p in plugs)
    again = plugs_from_args(args)
    assert [p.info() for p in again] == [p.info() for p in plugs]


def test_single_plug_and_config_file(tmp_path: Path) -> None:
    single = plugs_from_args(
        build_parser().parse_args(
            ["--device-id", "abc", "--local-key", "0123456789abcdef", "--port", "6000"]
        )
    )
    assert [p.info() for p in single] == [
        {
            "host": "127.0.0.1",
            "port": 6000,
            "device_id": "abc",
            "local_key": "0123456789abcdef",
            "version": "3.3",
        }
    ]
    config = tmp_path / "plugs.json"
    config.write_text(
        json.dumps(
            [
                {"name": "Kettle", "device_id": "k", "local_key": "kkkkkkkkkkkkkkkk", "port": 9},
                {"version": "3.5", "power_needs_updatedps": True, "dps": {"1": True}},
            ]
        )
    )
    plugs = plugs_from_args(
        build_parser().parse_args(["--config", str(config), "--port", "8000", "--seed", "2"])
    )
    assert (plugs[0].device_id, plugs[0].port, plugs[0].version) == ("k", 9, "3.3")
    assert plugs[1].port == 8001
    assert plugs[1].version == "3.5"
    assert plugs[1].power_needs_updatedps is True
    assert plugs[1].dps["1"] is True


@pytest.mark.parametrize(
    "argv",
    [
        ["--local-key", "short"],
        ["--plugs", "0"],
        ["--config", "{missing}"],
        ["--config", "{bad_option}"],
    ],
)
def test_bad_arguments_exit_with_usage(argv: list[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"colour": "red"}]))
    argv = [a.replace("{missing}", str(tmp_path / "nope.json")) for a in argv]
    argv = [a.replace("{bad_option}", str(bad)) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


async def test_serve_lists_and_serves_every_plug() -> None:
    args = build_parser().parse_args(["--plugs", "2", "--port", "0", "--version", "3.3"])
    plugs = plugs_from_args(args)
    out = io.StringIO()
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(plugs, stop=stop, ready=ready, out=out))
    try:
        async with asyncio.timeout(3):
            await ready.wait()
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [r["port"] for r in rows] == [p.port for p in plugs]
        for row in rows:
            codec = MessageCodec(row["version"], row["local_key"].encode("latin1"))
            reader, writer = await asyncio.open_connection(row["host"], row["port"])
            try:
                writer.write(codec.encode(1, *status_request("3.3", row["device_id"])))
                frames: list[RawFrame] = []
                parser = FrameParser()
                async with asyncio.timeout(2):
                    while not frames:
                        frames += [
                            f
                            for f in parser.feed(await reader.read(4096))
                            if isinstance(f, RawFrame)
                        ]
                reply = codec.decode(frames[0])
                assert reply.cmd == Command.DP_QUERY
                assert extract_dps(reply.json())["1"] is False
            finally:
                writer.close()
    finally:
        stop.set()
        async with asyncio.timeout(3):
            await task
    assert all(not p.running for p in plugs)


def test_table_format_subprocess() -> None:
    """End to end: the module runs, prints a table and exits cleanly on SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuya_sim", "--plugs", "2", "--port", "0", "--format", "table"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline().split()
        first = proc.stdout.readline().split()
        second = proc.stdout.readline().split()
    finally:
        proc.send_signal(2)
        _out, err = proc.communicate(timeout=10)
    assert header == ["host", "port", "device_id", "local_key", "version"]
    assert first[0] == second[0] == "127.0.0.1"
    assert first[4] == "3.3"
    assert proc.returncode == 0, err
    assert "Traceback" not in err
