"""Out-of-region side by side for docs/TRAINING.md: SAR | model alone | default output | real optical.

A SEN12MS-CR patch (Sentinel-1 VV+VH dB, Sentinel-2 L1C; ../shared/data/pairs/sen12ms_cr), far from
the Los Angeles/Texas tiles the bundled model was trained on, translated with the bundled model
through the public API (``translate``) with and without ``keep_structure``:

    .venv/bin/python scripts/out_of_region_figure.py [PATCH_ID] [OUT.png]

Defaults: the first patch, docs/img/out_of_region_sen12ms.png (1200 px wide, 256 colours).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SAR2OPT_DATA", ROOT.parent / "shared" / "data")) / "pairs" / "sen12ms_cr"


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.nan_to_num(x, nan=1.0), 0, 1) * 255).astype(np.uint8)


def main(patch: str | None = None, out: str | None = None) -> Path:
    from sar2opt_geo import translate
    from sar2opt_geo.io.atomic import atomic_file

    s1 = min((DATA / "s1").glob("*.tif")) if patch is None else DATA / "s1" / f"{patch}.tif"
    s2 = DATA / "s2" / s1.name
    dst = Path(out or ROOT / "docs" / "img" / "out_of_region_sen12ms.png")
    with rasterio.open(s1) as src:
        vh_db = src.read(2).astype(np.float32)
    with rasterio.open(s2) as src:
        opt = src.read([4, 3, 2]).astype(np.float32)
    opt = opt / np.percentile(opt.reshape(3, -1), 99, axis=1)[:, None, None]
    panels = [(np.repeat(_u8((vh_db + 25) / 25)[..., None], 3, -1), "Sentinel-1 VH (dB)")]
    with tempfile.TemporaryDirectory() as tmp:
        for keep, label in ((False, "model alone"), (True, "default (--keep-structure)")):
            path = Path(tmp) / f"{keep}.tif"
            translate(s1, path, bands="2", keep_structure=keep, dtype="float32", match_input_grid=True,
                      precision="fp32", device="cpu")
            with rasterio.open(path) as src:
                panels.append((np.moveaxis(_u8(src.read()), 0, -1), label))
    panels.append((np.moveaxis(_u8(opt), 0, -1), "Sentinel-2 (bands / p99)"))
    scale, gap, head, foot = 2, 8, 26, 20
    h, w = panels[0][0].shape[:2]
    canvas = Image.new("RGB", (len(panels) * (w * scale + gap) - gap, h * scale + head + foot), "white")
    draw = ImageDraw.Draw(canvas)
    font, small = ImageFont.load_default(size=15), ImageFont.load_default(size=12)
    for i, (img, label) in enumerate(panels):
        x = i * (w * scale + gap)
        canvas.paste(Image.fromarray(img).resize((w * scale, h * scale), Image.NEAREST), (x, head))
        draw.text((x + 4, 5), label, fill="black", font=font)
    draw.text((4, head + h * scale + 4), f"SEN12MS-CR {s1.stem} (CC-BY-4.0), bundled s1vh_to_rgb; not in its "
              "training region", fill="black", font=small)
    small_canvas = canvas.resize((1200, round(canvas.height * 1200 / canvas.width)), Image.LANCZOS)
    with atomic_file(dst) as tmp_png:  # 1200 px wide, 256 colours: small enough for the repository
        small_canvas.quantize(256, method=Image.Quantize.MEDIANCUT).save(tmp_png, format="PNG", optimize=True)
    return dst


if __name__ == "__main__":
    print(main(*sys.argv[1:3]))
