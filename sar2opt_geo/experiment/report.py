"""Figures and the Markdown report of :mod:`sar2opt_geo.experiment.run` (matplotlib, Agg backend).

Panels follow the article's layout: SAR input | SAR->RGB output | gray->RGB output | real
optical where available, one row per sample; scene panels add the composites. Every image
is shown on the [0, 1] scale without further stretching, except the SAR input (sigma0 dB
over -25..0 dB for scenes; the paired data's own 8-bit scaling for pairs).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..io.atomic import atomic_file

__all__ = ["choose_crops", "paired_panel", "scene_panels", "write_report"]

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _hwc(unit: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` unit values -> ``(H, W, 3)`` for imshow (1 band repeated; NaN -> white)."""
    u = np.asarray(unit, dtype=np.float32)
    if u.ndim == 2:
        u = u[None]
    if u.shape[0] == 1:
        u = np.repeat(u, 3, 0)
    u = np.moveaxis(np.clip(u[:3], 0, 1), 0, -1).copy()
    u[~np.isfinite(u).all(-1)] = 1.0
    return u


def _save(fig: Any, path: Path) -> Path:
    plt = _plt()
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=100, metadata={"Software": None})  # no timestamps: same inputs, same bytes
    finally:
        plt.close(fig)
    return path


def _grid(rows: Sequence[Sequence[tuple[str, np.ndarray | None]]], title: str, path: Path) -> Path:
    plt = _plt()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.3 * n_cols, 2.45 * n_rows + 0.4), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row):
                ax.axis("off")
                continue
            label, img = row[c]
            if img is None:
                ax.text(0.5, 0.5, "not available", ha="center", va="center", fontsize=8, color="0.4")
            else:
                ax.imshow(_hwc(img), interpolation="nearest")
            ax.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def paired_panel(samples: Sequence[dict[str, Any]], path: Path, sar_name: str = "", gray_name: str = "") -> Path:
    """One row per held-out pair: SAR | SAR->RGB | gray->RGB(SAR) | gray of optical | gray->RGB(gray) | optical."""
    rows = []
    for s in samples:
        rows.append([
            (f"{s['key']}: SAR input", s["sar"]),
            ("SAR->RGB output", s["sar2rgb"]),
            ("gray->RGB fed the SAR", s["gray2rgb_sar"]),
            ("gray of real optical", s["gray"]),
            ("gray->RGB fed that gray", s["gray2rgb_gray"]),
            ("real optical", s["optical"]),
        ])
    title = f"Held-out pairs. SAR->RGB: {sar_name}; gray->RGB: {gray_name}"
    return _grid(rows, title, path)


def choose_crops(valid: np.ndarray, crop: int, n: int, seed: int, min_valid: float = 0.9) -> list[Window]:
    """Up to ``n`` windows of ``crop`` px with >= ``min_valid`` valid pixels, chosen from ``seed``.

    Candidates lie on a half-crop grid; a scene smaller than ``crop`` gives one window: itself.
    """
    h, w = valid.shape
    if h <= crop and w <= crop:
        return [Window(col_off=0, row_off=0, width=w, height=h)]
    ch, cw = min(crop, h), min(crop, w)
    step = max(1, crop // 2)
    cands = []
    for r in range(0, h - ch + 1, step):
        for c in range(0, w - cw + 1, step):
            if valid[r:r + ch, c:c + cw].mean() >= min_valid:
                cands.append(Window(col_off=c, row_off=r, width=cw, height=ch))
    if not cands:
        return [Window(col_off=(w - cw) // 2, row_off=(h - ch) // 2, width=cw, height=ch)]
    idx = np.random.default_rng(seed).choice(len(cands), size=min(n, len(cands)), replace=False)
    return [cands[i] for i in sorted(idx)]


def _read_unit(path: str | Path, window: Window) -> np.ndarray:
    with rasterio.open(path) as ds:
        data = ds.read([1, 2, 3], window=window, out_dtype="float32")
        if ds.dtypes[0] == "uint8":
            data /= 255.0
        data[:, ds.read_masks(1, window=window) == 0] = np.nan
    return data


def _read_optical(path: str | Path, window: Window) -> np.ndarray:
    """RGB of a co-registered optical image on [0, 1]: Sentinel-2 13-band (4, 3, 2), reflectance 0..0.3."""
    with rasterio.open(path) as ds:
        bands = [4, 3, 2] if ds.count >= 13 else [1, 2, 3]
        data = ds.read(bands, window=window, out_dtype="float32")
        if ds.dtypes[0] == "uint8":
            return data / 255.0
        return np.clip(data / 10000.0 / 0.3, 0, 1)


def scene_panels(
    part: dict[str, Any], fig_dir: Path, crop: int = 256, n_crops: int = 2, seed: int = 0,
    sar_name: str = "", gray_name: str = "",
) -> list[Path]:
    """Panels for crops of one scene: inputs and translations on top, the four composites below."""
    from ..radiometry import to_db
    from ..sensors import open_scene
    from .composite import DEFAULT_DB_RANGES, stretch

    with rasterio.open(part["plain"]["path"]) as ds:
        # choose crops on a decimated mask (longest side <= 2048 px): bounded memory on big scenes
        scale = max(1, math.ceil(max(ds.width, ds.height) / 2048))
        shape = (math.ceil(ds.height / scale), math.ceil(ds.width / scale))
        valid = ds.read_masks(1, out_shape=shape, resampling=Resampling.nearest) > 0
        height, width = ds.height, ds.width
    windows = [
        Window(col_off=w.col_off * scale, row_off=w.row_off * scale, width=min(crop, width - w.col_off * scale),
               height=min(crop, height - w.row_off * scale))
        for w in choose_crops(valid, max(1, crop // scale), n_crops, seed)
    ]
    co, _cross = part["bands"]
    out = []
    with open_scene(part["path"]) as scene:
        for k, w in enumerate(windows):
            sar_db = to_db(scene.read(co, w))
            sar = stretch(sar_db[None], DEFAULT_DB_RANGES[:1])
            optical = _read_optical(part["optical"], w) if part.get("optical") else None
            rows: list[list[tuple[str, np.ndarray | None]]] = [
                [
                    (f"SAR input {co} (-25..0 dB)", sar),
                    (f"SAR->RGB of {co}", _read_unit(part["sar2rgb"]["translations"][0], w)),
                    (f"gray->RGB of {co}", _read_unit(part["gray2rgb"]["translations"][0], w)),
                    ("real optical", optical),
                ],
                [
                    ("plain composite (fixed dB)", _read_unit(part["plain"]["path"], w)),
                    ("plain composite (2-98 %)", _read_unit(part["plain_percentile"]["path"], w)),
                    ("composite via SAR->RGB", _read_unit(part["sar2rgb"]["path"], w)),
                    ("composite via gray->RGB", _read_unit(part["gray2rgb"]["path"], w)),
                ],
            ]
            tag = " (SYNTHETIC product)" if part.get("synthetic") else ""
            title = (f"{part['label']}{tag}: rows {w.row_off}-{w.row_off + w.height}, cols {w.col_off}-"
                     f"{w.col_off + w.width}. SAR->RGB: {sar_name}; gray->RGB: {gray_name}")
            out.append(_grid(rows, title, fig_dir / f"scene_{part['label']}_crop{k + 1}.png"))
    return out


# -- Markdown --------------------------------------------------------------------------------------


def _f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, float):
        return "inf" if math.isinf(x) else "nan" if math.isnan(x) else f"{x:.{nd}f}"
    return str(x)


def _model_section(key: str, m: dict[str, Any]) -> list[str]:
    inp = m["input"]
    dom = f"{inp['sensor']} {'/'.join(inp['bands'])} {inp['quantity']}, {inp['normalisation']}"
    if inp.get("db_range"):
        dom += f" {inp['db_range']} dB"
    if inp.get("percentile"):
        dom += f" p{inp['percentile']:g}"
    if inp.get("quantize_levels"):
        dom += f", {inp['quantize_levels']} levels"
    dom += f", {inp['pixel_spacing_m']:g} m"
    lines = [
        f"### {key}: `{m['name']}`",
        "",
        "| field | value |",
        "|---|---|",
        f"| file | `{m['path']}` |",
        f"| card hash (sha256/16 of the file) | `{m['card_hash']}` |",
        f"| architecture | `{m['architecture']}` {m['architecture_args']} |",
        f"| parameters | {m['parameters']:,} |",
        f"| input domain | {dom} |",
        f"| output | {', '.join(m['output']['bands'])}: {m['output']['scaling']} |",
    ]
    if m.get("description"):
        lines.append(f"| description | {m['description']} |")
    for k in ("data", "command", "epochs", "steps", "seconds", "device"):
        if k in (m.get("training") or {}):
            lines.append(f"| training {k} | {m['training'][k]} |")
    if m.get("card_metrics"):
        lines.append(f"| metrics in the card | `{m['card_metrics']}` |")
    return lines + [""]


def write_report(metrics: dict[str, Any], path: Path) -> Path:
    """Write ``report.md``: command, model cards, data, tables, figures, and how to read them."""
    cfg = metrics["config"]
    L: list[str] = ["# The two-generator experiment", ""]
    L += ["Command (run from the project root):", "", "```", cfg.get("command") or "(called from Python)", "```", ""]
    env = metrics["environment"]
    L += [(f"sar2opt_geo {env['sar2opt_geo']}, torch {env['torch']}, Python {env['python']}, {env['threads']} "
          f"torch threads; seed {cfg['seed']}; device {cfg['device']}; run time {metrics.get('seconds', '?')} s."), ""]
    L += ["## Models", ""]
    L += _model_section("SAR->RGB", metrics["models"]["sar2rgb"])
    L += _model_section("gray->RGB", metrics["models"]["gray2rgb"])

    if "paired" in metrics:
        p = metrics["paired"]
        L += ["## Paired test data", ""]
        L += [(f"Data: `{p['data']}` ({p['pairs_total']} pairs). Split `{p['split']}` (the trainer's default; "
              f"{p['pairs_training_area']} pairs in the training area); evaluated: {len(p['pairs_evaluated'])} "
              f"held-out pairs ({', '.join(p['pairs_evaluated'])}), "
              f"{'centre crops of ' + str(p['eval_crop']) + ' px' if p['eval_crop'] else 'whole images'}."), ""]
        for name, keys in (p.get("trained_on_evaluated_pairs") or {}).items():
            L += [(f"**Warning:** the {name} model's card lists evaluated pairs {', '.join(keys)} among its training "
                  "pairs: its numbers below are optimistic."), ""] if keys else []
        if p.get("trained_on_evaluated_pairs") and not any(p["trained_on_evaluated_pairs"].values()):
            L += ["None of the evaluated pairs is among the training pairs listed in either model card.", ""]
        L += [("| generator (input) | images | PSNR (dB) | SSIM | PSNR 160 m | SSIM 160 m | L1 | gradient r "
              "| grad r 2x2 | contrast |"), "|---|---|---|---|---|---|---|---|---|---|"]
        nan = float("nan")
        for name, row in p["table"].items():
            L.append(f"| {name} | {row['images']} | {_f(row['psnr'], 2)} | {_f(row['ssim'])} "
                     f"| {_f(row.get('psnr_160m', nan), 2)} | {_f(row.get('ssim_160m', nan))} | {_f(row['l1'])} "
                     f"| {_f(row.get('grad_r', nan))} | {_f(row.get('grad_r2', nan))} | {_f(row.get('contrast', nan))} |")
        base = p["table"].get("constant colour (baseline)")
        L += ["", (f"Baseline: a constant image of the {p['baseline']['note']} "
              f"(RGB {', '.join(f'{c:.3f}' for c in p['baseline']['colour'])} on the [0, 1] scale).")]
        if base:
            verdicts = []
            for name, row in p["table"].items():
                if name.startswith("constant"):
                    continue
                better = [k.upper() for k in ("psnr", "ssim") if row[k] > base[k]] + (["L1"] if row["l1"] < base["l1"] else [])
                better += ["gradient r"] if row.get("grad_r", 0.0) > base.get("grad_r", 0.0) else []
                verdicts.append(f"{name}: beats the baseline on {', '.join(better) if better else 'no metric'}")
            L += ["", "; ".join(verdicts) + "."]
        L += ["", "Metric definitions: " + "; ".join(f"{k}: {v}" for k, v in p["notes"].items()) + ".", ""]
        if "figures/paired_panels.png" in metrics.get("figures", []):
            L += ["![held-out pairs](figures/paired_panels.png)", ""]

    for s in metrics.get("scenes", []):
        tag = " — SYNTHETIC product (written by sar2opt_geo.samples.synthetic; no real PALSAR-2 L2.1 is available here)" if s["synthetic"] else ""
        L += [f"## Scene `{s['label']}`{tag}", ""]
        L += [f"`{s['path']}`: {s['size'][0]} x {s['size'][1]} px, bands {s['bands'][0]} (co-pol) and "
              f"{s['bands'][1]} (cross-pol)" + (f"; co-registered optical: `{s['optical']}`" if s.get("optical") else "") + ".", ""]
        L += ["| composite | file | stretch ranges (R; G; B) |", "|---|---|---|"]
        for key, label in (("plain", "plain"), ("plain_percentile", "plain, percentile"), ("sar2rgb", "via SAR->RGB"),
                           ("gray2rgb", "via gray->RGB")):
            r = s[key]
            unit = "dB" if key.startswith("plain") else "luminance"
            rng = "; ".join(f"{lo:.3g}..{hi:.3g}" for lo, hi in r["ranges"])
            rel = os.path.relpath(r["path"], path.parent)
            L.append(f"| {label} ({r['stretch']}) | [`{rel}`]({rel}) | {rng} {unit} |")
        L += ["", ("Structure kept (each composite against the plain composite with the same 2-98 % stretch; "
              "per band R / G / B):"), "", "| comparison | SSIM R | SSIM G | SSIM B | Pearson R | Pearson G | Pearson B |",
              "|---|---|---|---|---|---|---|"]
        for comp, bands in s["structure"].items():
            L.append(f"| {comp} | " + " | ".join(_f(b["ssim"]) for b in bands) + " | "
                     + " | ".join(_f(b["pearson"]) for b in bands) + " |")
        warns = sorted({w for k in ("sar2rgb", "gray2rgb") for w in s[k]["warnings"]})
        if warns:
            L += ["", "Translation warnings (expected: the article feeds each generator bands it was not trained on):", ""]
            L += [f"- {w}" for w in warns]
        figs = [f for f in metrics.get("figures", []) if f.startswith(f"figures/scene_{s['label']}_")]
        L += [""] + [f"![{Path(f).stem}]({f})" for f in figs] + [""]

    L += ["## How the composites are made", "",
          ("- Plain: R = co-pol sigma0 dB, G = cross-pol dB, B = co - cross dB; fixed stretch R -25..0, G -32..-5, "
          "B 0..15 dB, or 2-98 % percentiles of the scene's valid pixels (streaming histograms, 0.01 dB bins)."),
          ("- Via a generator (the article's procedure): co-pol and cross-pol translated separately; "
          "L = 0.299 R + 0.587 G + 0.114 B of each output; R = L_co, G = L_cross, B = L_co - L_cross; each band "
          "stretched to its scene 2-98 % percentiles."),
          ("- SSIM: 11 x 11 Gaussian window (sigma 1.5) per 256 px block with >= 99 % valid pixels, averaged "
          "weighted by valid pixels; Pearson r over every pixel valid in both composites."), "",
          "## Files", "",
          "- `metrics.json`: every number above, the configuration and the model cards;",
          "- `paired_metrics.csv`, `scene_structure.csv`: the tables;",
          "- `composites/`: GeoTIFFs (COG, uint8 RGB + mask, scene grid) with PNG quicklooks, and the per-band translations;",
          "- `figures/`: the panels.", ""]
    path.write_text("\n".join(L))
    return path
