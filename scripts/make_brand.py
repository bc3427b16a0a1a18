"""Draw the integration's brand images from the geometry in this file.

Writes ``custom_components/tuya_local_esp/brand/``: ``icon.png`` (256 x 256), ``icon@2x.png``
(512 x 512), ``logo.png`` (shortest side 128), ``logo@2x.png`` (256), and the ``dark_`` variants of
each, all PNG with a transparent background, as Home Assistant's brand rules ask
(developers.home-assistant.io, "Brand images"; custom integrations ship them in ``brand/`` since
2026.3). The picture is our own: a wall socket whose two pins are a plug's local link, with a
small chip (the ESP32 hub) under it.

Run: ``.venv/bin/python scripts/make_brand.py`` (Pillow comes with Home Assistant).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "custom_components" / "tuya_local_esp" / "brand"
SS = 4  # supersampling factor for smooth edges

# (light theme, dark theme) colours
PLATE = ((255, 255, 255, 255), (40, 44, 52, 255))
RIM = ((255, 98, 0, 255), (255, 140, 60, 255))  # Tuya-like orange, our own shade
HOLE = ((48, 52, 60, 255), (230, 232, 236, 255))
CHIP = ((3, 169, 244, 255), (79, 195, 247, 255))  # HA blue
TEXT = ((33, 33, 33, 255), (240, 240, 240, 255))


def draw_icon(size: int, dark: bool) -> Image.Image:
    """The square icon: a rounded socket plate, two pin holes and a chip below."""
    t = int(dark)
    s = size * SS
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    m = s * 0.06
    d.rounded_rectangle((m, m, s - m, s - m), radius=s * 0.22, fill=RIM[t])
    m2 = s * 0.14
    d.rounded_rectangle((m2, m2, s - m2, s - m2), radius=s * 0.16, fill=PLATE[t])
    c = s / 2
    r = s * 0.2  # the socket's round face
    d.ellipse((c - r, s * 0.41 - r, c + r, s * 0.41 + r), outline=HOLE[t], width=int(s * 0.035))
    pin = s * 0.045
    for dx in (-0.09, 0.09):
        x = c + dx * s
        y = s * 0.41
        d.ellipse((x - pin, y - pin, x + pin, y + pin), fill=HOLE[t])
    # the chip: a small square with legs, below the socket
    cw = s * 0.2
    cy = s * 0.755
    d.rounded_rectangle(
        (c - cw / 2, cy - cw / 3, c + cw / 2, cy + cw / 3), radius=s * 0.02, fill=CHIP[t]
    )
    for i in range(4):
        x = c - cw / 2 + cw * (i + 0.5) / 4
        d.rectangle(
            (x - s * 0.008, cy + cw / 3, x + s * 0.008, cy + cw / 3 + s * 0.03), fill=CHIP[t]
        )
        d.rectangle(
            (x - s * 0.008, cy - cw / 3 - s * 0.03, x + s * 0.008, cy - cw / 3), fill=CHIP[t]
        )
    return img.resize((size, size), Image.Resampling.LANCZOS)


def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, px)
        except OSError:
            continue
    return ImageFont.load_default(px)


def draw_logo(height: int, dark: bool) -> Image.Image:
    """The landscape logo: the icon followed by the words "Tuya Local ESP"."""
    t = int(dark)
    h = height * SS
    icon = draw_icon(h, dark)
    font = _font(int(h * 0.36))
    text = "Tuya Local ESP"
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    box = probe.textbbox((0, 0), text, font=font)
    w = h + int(h * 0.12) + (box[2] - box[0]) + int(h * 0.05)
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    img.paste(icon, (0, 0), icon)
    d = ImageDraw.Draw(img)
    y = (h - (box[3] - box[1])) / 2 - box[1]
    d.text((h + h * 0.12, y), text, font=font, fill=TEXT[t])
    return img.resize((w // SS, height), Image.Resampling.LANCZOS)


def main() -> int:
    """Write every brand file; print their names and sizes."""
    OUT.mkdir(parents=True, exist_ok=True)
    for dark in (False, True):
        prefix = "dark_" if dark else ""
        files = {
            f"{prefix}icon.png": draw_icon(256, dark),
            f"{prefix}icon@2x.png": draw_icon(512, dark),
            f"{prefix}logo.png": draw_logo(128, dark),
            f"{prefix}logo@2x.png": draw_logo(256, dark),
        }
        for name, img in files.items():
            img.save(OUT / name, optimize=True)
            print(f"{name}: {img.width} x {img.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
