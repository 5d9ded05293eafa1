"""sar2opt_geo: georeferenced SAR-to-optical translation with pix2pix generators.

Data flow: ``sensors`` (scene + georeferencing + calibration) -> ``preprocess`` (model
input domain, resampling) -> ``engine`` (tiling, blending) -> ``models`` (generator)
-> ``io`` (writers). :func:`translate` is the one public entry point that the CLI, the
QGIS plugin and the AOI batch runner all call.
"""

from __future__ import annotations

from .version import __version__

__all__ = ["Result", "TranslateOptions", "__version__", "load_model", "open_scene", "translate"]


def __getattr__(name: str):  # lazy: importing the package must not import torch/rasterio
    if name in ("translate", "TranslateOptions", "Result"):
        from .translation import api

        return getattr(api, name)
    if name == "open_scene":
        from .sensors import open_scene

        return open_scene
    if name == "load_model":
        from .models.checkpoint import load_model

        return load_model
    raise AttributeError(name)
