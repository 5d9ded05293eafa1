"""Tile grid for the streaming engine: alignment, margins, reflection padding.

Why tiles must be aligned to 16
    The article's U-Net average-pools by 4, 2 and 2 (total factor 16) and upsamples back
    with nearest neighbour. A pooling cell covers a fixed block of 16 x 16 input pixels
    only when the tile origin is a multiple of 16 away from every other tile's origin (and
    from the whole-image pass). With aligned origins every tile sees the same pooling cells,
    so two tiles compute bit for bit the same value for a pixel whose receptive field lies
    inside both; with misaligned origins they would not, whatever the overlap.

Why a margin of 48 pixels
    Away from a tile edge, an output pixel depends on input pixels up to 60 px away (the
    one-sided receptive field of the article's U-Net; it varies from 45 to 60 px with the
    pixel's position modulo 16). Counted from a tile edge that is aligned to 16, every
    pixel at least **47 px** inside the edge has its whole receptive field inside the tile
    (worked out layer by layer and checked in ``tests/test_inference.py``: 47 px gives the
    whole-image values exactly, 46 px does not). Pixels closer to an inner tile edge see the
    convolutions' zero padding, so the engine gives them weight 0 (they are "cropped"); the
    default margin of 48 = 3 x 16 rounds 47 up. Cost of the margin in compute:
    ``(T / (T - overlap))**2`` (1.78x at 512/128, 1.31x at 1024/128).

Coordinates
    Tile origins are in the scene's pixel grid (row, column) and may be negative: the
    padded canvas starts at ``-pad`` (``pad`` = the margin rounded up to the downsampling
    factor, so origins stay multiples of 16 in scene coordinates) and ends at least
    ``margin`` pixels past the last row/column, so border pixels get reflected context
    just like interior pixels get real context. The engine only ever reads windows inside
    ``[0, height) x [0, width)`` and builds the padding itself by reflection
    (:func:`reflect_index`, numpy's ``"reflect"`` mode, repeated for scenes smaller than
    the padding).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, OptionTypeError
from ..models.downsampling import DEFAULT_DOWNSAMPLING, model_downsampling

__all__ = [
    "DEFAULT_DOWNSAMPLING",
    "AxisTiles",
    "TileGrid",
    "TilingConfig",
    "axis_tiles",
    "check_config",
    "model_downsampling",
    "reflect_index",
    "tile_grid",
]


@dataclass(frozen=True)
class TilingConfig:
    """How a scene is cut into tiles, in pixels of the model's input grid.

    Attributes:
        tile_size: tile height and width in pixels, a multiple of the model's downsampling
            factor (16). Scenes smaller than a tile get one smaller tile per axis.
        overlap: pixels shared by neighbouring tiles (tile stride = ``tile_size - overlap``),
            a multiple of 16, at least ``2 * margin``.
        margin: pixels next to an inner tile edge that get weight 0 (their receptive field
            crosses the tile edge); at least the model's receptive-field margin (47 px for the
            article's U-Net). The rest of the overlap, ``overlap - 2 * margin``, is cross-faded
            with a cosine ramp (:mod:`sar2opt_geo.engine.blending`).
        batch_size: tiles per forward pass.
    """

    tile_size: int = 512
    overlap: int = 128
    margin: int = 48
    batch_size: int = 4

    def __post_init__(self) -> None:
        check_config(self, DEFAULT_DOWNSAMPLING)

    @property
    def stride(self) -> int:
        """Distance between neighbouring tile origins, in pixels."""
        return self.tile_size - self.overlap

    @property
    def blend_width(self) -> int:
        """Width in pixels of the cosine cross-fade between two neighbouring tiles.

        ``overlap - 2 * margin``, capped at the stride so that at most two tiles share a
        pixel along each axis (which keeps the complementary ramps summing to 1).
        """
        return min(self.overlap - 2 * self.margin, self.stride)


def check_config(config: TilingConfig, downsampling: int = DEFAULT_DOWNSAMPLING) -> None:
    """Raise :class:`~sar2opt_geo.errors.ConfigError` (a ``ValueError``; ``TypeError`` for a non-integer) naming the value and the fix if ``config`` cannot work.

    Args:
        config: the tiling configuration.
        downsampling: the model's total downsampling factor (tile origins and sizes must be
            multiples of it).
    """

    def _int(name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise OptionTypeError(f"tiling {name}={value!r} is not an integer; give a whole number of pixels")
        return int(value)

    d = _int("downsampling", downsampling)
    t = _int("tile_size", config.tile_size)
    o = _int("overlap", config.overlap)
    m = _int("margin", config.margin)
    b = _int("batch_size", config.batch_size)
    if d < 1:
        raise ConfigError(f"model downsampling factor {d} must be >= 1")
    if t < d or t % d:
        fix = max(d, math.ceil(t / d) * d)
        raise ConfigError(f"tile_size={t} is not a positive multiple of the model's downsampling factor {d}; use e.g. {fix}")
    if o < 0 or o % d:
        fix = max(0, math.ceil(o / d) * d)
        raise ConfigError(f"overlap={o} is not a non-negative multiple of the model's downsampling factor {d}; use e.g. {fix}")
    if m < 0:
        raise ConfigError(f"margin={m} is negative; use 48 (the article's U-Net needs at least 47)")
    if o < 2 * m:
        raise ConfigError(
            f"overlap={o} is smaller than 2 * margin={2 * m}: tiles would leave gaps; use overlap >= {2 * m}"
            f" (rounded to {d}: {math.ceil(2 * m / d) * d}) or a smaller margin"
        )
    if o >= t:
        raise ConfigError(f"overlap={o} must be smaller than tile_size={t}; use a larger tile_size or a smaller overlap")
    if b < 1:
        raise ConfigError(f"batch_size={b} must be >= 1")


def reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Map (possibly out-of-range) pixel indices onto ``[0, n)`` by mirror reflection.

    Same values as ``np.pad(..., mode="reflect")`` (edge pixel not repeated), repeated as a
    triangle wave when the padding is longer than the axis.
    """
    index = np.asarray(index, dtype=np.int64)
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.mod(index, period)
    return np.where(index >= n, period - index, index)


@dataclass(frozen=True)
class AxisTiles:
    """Tile layout along one axis (rows or columns) of a scene, in pixels.

    Attributes:
        length: scene length along this axis.
        tile: tile length along this axis (``tile_size``, or less for a short axis).
        stride: distance between consecutive tile origins.
        pad: reflected pixels before pixel 0 (the margin rounded up to the downsampling).
        margin: weight-0 pixels at each inner tile edge.
        blend: cross-fade width between neighbouring tiles.
        count: number of tiles.
    """

    length: int
    tile: int
    stride: int
    pad: int
    margin: int
    blend: int
    count: int

    def origin(self, k: int) -> int:
        """Scene coordinate of tile ``k``'s first pixel (negative for the first tile)."""
        return -self.pad + k * self.stride

    @property
    def origins(self) -> np.ndarray:
        return -self.pad + self.stride * np.arange(self.count, dtype=np.int64)

    @property
    def canvas(self) -> tuple[int, int]:
        """``(start, stop)`` of the padded canvas covered by all tiles, scene coordinates."""
        return -self.pad, self.origin(self.count - 1) + self.tile

    def final_before(self, k: int) -> int:
        """First scene index that tiles after ``k`` can still change (exclusive bound of
        what is finished once tiles ``0..k`` are blended), clipped to ``[0, length]``."""
        if k >= self.count - 1:
            return self.length
        return min(self.length, max(0, self.origin(k + 1) + self.margin))


def axis_tiles(length: int, config: TilingConfig, downsampling: int = DEFAULT_DOWNSAMPLING) -> AxisTiles:
    """Lay out tiles along an axis of ``length`` pixels (see the module docstring).

    The canvas runs from ``-pad`` to at least ``length + margin``; the number of tiles is
    the smallest that covers it, and a single tile shrinks to the canvas rounded up to the
    downsampling factor (a 100-pixel scene is not run as a 512-pixel tile).
    """
    if length < 1:
        raise ConfigError(f"scene length {length} px must be >= 1")
    d = downsampling
    m = config.margin
    pad = math.ceil(m / d) * d
    need = length + pad + m  # canvas length: reflected context on both sides
    if need <= config.tile_size:
        tile = math.ceil(need / d) * d
        return AxisTiles(length, tile, config.stride, pad, m, config.blend_width, 1)
    count = 1 + math.ceil((need - config.tile_size) / config.stride)
    return AxisTiles(length, config.tile_size, config.stride, pad, m, config.blend_width, count)


@dataclass(frozen=True)
class TileGrid:
    """The 2-D tile grid: separable, rows then columns."""

    rows: AxisTiles
    cols: AxisTiles

    @property
    def shape(self) -> tuple[int, int]:
        """``(tile rows, tile columns)``."""
        return self.rows.count, self.cols.count

    @property
    def tile_shape(self) -> tuple[int, int]:
        """``(height, width)`` of every tile in pixels."""
        return self.rows.tile, self.cols.tile

    def __len__(self) -> int:
        return self.rows.count * self.cols.count

    def __iter__(self) -> Iterator[tuple[int, int, int, int]]:
        """Yield ``(i, j, row_origin, col_origin)`` in row-major order (the sweep order)."""
        for i in range(self.rows.count):
            r = self.rows.origin(i)
            for j in range(self.cols.count):
                yield i, j, r, self.cols.origin(j)


def tile_grid(height: int, width: int, config: TilingConfig, downsampling: int = DEFAULT_DOWNSAMPLING) -> TileGrid:
    """Tile grid for a ``height x width`` scene (pixels); origins are multiples of ``downsampling``."""
    check_config(config, downsampling)
    return TileGrid(axis_tiles(height, config, downsampling), axis_tiles(width, config, downsampling))
