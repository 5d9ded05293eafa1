"""``sar2opt info INPUT``: what the scene reader sees (sensor, bands, calibration, georeferencing)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import add_verbosity

__all__ = ["add_parser", "format_text", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "info",
        help="describe a SAR or optical scene as the readers see it",
        description=(
            "Print what sar2opt reads from INPUT: sensor, product id, bands with their quantity and "
            "scale, calibration, CRS, size, pixel spacing and kind of georeferencing. Reads metadata only."
        ),
    )
    p.add_argument("input", metavar="INPUT", help="scene: GeoTIFF, Sentinel-1/-2 SAFE folder or zip, PALSAR-2 product folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--bands", nargs="+", metavar="BAND", help="only these bands (names like VH, red, b1, or 1-based indices)")
    p.add_argument("--sensor", help="force the sensor family of a plain raster (Sentinel-1, ALOS-2, SAR, Sentinel-2, Landsat-8, optical)")
    p.add_argument(
        "--units", choices=("db", "linear", "amplitude", "scaled", "reflectance", "dn"),
        help="how a plain raster stores its values (default: detected)",
    )
    p.add_argument("--calibration-factor-db", type=float, metavar="DB", help="PALSAR-2 calibration factor (default: LED file, else -83.0)")
    p.add_argument(
        "--thermal-noise-removal", action=argparse.BooleanOptionalAction, default=True,
        help="Sentinel-1 SAFE: subtract the thermal noise LUTs (default: on)",
    )
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def _describe(args: argparse.Namespace) -> dict[str, Any]:
    from ..sensors import open_scene

    bands = [int(b) if b.isdigit() else b for b in args.bands] if args.bands else None
    with open_scene(
        args.input, bands, sensor=args.sensor, units=args.units,
        calibration_factor_db=args.calibration_factor_db, thermal_noise_removal=args.thermal_noise_removal,
    ) as scene:
        d = scene.describe()
        d["is_sar"] = scene.is_sar
        d["georeferencing"] = "gcps" if scene.gcps else ("transform" if scene.georeferenced else "none")
        if scene.gcps:
            d["gcp_crs"] = scene.gcps[1].to_string() if scene.gcps[1] else None
        t = scene.transform
        if scene.crs is not None and t is not None and not t.is_identity:
            # the envelope of all four corners (rotated and south-up rasters too)
            xs, ys = zip(*(t @ (c, r) for c in (0, scene.width) for r in (0, scene.height)))
            d["bounds"] = [min(xs), min(ys), max(xs), max(ys)]
    return d


def format_text(d: dict[str, Any]) -> str:
    """Human-readable lines for a :meth:`Scene.describe` dict."""
    lines = [
        f"Input:          {d['path']}",
        f"Sensor:         {d['sensor']}" + (f" ({d['frequency_band']}-band SAR)" if d.get("frequency_band") else ""),
        f"Product:        {d['product_id']}",
        f"Size:           {d['size'][0]} x {d['size'][1]} pixels (width x height)",
    ]
    spacing = d.get("pixel_spacing_m")
    lines.append(f"Pixel spacing:  {spacing:.2f} m" if spacing else "Pixel spacing:  unknown")
    geo = d.get("georeferencing", "none")
    if geo == "gcps":
        lines.append(f"Georeferencing: {d['gcps']} GCPs in {d.get('gcp_crs')}")
    elif geo == "transform":
        lines.append(f"Georeferencing: CRS {d['crs']}, transform {tuple(round(v, 6) for v in d['transform'])}")
        if d.get("bounds"):
            lines.append("Bounds:         (" + ", ".join(f"{v:.3f}" for v in d["bounds"]) + ") (left, bottom, right, top)")
    else:
        lines.append("Georeferencing: none")
    lines.append(f"Calibration:    {d['calibration']}")
    lines.append("Bands:")
    for name, b in d["bands"].items():
        lines.append(f"  {name:<8} {b['quantity']} ({b['scale']}): {b['description']}")
    if d.get("metadata"):
        lines.append("Metadata:")
        for k, v in d["metadata"].items():
            lines.append(f"  {k}: {v}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    d = _describe(args)
    print(json.dumps(d, indent=2, default=str) if args.json else format_text(d))
    return 0
