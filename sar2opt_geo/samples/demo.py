"""The demo's real sample pair and its side-by-side picture (real SAR | translation | real optical).

The package bundles one small real Sentinel-1 / Sentinel-2 pair (``samples/data/``, 512 x 512 px
of a Los Angeles tile from the held-out validation area; "Contains modified Copernicus Sentinel
data 2020"), so that the first picture a user sees is an honest one: the model's translation of
real SAR between the SAR itself and the real optical image of the same place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_file

__all__ = ["ATTRIBUTION", "SAMPLE_DIR", "SamplePair", "bundled_pair", "side_by_side"]

SAMPLE_DIR = Path(__file__).with_name("data")
ATTRIBUTION = "Contains modified Copernicus Sentinel data 2020"


@dataclass(frozen=True)
class SamplePair:
    """A co-registered real SAR and optical GeoTIFF on one grid."""

    sar: Path
    optical: Path
    description: str


def bundled_pair() -> SamplePair:
    """The bundled real pair: Sentinel-1A VH (2020-11-07) and Sentinel-2A RGB (2020-11-04), 512 px, 10 m."""
    return SamplePair(
        SAMPLE_DIR / "S1A_IW_GRDH_20201107_VH_la156_512px.tif",
        SAMPLE_DIR / "S2A_MSIL1C_20201104_T11SMT_RGB_la156_512px.tif",
        "Los Angeles (validation-area tile 156, not trained on), 512 x 512 px at 10 m",
    )


def _sar_gray(path: Path) -> tuple[np.ndarray, tuple]:
    """SAR band 1 as 8-bit gray: uint8 files as stored (linear / p99); float dB (or linear) over -25..0 dB."""
    import rasterio

    with rasterio.open(path) as src:
        a = src.read(1, masked=True)
        grid = (src.crs, src.transform, src.height, src.width)
    if a.dtype == np.uint8:
        g = a.filled(255).astype(np.float32)
    else:
        v = a.astype(np.float32).filled(np.nan)
        db = v if np.nanmin(v) < 0 else 10 * np.log10(np.maximum(v, 1e-10))
        g = np.where(np.isfinite(db), np.clip((db + 25.0) / 25.0, 0, 1) * 255, 255)
    return np.round(g).astype(np.uint8), grid


def _rgb_on_grid(path: Path, grid: tuple) -> np.ndarray:
    """RGB (uint8, nodata white) of ``path`` resampled onto ``grid`` = (crs, transform, height, width)."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    crs, transform, h, w = grid
    with rasterio.open(path) as src:
        if src.crs == crs and src.transform.almost_equals(transform) and (src.height, src.width) == (h, w):
            rgb, mask = src.read([1, 2, 3]), src.dataset_mask()
        else:
            rgb = np.zeros((3, h, w), np.uint8)
            mask = np.zeros((h, w), np.uint8)
            for i in range(3):
                reproject(rasterio.band(src, i + 1), rgb[i], dst_crs=crs, dst_transform=transform,
                          resampling=Resampling.bilinear)
            reproject(src.dataset_mask(), mask, src_crs=src.crs, src_transform=src.transform, dst_crs=crs,
                      dst_transform=transform, resampling=Resampling.nearest)
    rgb = np.moveaxis(rgb[:3], 0, -1).copy()
    rgb[mask == 0] = 255
    return rgb


def side_by_side(
    sar: str | os.PathLike, translation: str | os.PathLike, dst_path: str | os.PathLike,
    optical: str | os.PathLike | None = None, title: str = "", attribution: str | None = ATTRIBUTION,
) -> Path:
    """Write a PNG: SAR input | translation | real optical (when given), captioned, on the SAR's grid.

    The translation (and the optical image) are resampled onto the SAR's grid when they are on
    another one (bilinear). Written to a temporary name, then renamed.
    """
    from PIL import Image, ImageDraw, ImageFont

    sar, translation, dst_path = Path(sar), Path(translation), Path(dst_path)
    gray, grid = _sar_gray(sar)
    panels = [(np.repeat(gray[..., None], 3, -1), "SAR input (VH, linear / p99)" if gray.dtype == np.uint8 else "SAR"),
              (_rgb_on_grid(translation, grid), "translation (sar2opt)")]
    if optical is not None:
        panels.append((_rgb_on_grid(Path(optical), grid), "real optical (Sentinel-2)"))
    h, w = gray.shape
    gap, head = 8, 28
    foot = 22 if attribution else 0
    canvas = Image.new("RGB", (len(panels) * w + (len(panels) - 1) * gap, h + head + foot + (20 if title else 0)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=16)
    small = ImageFont.load_default(size=13)
    y0 = 0
    if title:
        draw.text((4, 2), title, fill="black", font=small)
        y0 = 20
    for i, (img, label) in enumerate(panels):
        x = i * (w + gap)
        canvas.paste(Image.fromarray(img), (x, y0 + head))
        draw.text((x + 4, y0 + 5), label, fill="black", font=font)
    if attribution:
        draw.text((4, y0 + head + h + 4), attribution, fill="black", font=small)
    with atomic_file(dst_path) as tmp:
        canvas.save(tmp, format="PNG")
    return dst_path
