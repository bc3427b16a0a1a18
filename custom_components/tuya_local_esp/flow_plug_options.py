"""Options flow of a directly connected plug: pick its layout (profile) and divisors by hand.

For a plug whose layout detection could not tell (repair issue ``unknown_layout``) or got wrong.
The choice is stored as a profile in wire form under ``entry.options["profile"]``; it wins over
the detected one and is never corrected automatically (``coordinator.entry_profile``). Choosing
"detected" with the detected divisors removes it again. Names for the outlets' switches (comma
separated, in outlet order; blank keeps "Outlet n") go to ``entry.options["outlet_names"]``.
"""

from __future__ import annotations

from typing import Any, Final

import probatio as vol
from homeassistant.config_entries import ConfigFlowResult, OptionsFlowWithReload
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from .const import CONF_OUTLET_NAMES, CONF_PROFILE
from .coordinator import entry_profile
from .profiles import BUILTIN_PROFILES, Profile, ProfileError, builtin_profile
from .profiles.model import DIVISORS

#: The layout choice that keeps the detected profile (only its divisors may change).
DETECTED: Final = "detected"
CONF_LAYOUT: Final = "layout"
CONF_OUTLETS: Final = "outlets"
CONF_USB: Final = "usb"
CONF_POWER_DIVISOR: Final = "power_divisor"
CONF_VOLTAGE_DIVISOR: Final = "voltage_divisor"
#: Layout names as the form's layout selector shows them (strings.json ``selector.layout``), and
#: ``custom`` (a profile built from a devices.json mapping), for the form's description.
LAYOUT_LABELS: Final = {
    "standard": "Standard (17–20)",
    "legacy": "Legacy (3–6)",
    "inwall": "In-wall (20–23)",
    "vendor": "Vendor (101–104)",
    "switch": "Switch only",
    "custom": "From devices.json",
}


def layout_summary(profile: Profile) -> str:
    """What the form says of a profile: ``Standard (17–20), 4 outlets + USB``."""
    count = len(profile.switches)
    outlets = f"{count} outlet{'s' if count > 1 else ''}"
    usb = " + USB" if profile.usb is not None else ""
    return f"{LAYOUT_LABELS.get(profile.name, profile.name)}, {outlets}{usb}"


def _divisors() -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(options=[str(d) for d in DIVISORS], mode=SelectSelectorMode.DROPDOWN)
    )


def outlet_names(text: str) -> list[str]:
    """The comma-separated outlet names of the form, blanks kept as "" (translated default)."""
    names = [name.strip() for name in text.split(",")]
    return [] if not any(names) else names


def profile_schema(current: Profile, names: list[str]) -> vol.Schema:
    """Layout, outlets, USB switch, power and voltage divisors, outlet names (defaults: current)."""
    return vol.Schema(
        {
            vol.Required(CONF_LAYOUT, default=DETECTED): SelectSelector(
                SelectSelectorConfig(
                    options=[DETECTED, *BUILTIN_PROFILES],
                    mode=SelectSelectorMode.DROPDOWN,
                    translation_key=CONF_LAYOUT,
                )
            ),
            vol.Required(CONF_OUTLETS, default=len(current.switches)): NumberSelector(
                NumberSelectorConfig(min=1, max=6, step=1, mode=NumberSelectorMode.BOX)
            ),
            vol.Required(CONF_USB, default=current.usb is not None): BooleanSelector(),
            vol.Required(
                CONF_POWER_DIVISOR, default=str(current.power.divisor if current.power else 10)
            ): _divisors(),
            vol.Required(
                CONF_VOLTAGE_DIVISOR,
                default=str(current.voltage.divisor if current.voltage else 10),
            ): _divisors(),
            # suggested, not default: a field the user clears is left out of the input, and a
            # default would bring the old names back
            vol.Optional(
                CONF_OUTLET_NAMES, description={"suggested_value": ", ".join(names)}
            ): TextSelector(),
        }
    )


class PlugOptionsFlow(OptionsFlowWithReload):
    """Pick the plug's layout and divisors; the entry reloads with the new entities."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Straight to the layout form (``strings.json`` has its texts under ``plug_profile``)."""
        return await self.async_step_plug_profile()

    async def async_step_plug_profile(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the layout, outlets, USB switch and divisors."""
        errors: dict[str, str] = {}
        detected = entry_profile(self.config_entry, picked=False)
        if user_input is not None:
            layout = user_input[CONF_LAYOUT]
            power, voltage = (
                int(user_input[CONF_POWER_DIVISOR]),
                int(user_input[CONF_VOLTAGE_DIVISOR]),
            )
            try:
                base = (
                    detected
                    if layout == DETECTED
                    else builtin_profile(
                        layout, int(user_input[CONF_OUTLETS]), user_input[CONF_USB]
                    )
                )
            except ProfileError:
                errors["base"] = "invalid_layout"
            else:
                chosen = base.with_divisors(power, voltage)
                options: dict[str, Any] = {}
                if chosen != detected:
                    options[CONF_PROFILE] = chosen.to_wire()
                if names := outlet_names(user_input.get(CONF_OUTLET_NAMES, "")):
                    options[CONF_OUTLET_NAMES] = names
                return self.async_create_entry(data=options)
        shown = entry_profile(self.config_entry)
        return self.async_show_form(
            step_id="plug_profile",
            data_schema=self.add_suggested_values_to_schema(
                profile_schema(shown, self.config_entry.options.get(CONF_OUTLET_NAMES, [])),
                user_input,
            ),
            errors=errors,
            description_placeholders={"layout": layout_summary(detected)},
        )
