"""Validation of the config flow's input and the probes that check it against the device.

A plug is probed by connecting once and reading its DPS (the first status query doubles as the
local-key check, spec §4); a hub by authenticating once (``docs/hub-protocol.md`` §4). Each
function returns the form errors (``strings.json`` ``config.error``) instead of raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT

from .const import (
    CONF_DETECTED_VERSION,
    CONF_DEVICE_ID,
    CONF_DP_IDS,
    CONF_LOCAL_KEY,
    CONF_PROTOCOL_VERSION,
    CONF_SECRET,
    LOGGER,
    REQUEST_TIMEOUT,
)
from .hub import HubAuthError, HubClient, HubError, Inventory
from .source import PlugSource
from .tuya import TuyaDevice, TuyaError, TuyaKeyError

#: Length of every Tuya local key: it is used as the raw 16-byte AES-128 key (spec §2.2).
LOCAL_KEY_LENGTH = 16


def local_key_error(key: str) -> str | None:
    """The form error for a local key that cannot be right, or None.

    A local key is 16 ASCII characters (spec §2.2); anything else is ``invalid_local_key``.
    """
    return None if len(key) == LOCAL_KEY_LENGTH and key.isascii() else "invalid_local_key"


async def probe_plug(data: Mapping[str, Any], version: str | None) -> tuple[list[str], str]:
    """Connect once and read the DPS; return the DP ids the plug reported and its version.

    ``version`` overrides the entry's protocol version for this probe (a discovered plug
    announced its own, so a wrong key is reported after one try instead of five).

    Raises:
        TuyaKeyError: the plug did not accept the local key or protocol version.
        TuyaError: the plug could not be reached or answered nonsense.

    """
    device = TuyaDevice(
        data[CONF_HOST],
        data[CONF_DEVICE_ID],
        data[CONF_LOCAL_KEY],
        version=version or data[CONF_PROTOCOL_VERSION],
        version_hint=data.get(CONF_DETECTED_VERSION),
        port=int(data[CONF_PORT]),
        timeout=REQUEST_TIMEOUT,
        auto_reconnect=False,
    )
    async with device:
        return sorted(device.dps), device.version


async def validate_plug(user_input: dict[str, Any], version: str | None = None) -> dict[str, str]:
    """Normalise ``user_input`` in place and probe the plug; return the form errors.

    On success ``user_input`` also gets the DP ids the plug reported and its version.
    """
    for field in (CONF_HOST, CONF_DEVICE_ID, CONF_LOCAL_KEY):
        user_input[field] = str(user_input[field]).strip()
    user_input[CONF_PORT] = int(user_input[CONF_PORT])
    if error := local_key_error(user_input[CONF_LOCAL_KEY]):
        return {CONF_LOCAL_KEY: error}
    try:
        dp_ids, found_version = await probe_plug(user_input, version)
    except TuyaKeyError:
        return {"base": "invalid_auth"}
    except TuyaError as err:
        LOGGER.debug("Probe of %s failed: %s", user_input[CONF_HOST], err)
        return {"base": "cannot_connect"}
    except Exception:
        LOGGER.exception("Unexpected error while probing %s", user_input[CONF_HOST])
        return {"base": "unknown"}
    user_input[CONF_DP_IDS] = dp_ids
    user_input[CONF_DETECTED_VERSION] = found_version
    return {}


async def validate_releasing(entry: ConfigEntry, data: dict[str, Any]) -> dict[str, str]:
    """Run :func:`validate_plug` for a configured plug.

    Plugs accept one connection, so the running entry lets go of it while we probe (and takes
    it again if the probe fails).
    """
    source: PlugSource | None = (
        entry.runtime_data.source if entry.state is ConfigEntryState.LOADED else None
    )
    device_id = entry.data[CONF_DEVICE_ID]
    if source is not None:
        await source.async_release(device_id)
    errors = await validate_plug(data)
    if errors and source is not None:
        await source.async_resume(device_id)
    return errors


def hub_data(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The hub form's input, normalised."""
    return {
        CONF_HOST: str(user_input[CONF_HOST]).strip(),
        CONF_PORT: int(user_input[CONF_PORT]),
        CONF_SECRET: user_input[CONF_SECRET],
    }


async def check_hub(data: Mapping[str, Any]) -> tuple[dict[str, str], Inventory | None]:
    """Authenticate to the hub; return (form errors, inventory or None)."""
    try:
        return {}, await probe_hub(data)
    except HubAuthError:
        return {"base": "invalid_auth"}, None
    except HubError as err:
        LOGGER.debug("Hub at %s: %s", data[CONF_HOST], err)
        return {"base": "cannot_connect"}, None
    except Exception:
        LOGGER.exception("Unexpected error while connecting to the hub")
        return {"base": "unknown"}, None


async def probe_hub(data: Mapping[str, Any]) -> Inventory:
    """Authenticate to the hub once and return its inventory.

    Raises:
        HubAuthError: wrong hub secret.
        HubError: the hub cannot be reached or spoke nonsense.

    """
    client = HubClient(data[CONF_HOST], data[CONF_PORT], data[CONF_SECRET])
    try:
        return await client.connect()
    finally:
        await client.close()
