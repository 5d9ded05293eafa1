"""The article's two-generator experiment, as one reproducible run.

Inputs: a SAR->RGB generator and a gray->RGB (colourisation) generator (default: the
bundled ones), an optional folder of paired test data, and one or more dual-pol scenes.
Outputs in ``out_dir``:

* ``metrics.json`` / ``paired_metrics.csv``: PSNR (dB), SSIM, L1, gradient r on the [0, 1] scale of each
  generator against the real optical images of the paired data's **held-out area** (the
  split the trainer uses: :func:`sar2opt_geo.data.split_pairs`, ``auto``, 20 %), beside the
  constant-colour baseline (mean colour of the training part). The SAR->RGB generator gets
  the SAR, the gray->RGB generator the gray of the real optical (its own task) *and*,
  as in the article, the SAR itself. Metrics are H1's (:mod:`sar2opt_geo.training.evaluate`).
* ``composites/``: for each scene the plain composite (fixed dB stretch), the plain
  composite with the percentile stretch, and the generator composites through the SAR->RGB
  and the gray->RGB generators (:mod:`sar2opt_geo.experiment.composite`), GeoTIFF + PNG.
* ``scene_structure.csv``: SSIM and Pearson r per band of each generator composite against
  the plain composite with the *same* stretch rule (percentile 2-98 %) - how much of the
  plain composite's structure each generator keeps, the article's qualitative claim made
  measurable; the fixed-vs-percentile plain pair is listed as a yardstick.
* ``figures/``: panels like the article's (matplotlib, Agg), ``report.md`` tying it together.

Determinism: generators run in eval mode (no dropout), crops and pairs are chosen from
``seed``; two runs with the same inputs give the same numbers.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import platform
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import DatasetError, InputError
from ..options import DEFAULT_MAX_MEMORY_MB
from ..progress import ProgressFn

if TYPE_CHECKING:
    from ..models.loading import Kind
    from .composite import Stretch

__all__ = [
    "OUTPUT_NAMES",
    "ExperimentConfig",
    "ExperimentResult",
    "SceneSpec",
    "optical_partner",
    "removed_on_failure",
    "run_experiment",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneSpec:
    """A dual-pol scene of the experiment; ``synthetic`` marks generated test products."""

    path: Path
    label: str
    synthetic: bool = False
    optical: Path | None = None  # co-registered optical image (same grid), when one exists


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything a run depends on (written to ``metrics.json`` and the report)."""

    out_dir: Path
    scenes: tuple[SceneSpec, ...] = ()
    sar_model: Path | None = None  # None: bundled "sar"
    gray_model: Path | None = None  # None: bundled "gray"
    paired_data: Path | None = None
    paired_layout: str = "auto"
    split: str = "auto"  # held-out area of the paired data (as in training); "none": every pair
    val_fraction: float = 0.2
    eval_crop: int | None = 512  # centre crop side (pixels, multiple of 16); None = whole images
    max_pairs: int | None = 8  # held-out pairs evaluated (first by key); None = all
    panel_pairs: int = 4
    scene_crop: int = 256  # side of the scene crops shown in panels, pixels
    scene_crops: int = 2  # crops per scene in the panels
    stretch: Stretch = "fixed"  # plain composite stretch shown as "the" plain composite
    tile_size: int | None = None  # pixels; None: chosen within max_memory_mb (sar2opt_geo.options)
    overlap: int | None = None
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB
    device: str = "cpu"
    seed: int = 0
    command: str = ""


@dataclass
class ExperimentResult:
    out_dir: Path
    report: Path
    metrics: dict[str, Any]
    figures: list[Path] = field(default_factory=list)
    composites: list[Path] = field(default_factory=list)
    seconds: float = 0.0


#: What a run writes directly in ``out_dir`` (``data``: the CLI's ``--synthetic-palsar2`` product).
OUTPUT_NAMES: tuple[str, ...] = (
    "composites", "figures", "data", "metrics.json", "paired_metrics.csv", "scene_structure.csv", "report.md",
)


@contextlib.contextmanager
def removed_on_failure(out_dir: str | Path) -> Iterator[Path]:
    """Undo what a failed run left in ``out_dir``: when the block raises, remove the outputs
    (:data:`OUTPUT_NAMES`) that did not exist before it, then ``out_dir`` and the parents the block
    created, if they are empty. Nothing that existed before the block is touched (a previous run's
    results stay); other files in a folder the block created keep that folder."""
    out = Path(out_dir)
    created = []  # out_dir and its missing parents, deepest first
    for d in (out, *out.parents):
        if d.exists() or d == d.parent:
            break
        created.append(d)
    before = {name for name in OUTPUT_NAMES if (out / name).exists() or (out / name).is_symlink()}
    try:
        yield out
    except BaseException:
        for name in OUTPUT_NAMES:
            path = out / name
            if name in before or not (path.exists() or path.is_symlink()):
                continue
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as exc:
                log.warning("could not remove %s after the failure: %s", path, exc)
        for d in created:
            try:
                d.rmdir()  # only when empty
            except OSError:
                break
        raise


def optical_partner(scene_path: Path) -> Path | None:
    """The co-registered optical image of a known paired layout (SEN12MS-CR ``s1/X.tif`` -> ``s2/X.tif``)."""
    p = Path(scene_path)
    if p.parent.name == "s1":
        cand = p.parent.parent / "s2" / p.name
        if cand.exists():
            return cand
    return None


# -- models ----------------------------------------------------------------------------------------


def _load(path: Path | None, kind: Kind, device: str) -> dict[str, Any]:
    from ..models.loading import load, resolve_model_path

    if path is not None and not resolve_model_path(path).exists():
        raise InputError(f"{path}: {kind} model not found; pass --{kind}-model PATH (a .safetensors checkpoint)")
    m = load(path, device, kind=kind)
    n_params = sum(p.numel() for p in m.module.parameters())
    return {"path": m.path, "module": m.module, "card": m.card, "hash": m.card_hash, "params": n_params}


def _model_info(m: dict[str, Any]) -> dict[str, Any]:
    card = m["card"]
    return {
        "path": str(m["path"]), "name": card.name, "card_hash": m["hash"], "architecture": card.architecture,
        "architecture_args": card.architecture_args, "parameters": m["params"],
        "input": asdict(card.input), "output": asdict(card.output), "training": card.training,
        "card_metrics": card.metrics, "description": card.description,
    }


# -- paired data -----------------------------------------------------------------------------------


@torch.no_grad()
def _paired(cfg: ExperimentConfig, sar: dict[str, Any], gray: dict[str, Any]) -> dict[str, Any]:
    """Metrics on the held-out paired data, and the samples the panels show."""
    from ..data import PairDataset, find_pairs, split_pairs
    from ..data.pairs import Pair
    from ..normalize import model_to_unit
    from ..training.evaluate import METRIC_NOTES, constant_baseline, evaluate_generator

    root = Path(cfg.paired_data)  # type: ignore[arg-type]
    pairs = find_pairs(root, cfg.paired_layout, "sar", sar_bands=tuple(sar["card"].input.bands))
    train, val = split_pairs(pairs, cfg.split, cfg.val_fraction, cfg.seed)
    if not val:
        train, val = [], list(pairs)
    val = sorted(val, key=lambda p: p.key)[: cfg.max_pairs or None]
    gray_val = [Pair(p.key, p.group, None, p.target, p.georeferenced) for p in val]
    kw = {"crop_size": cfg.eval_crop, "random_crops": False, "augment": False, "seed": cfg.seed, "cache": True}
    ds_sar, ds_gray = PairDataset(val, **kw), PairDataset(gray_val, **kw)
    dev = cfg.device
    rows = {
        "SAR->RGB (input: SAR)": evaluate_generator(sar["module"], ds_sar, dev),
        "gray->RGB (input: gray of the real optical)": evaluate_generator(gray["module"], ds_gray, dev),
        "gray->RGB (input: SAR, as in the article)": evaluate_generator(gray["module"], ds_sar, dev),
    }
    if train:
        mean = PairDataset(train, crop_size=None, random_crops=False, cache=False).mean_target()
        base_note = f"mean colour of the {len(train)} training-area pairs"
    else:
        mean = ds_sar.mean_target()
        base_note = "mean colour of the evaluated pairs themselves (no training split: optimistic)"
    rows["constant colour (baseline)"] = constant_baseline(mean, ds_sar)

    samples = []
    for i in range(min(cfg.panel_pairs, len(val))):
        s, g = ds_sar[i], ds_gray[i]
        x_sar, x_gray = s["condition"][None].to(dev), g["condition"][None].to(dev)
        samples.append({
            "key": s["key"],
            "sar": model_to_unit(s["condition"]).numpy(),
            "sar2rgb": model_to_unit(sar["module"](x_sar)[0].float().cpu()).numpy(),
            "gray2rgb_sar": model_to_unit(gray["module"](x_sar)[0].float().cpu()).numpy(),
            "gray": model_to_unit(g["condition"]).numpy(),
            "gray2rgb_gray": model_to_unit(gray["module"](x_gray)[0].float().cpu()).numpy(),
            "optical": model_to_unit(s["target"]).numpy(),
        })
    seen = {}
    for name, m in (("SAR->RGB", sar), ("gray->RGB", gray)):
        trained_on = set((m["card"].training.get("data") or {}).get("train_pairs") or ())
        seen[name] = sorted(trained_on & {p.key for p in val})
        if seen[name]:
            log.warning("%s model was trained on evaluated pairs %s: its metrics are optimistic", name, seen[name])
    return {
        "trained_on_evaluated_pairs": seen,
        "data": str(root), "pairs_total": len(pairs), "pairs_training_area": len(train),
        "pairs_evaluated": [p.key for p in val], "split": cfg.split, "val_fraction": cfg.val_fraction,
        "eval_crop": cfg.eval_crop, "baseline": {"colour": [float(c) for c in mean], "note": base_note},
        "notes": METRIC_NOTES, "table": rows, "samples": samples,
    }


# -- scenes ----------------------------------------------------------------------------------------


def _scene_part(cfg: ExperimentConfig, spec: SceneSpec, sar: dict, gray: dict, comp_dir: Path) -> dict[str, Any]:
    from . import composite

    stem = spec.label
    plain = composite.plain_composite(spec.path, comp_dir / f"{stem}_plain.tif", stretch_mode=cfg.stretch)
    plain_pct = composite.plain_composite(spec.path, comp_dir / f"{stem}_plain_percentile.tif", stretch_mode="percentile")
    gens = {}
    for kind, m in (("sar2rgb", sar), ("gray2rgb", gray)):
        gens[kind] = composite.generator_composite(
            spec.path, comp_dir / f"{stem}_{kind}.tif", (m["module"], m["card"]), keep_translations=True,
            tile_size=cfg.tile_size, overlap=cfg.overlap, max_memory_mb=cfg.max_memory_mb, device=cfg.device,
            seed=cfg.seed,
        )
    structure = {
        "SAR->RGB composite vs plain (percentile)": composite.compare_composites(gens["sar2rgb"].path, plain_pct.path),
        "gray->RGB composite vs plain (percentile)": composite.compare_composites(gens["gray2rgb"].path, plain_pct.path),
        "plain (fixed dB) vs plain (percentile), yardstick": composite.compare_composites(plain.path, plain_pct.path),
    }
    return {
        "label": spec.label, "path": str(spec.path), "synthetic": spec.synthetic,
        "optical": str(spec.optical) if spec.optical else None,
        "bands": list(plain.bands), "size": [plain.width, plain.height],
        "plain": _res(plain), "plain_percentile": _res(plain_pct),
        "sar2rgb": _res(gens["sar2rgb"]), "gray2rgb": _res(gens["gray2rgb"]),
        "structure": structure,
    }


def _res(r: Any) -> dict[str, Any]:
    return {
        "path": str(r.path), "quicklook": str(r.quicklook) if r.quicklook else None, "kind": r.kind,
        "stretch": r.stretch, "ranges": [list(x) for x in r.ranges], "valid_pixels": r.valid_pixels,
        "translations": [str(p) for p in r.translations], "warnings": list(r.warnings), "seconds": round(r.seconds, 2),
    }


# -- the run ---------------------------------------------------------------------------------------


def run_experiment(cfg: ExperimentConfig, progress: ProgressFn | None = None) -> ExperimentResult:
    """Run the experiment described by ``cfg``; see the module docstring for what is written.

    Missing inputs are reported before anything is written; a run that fails removes what it wrote
    (:func:`removed_on_failure`).
    """
    t0 = time.perf_counter()
    if not cfg.scenes and cfg.paired_data is None:
        raise DatasetError("the experiment needs at least one dual-pol scene (--scene) or paired data (--paired)")
    for what, path in [("--paired", cfg.paired_data), *(("--scene", spec.path) for spec in cfg.scenes)]:
        if path is not None and not Path(path).exists():
            raise InputError(f"{path}: no such file or folder ({what}); check the path")
    with removed_on_failure(cfg.out_dir):  # a failed run leaves no empty folders or partial outputs behind
        return _run(cfg, progress, t0)


def _run(cfg: ExperimentConfig, progress: ProgressFn | None, t0: float) -> ExperimentResult:
    from ..version import __version__
    from .report import paired_panel, scene_panels, write_report

    out = Path(cfg.out_dir)
    comp_dir, fig_dir = out / "composites", out / "figures"
    for d in (comp_dir, fig_dir):
        d.mkdir(parents=True, exist_ok=True)

    def step(f: float, msg: str) -> None:
        log.info(msg)
        if progress:
            progress(f, msg)

    step(0.0, "loading generators")
    sar, gray = _load(cfg.sar_model, "sar", cfg.device), _load(cfg.gray_model, "gray", cfg.device)
    metrics: dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k != "scenes"},
        "models": {"sar2rgb": _model_info(sar), "gray2rgb": _model_info(gray)},
        "environment": {"sar2opt_geo": __version__, "torch": torch.__version__, "python": platform.python_version(),
                        "threads": torch.get_num_threads()},
    }
    figures: list[Path] = []
    if cfg.paired_data is not None:
        step(0.05, f"paired data: {cfg.paired_data}")
        paired = _paired(cfg, sar, gray)
        if paired["samples"]:
            figures.append(paired_panel(paired["samples"], fig_dir / "paired_panels.png",
                                        sar_name=sar["card"].name, gray_name=gray["card"].name))
        metrics["paired"] = {k: v for k, v in paired.items() if k != "samples"}
        _write_paired_csv(paired["table"], out / "paired_metrics.csv")
    scenes = []
    for i, spec in enumerate(cfg.scenes):
        step(0.4 + 0.5 * i / max(1, len(cfg.scenes)), f"scene {spec.label}: composites")
        part = _scene_part(cfg, spec, sar, gray, comp_dir)
        figures += scene_panels(part, fig_dir, crop=cfg.scene_crop, n_crops=cfg.scene_crops, seed=cfg.seed,
                                sar_name=sar["card"].name, gray_name=gray["card"].name)
        scenes.append(part)
    if scenes:
        metrics["scenes"] = scenes
        _write_structure_csv(scenes, out / "scene_structure.csv")
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    metrics["figures"] = [str(f.relative_to(out)) for f in figures]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n")
    report = write_report(metrics, out / "report.md")
    step(1.0, f"report: {report}")
    composites = [Path(s[k]["path"]) for s in scenes for k in ("plain", "plain_percentile", "sar2rgb", "gray2rgb")]
    return ExperimentResult(out, report, metrics, figures, composites, time.perf_counter() - t0)


def _write_paired_csv(table: dict[str, dict[str, float]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["generator", "images", "psnr_db", "ssim", "l1", "grad_r"])
        for name, row in table.items():
            w.writerow([name, int(row["images"]), f"{row['psnr']:.3f}", f"{row['ssim']:.4f}", f"{row['l1']:.4f}",
                        f"{row['grad_r']:.4f}"])


def _write_structure_csv(scenes: Sequence[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scene", "synthetic", "comparison", "band", "ssim", "pearson", "pixels"])
        for s in scenes:
            for comp, bands in s["structure"].items():
                for name, b in zip(("R", "G", "B"), bands):
                    w.writerow([s["label"], s["synthetic"], comp, name, f"{b['ssim']:.4f}", f"{b['pearson']:.4f}", b["pixels"]])
