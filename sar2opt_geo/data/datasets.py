"""Torch datasets of (condition, target) pairs in the model domain [-1, 1], with random crops.

Crop positions and augmentations are drawn from ``numpy.random.default_rng([seed, epoch,
index])``: the same (seed, epoch, index) always gives the same sample, whichever
DataLoader worker or DDP rank loads it, and ``--resume`` needs no data-loader state.
Call :meth:`PairDataset.set_epoch` at the start of every epoch. The optional radiometric
augmentation of the SAR side (:class:`~sar2opt_geo.data.augment.SpeckleAugment`) draws from the
same per-sample stream, after the crop and the flips.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import normalize
from ..errors import DatasetError
from ..radiometry import from_db
from .augment import SpeckleAugment
from .pairs import BandSource, Pair

__all__ = ["PairDataset", "read_unit"]

log = logging.getLogger(__name__)


def _read_raw(src: BandSource) -> tuple[np.ndarray, np.dtype]:
    """Read the bands of ``src`` as a ``(C, H, W)`` array in the files' own dtype."""
    arrays = []
    for f in src.files:
        suffix = f.suffix.lower()
        try:
            if suffix in (".tif", ".tiff"):
                import rasterio

                with rasterio.open(f) as ds:
                    a = ds.read(list(src.bands) if (src.bands and len(src.files) == 1) else None)
                    if ds.nodata is not None and np.issubdtype(a.dtype, np.floating):
                        a = np.where(a == ds.nodata, np.nan, a)
            else:
                from PIL import Image

                with Image.open(f) as im:
                    a = np.asarray(im)
                a = a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)
                if src.bands and len(src.files) == 1:
                    if max(src.bands) > a.shape[0]:
                        if a.shape[0] == 1:  # gray PNG where RGB is expected: repeat
                            a = np.repeat(a, max(src.bands), 0)
                        else:
                            raise DatasetError(f"{f}: has {a.shape[0]} bands, needs band {max(src.bands)}")
                    a = a[[b - 1 for b in src.bands]]
        except DatasetError:
            raise
        except Exception as exc:  # noqa: BLE001 - PIL and rasterio raise many types for bad files
            raise DatasetError(f"{f}: cannot read image: {exc}") from None
        arrays.append(a)
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) != 1:
        raise DatasetError(f"{src.files[0]}: band files differ in size {sorted(shapes)}; they must share one grid")
    raw = np.concatenate(arrays, 0)
    return raw, raw.dtype


def read_unit(src: BandSource, db_range: tuple[float, float] = normalize.SEN1_2_DB_RANGE,
              percentile: float = 99.0, quantize_levels: int | None = 255, fill: float = 0.0) -> np.ndarray:
    """Read ``src`` and scale it to [0, 1] by its ``scaling`` rule; ``(C, H, W)`` float32, NaN -> ``fill``."""
    raw, dtype = _read_raw(src)
    if src.scaling == "uint8":
        if dtype != np.uint8:
            raise DatasetError(f"{src.files[0]}: expected 8-bit data, found {dtype}; pick the matching --layout")
        unit = normalize.uint8_to_unit(raw)
    elif src.scaling == "db_clip":
        unit = normalize.db_clip_to_unit(raw, *db_range)
    elif src.scaling == "reflectance":
        unit = normalize.reflectance_to_unit(raw)
    elif src.scaling in ("percentile", "db_percentile"):
        # db_percentile: dB -> linear power first, as the engine feeds a scene-percentile card
        raw = from_db(raw) if src.scaling == "db_percentile" else raw.astype(np.float32)
        scale = normalize.percentile_scale(raw, percentile, per_band=True)
        unit = normalize.percentile_to_unit(raw, scale, quantize_levels=quantize_levels)
    else:  # pragma: no cover - Literal guards this
        raise DatasetError(f"{src.files[0]}: unknown scaling {src.scaling!r}")
    return np.nan_to_num(unit, nan=fill).astype(np.float32)


class PairDataset(Dataset):
    """(condition, target) samples in [-1, 1]; whole images or random crops.

    Args:
        pairs: from :func:`sar2opt_geo.data.find_pairs`.
        crop_size: crop side in pixels (multiple of 16); None: whole images, cut down to a
            multiple of 16 around the centre (validation).
        crops_per_image: samples per pair per epoch (random crops).
        random_crops: False: one centre crop per image (deterministic validation).
        augment: random horizontal/vertical flips and 90-degree rotations (same on both sides).
        seed: base of the per-sample random streams.
        cache: keep every image in memory after its first read (as float16 [0, 1]).
        gray_weights: weights of red, green, blue for colourisation pairs (condition None).
        nodata_fill: model-domain value of nodata (NaN) condition pixels: the card's
            ``input.nodata_fill``, the same value the inference engine feeds (targets' NaN -> 0).
        speckle: random gain + speckle on the SAR condition of random crops (None: off);
            ignored for colourisation pairs and deterministic (validation) samples.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        crop_size: int | None = 256,
        crops_per_image: int = 1,
        *,
        random_crops: bool = True,
        augment: bool = False,
        seed: int = 0,
        cache: bool = True,
        gray_weights: Sequence[float] = normalize.GRAY_WEIGHTS,
        nodata_fill: float = normalize.DEFAULT_NODATA_FILL,
        speckle: SpeckleAugment | None = None,
    ) -> None:
        if not pairs:
            raise DatasetError("no training pairs: the dataset (or this split of it) is empty")
        if crop_size is not None and crop_size % 16:
            raise DatasetError(f"crop size {crop_size} px must be a multiple of 16 (the generator's downsampling)")
        self.pairs = list(pairs)
        self.crop_size = crop_size
        self.crops_per_image = max(1, int(crops_per_image)) if random_crops else 1
        self.random_crops = random_crops
        self.augment = augment
        self.seed = int(seed)
        self.cache = cache
        self.gray_weights = tuple(gray_weights)
        self.nodata_fill = float(nodata_fill)
        self.speckle = speckle
        self.epoch = 0
        self._store: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of ``epoch`` (crops and augmentation change every epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs) * self.crops_per_image

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Whole pair ``i`` as ``(condition, target)`` float32 arrays in [0, 1]."""
        if i in self._store:
            c, t = self._store[i]
            return c.astype(np.float32), t.astype(np.float32)
        pair = self.pairs[i]
        target = read_unit(pair.target)
        if pair.condition is None:
            if target.shape[0] < 3:
                raise DatasetError(f"{pair.target.files[0]}: colourisation needs 3 bands (red, green, blue)")
            cond = normalize.gray_from_rgb(target[0], target[1], target[2], self.gray_weights)[None]
        else:
            cond = read_unit(pair.condition, fill=(self.nodata_fill + 1.0) / 2.0)
        if cond.shape[1:] != target.shape[1:]:
            raise DatasetError(
                f"{pair.condition.files[0] if pair.condition else ''} and {pair.target.files[0]}: sizes differ "
                f"{cond.shape[1:]} vs {target.shape[1:]}; pairs must share one grid"
            )
        need = self.crop_size or 16
        if min(cond.shape[1:]) < need:
            raise DatasetError(f"{pair.target.files[0]}: {cond.shape[2]}x{cond.shape[1]} px is smaller than the crop {need} px")
        if self.cache:  # float16 keeps 8-bit steps (1/255) exactly enough (error < 2.5e-4)
            self._store[i] = (cond.astype(np.float16), target.astype(np.float16))
            return self.load(i)  # the same values on the first and every later call
        return cond, target

    def mean_target(self) -> np.ndarray:
        """Mean of every target band over all pairs, in [0, 1] (the constant-colour baseline)."""
        sums: np.ndarray | None = None
        n = 0
        for i in range(len(self.pairs)):
            _, t = self.load(i)
            s = t.reshape(t.shape[0], -1).sum(1, dtype=np.float64)
            sums = s if sums is None else sums + s
            n += t.shape[1] * t.shape[2]
        if sums is None:
            raise DatasetError("no pairs: no mean colour")
        return (sums / n).astype(np.float32)

    def _window(self, h: int, w: int, rng: np.random.Generator | None) -> tuple[int, int, int, int]:
        if self.crop_size is None:
            ch, cw = h - h % 16, w - w % 16
        else:
            ch = cw = self.crop_size
        if rng is None:
            return (h - ch) // 2, (w - cw) // 2, ch, cw
        return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw

    def __getitem__(self, index: int) -> dict[str, object]:
        i = index // self.crops_per_image
        cond, target = self.load(i)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.random_crops else None
        r, c, h, w = self._window(cond.shape[1], cond.shape[2], rng)
        cond, target = cond[:, r:r + h, c:c + w], target[:, r:r + h, c:c + w]
        if self.augment:
            arng = rng or np.random.default_rng([self.seed, self.epoch, index, 1])
            k, fh, fv = int(arng.integers(0, 4)), bool(arng.integers(0, 2)), bool(arng.integers(0, 2))
            cond, target = (self._aug(a, k, fh, fv) for a in (cond, target))
        if self.speckle is not None and rng is not None and self.pairs[i].condition is not None:
            cond = self.speckle(np.ascontiguousarray(cond), rng)
        return {
            "condition": torch.from_numpy(normalize.unit_to_model(np.ascontiguousarray(cond))),
            "target": torch.from_numpy(normalize.unit_to_model(np.ascontiguousarray(target))),
            "key": self.pairs[i].key,
        }

    @staticmethod
    def _aug(a: np.ndarray, k: int, flip_h: bool, flip_v: bool) -> np.ndarray:
        a = np.rot90(a, k, axes=(1, 2))
        if flip_h:
            a = a[:, :, ::-1]
        if flip_v:
            a = a[:, ::-1, :]
        return a

    @property
    def in_channels(self) -> int:
        return self.load(0)[0].shape[0]

    @property
    def out_channels(self) -> int:
        return self.load(0)[1].shape[0]

    def describe(self) -> str:
        """One line: number of pairs, first files, crop rule (for logs and model cards)."""
        first = self.pairs[0]
        where = Path(first.target.files[0]).parent.parent
        crop = f"{self.crop_size} px crops x {self.crops_per_image}/image" if self.crop_size else "whole images"
        return f"{len(self.pairs)} pairs under {where} ({crop})"
