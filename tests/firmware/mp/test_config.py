# config.py: validation of plug records, atomic plugs.json writes and the .tmp fallback.
import json
import os

from testutil import eq, raises

import config

GOOD = {
    "id": "bf0123456789abcdefghij",
    "key": "0123456789abcdef",
    "host": "192.0.2.10",
    "ver": "3.3",
    "name": "Kettle",
}
DIR = "/tmp/tle_mp_config_test"


def _cfg():
    try:  # noqa: SIM105 - MicroPython has no contextlib
        os.mkdir(DIR)
    except OSError:
        pass
    for f in ("config.json", "plugs.json", "plugs.json.tmp"):
        try:  # noqa: SIM105
            os.remove(DIR + "/" + f)
        except OSError:
            pass
    with open(DIR + "/config.json", "w") as f:
        f.write(json.dumps({"secret": "0123456789abcdef0123", "plugs": [GOOD]}))
    return config.load(DIR + "/config.json")


def test_check_plug():
    rec = config.check_plug(GOOD)
    eq(rec["port"], 6668)
    eq(rec["ver"], "3.3")
    for bad in (
        {"key": "short"},
        {"host": "plug.local"},
        {"host": "1.2.3.256"},
        {"id": "bad id"},
        {"ver": "3.9"},
        {"port": 0},
        {"name": "x" * 65},
    ):
        d = dict(GOOD)
        d.update(bad)
        raises(ValueError, config.check_plug, d)


def test_secret_required_and_hub_id_checked():
    _cfg()
    with open(DIR + "/config.json", "w") as f:
        f.write('{"secret": "short"}')
    raises(config.ConfigError, config.load, DIR + "/config.json")
    with open(DIR + "/config.json", "w") as f:
        f.write('{"secret": "0123456789abcdef0123", "hub_id": "' + "x" * 33 + '"}')
    raises(config.ConfigError, config.load, DIR + "/config.json")


def test_plugs_file_atomic_and_fallbacks():
    cfg = _cfg()
    eq(cfg["plugs_file"], DIR + "/plugs.json")
    eq([p["id"] for p in config.load_plugs(cfg)], [GOOD["id"]])  # from config.json
    second = dict(GOOD)
    second["id"] = "second"
    config.save_plugs(cfg, [config.check_plug(GOOD), config.check_plug(second)])
    eq(sorted(os.listdir(DIR)), ["config.json", "plugs.json"])  # no .tmp left behind
    eq([p["id"] for p in config.load_plugs(cfg)], [GOOD["id"], "second"])
    config.save_plugs(cfg, [])
    eq(config.load_plugs(cfg), [])  # an empty list on flash wins over config.json
    # power cut between the write and the rename: only the .tmp exists
    os.rename(DIR + "/plugs.json", DIR + "/plugs.json.tmp")
    eq(config.load_plugs(cfg), [])
    # a corrupt plugs.json falls back to the .tmp
    with open(DIR + "/plugs.json", "w") as f:
        f.write("{not json")
    with open(DIR + "/plugs.json.tmp", "w") as f:
        f.write(json.dumps({"plugs": [second]}))
    eq([p["id"] for p in config.load_plugs(cfg)], ["second"])
