"""tuya_sim.threaded: plugs in a background loop, driven by synchronous tinytuya code."""

from __future__ import annotations

import pytest
import tinytuya

from tuya_sim import SimulatedPlug
from tuya_sim.threaded import PlugThread

pytestmark = pytest.mark.usefixtures("socket_enabled")

KEY = "0123456789abcdef"


def test_sync_client_against_plugs_in_a_thread() -> None:
    plugs = [
        SimulatedPlug(device_id=f"bf000000000000000{n:03d}", local_key=KEY, version=v, seed=n)
        for n, v in enumerate(["3.3", "3.5"])
    ]
    with PlugThread(*plugs) as sims:
        for plug in plugs:
            dev = tinytuya.OutletDevice(
                plug.device_id,
                "127.0.0.1",
                KEY,
                version=float(plug.version),
                port=plug.port,
                connection_timeout=1,
                connection_retry_limit=1,
                connection_retry_delay=0,
                persist=True,
            )
            dev.set_socketTimeout(1)
            try:
                assert dev.status()["dps"]["1"] is False
                pushed = sims.call(plug.set_dps_local, {"1": True})
                assert dev.receive()["dps"] == pushed
                assert sims.call(lambda p=plug: p.connections) == 1
                assert dev.turn_off()["dps"] == {"1": False, "18": 0, "19": 0}
            finally:
                dev.close()
        sims.run(plugs[0].stop())
        assert not plugs[0].running
        sims.run(plugs[0].start())
        assert plugs[0].running
    assert all(not p.running for p in plugs)


def test_call_propagates_exceptions_and_requires_running() -> None:
    sims = PlugThread()
    with pytest.raises(RuntimeError, match="not running"):
        sims.call(print)
    with sims:
        with pytest.raises(ZeroDivisionError):
            sims.call(lambda: 1 / 0)
        assert sims.call(lambda: 42) == 42
