"""Form schemas of the config flow and of the hub's plug subentry flow (no logic, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import probatio as vol
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from .const import (
    CONF_DEVICE_ID,
    CONF_LOCAL_KEY,
    CONF_PROTOCOL_VERSION,
    CONF_SECRET,
    DEFAULT_HUB_PORT,
    DEFAULT_NAME,
    DEFAULT_PORT,
    DEFAULT_VERSION,
    HUB_PROTOCOL_VERSIONS,
    PROTOCOL_VERSIONS,
)

#: The pick_plug choice that leads to the form (its label is translated).
MANUAL_CHOICE = "manual"


def _password() -> TextSelector:
    return TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def _port() -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
    )


def version_option(version: str) -> str:
    """The selector option of a stored protocol version: ``"3.3"`` -> ``"3_3"``, ``"auto"``.

    hassfest accepts only ``[a-z0-9-_]+`` as translation keys of selector options, so the
    options are ``3_1`` ... ``3_5``; entries keep the dotted form the protocol code uses.
    """
    return version.replace(".", "_")


def version_from_option(option: str) -> str:
    """The stored protocol version of a selector option: ``"3_3"`` -> ``"3.3"``, ``"auto"``."""
    return option.replace("_", ".")


def with_stored_version(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a form's input with the protocol version in the stored, dotted form."""
    return {
        **user_input,
        CONF_PROTOCOL_VERSION: version_from_option(user_input[CONF_PROTOCOL_VERSION]),
    }


def with_option_version(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of stored data with the protocol version as a selector option (form defaults)."""
    out = dict(values)
    if CONF_PROTOCOL_VERSION in out:
        out[CONF_PROTOCOL_VERSION] = version_option(str(out[CONF_PROTOCOL_VERSION]))
    return out


def _versions(versions: list[str]) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(
            options=[version_option(v) for v in versions],
            mode=SelectSelectorMode.DROPDOWN,
            translation_key=CONF_PROTOCOL_VERSION,
        )
    )


def plug_schema(defaults: Mapping[str, Any], *, with_device_id: bool) -> vol.Schema:
    """The plug form; without the device id (and with an optional local key) to reconfigure."""
    fields: dict[Any, Any] = {
        vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, vol.UNDEFINED)): TextSelector(),
    }
    if with_device_id:
        fields[
            vol.Required(CONF_DEVICE_ID, default=defaults.get(CONF_DEVICE_ID, vol.UNDEFINED))
        ] = TextSelector()
    key_marker = vol.Required if with_device_id else vol.Optional  # reconfigure: optional
    fields[key_marker(CONF_LOCAL_KEY)] = _password()
    fields[
        vol.Required(
            CONF_PROTOCOL_VERSION,
            default=version_option(str(defaults.get(CONF_PROTOCOL_VERSION, DEFAULT_VERSION))),
        )
    ] = _versions(PROTOCOL_VERSIONS)
    fields[vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT))] = _port()
    if with_device_id:
        fields[vol.Optional(CONF_NAME, default=defaults.get(CONF_NAME, DEFAULT_NAME))] = (
            TextSelector()
        )
    return vol.Schema(fields)


def pick_plug_schema(found: Iterable[Mapping[str, Any]]) -> vol.Schema:
    """A list of the plugs heard on the LAN, and "enter the details myself"."""
    options = [
        SelectOptionDict(
            value=f[CONF_DEVICE_ID],
            label=f"{f[CONF_DEVICE_ID]} ({f[CONF_HOST]}, protocol {f['version']})",
        )
        for f in found
    ]
    options.append(SelectOptionDict(value=MANUAL_CHOICE, label=MANUAL_CHOICE))
    return vol.Schema(
        {
            vol.Required(CONF_DEVICE_ID): SelectSelector(
                SelectSelectorConfig(
                    options=options, mode=SelectSelectorMode.LIST, translation_key="pick_plug"
                )
            )
        }
    )


def discovery_confirm_schema(device_id: str) -> vol.Schema:
    """Only the local key and a name (default: "Tuya plug" and the id's last 4 characters)."""
    return vol.Schema(
        {
            vol.Required(CONF_LOCAL_KEY): _password(),
            vol.Optional(CONF_NAME, default=f"{DEFAULT_NAME} {device_id[-4:]}"): TextSelector(),
        }
    )


def secret_schema(field: str) -> vol.Schema:
    """One password field: the new local key or hub secret (reauth)."""
    return vol.Schema({vol.Required(field): _password()})


def hub_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    """The hub form: host, port, secret."""
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, vol.UNDEFINED)): TextSelector(),
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_HUB_PORT)): _port(),
            vol.Required(CONF_SECRET): _password(),
        }
    )


def add_hub_plug_schema() -> vol.Schema:
    """A plug for the hub: device id, local key, IPv4 address, version, port, name."""
    return vol.Schema(
        {
            vol.Required(CONF_DEVICE_ID): TextSelector(),
            vol.Required(CONF_LOCAL_KEY): _password(),
            vol.Required(CONF_HOST): TextSelector(),
            vol.Required(CONF_PROTOCOL_VERSION, default=version_option("3.3")): _versions(
                HUB_PROTOCOL_VERSIONS
            ),
            vol.Required(CONF_PORT, default=DEFAULT_PORT): _port(),
            vol.Optional(CONF_NAME, default=DEFAULT_NAME): TextSelector(),
        }
    )


def reconfigure_hub_plug_schema() -> vol.Schema:
    """A plug the hub has: name, IPv4 address, version, port, and a new local key (optional)."""
    return vol.Schema(
        {
            vol.Required(CONF_NAME): TextSelector(),
            vol.Required(CONF_HOST): TextSelector(),
            vol.Optional(CONF_LOCAL_KEY): _password(),
            vol.Required(CONF_PROTOCOL_VERSION): _versions(HUB_PROTOCOL_VERSIONS),
            vol.Required(CONF_PORT, default=DEFAULT_PORT): _port(),
        }
    )
