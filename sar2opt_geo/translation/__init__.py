"""Translation of one scene: the public :func:`translate` and the steps it is made of.

``api`` (:func:`translate`, :class:`Result`) -> ``plan`` (:func:`plan_translation`: grid, bands,
crop, tiling, normaliser) -> ``pipeline`` (:func:`run_inference`, :func:`encode_product`,
:func:`make_result`); around it ``rowbands`` (one scene in row bands, byte-identical to one
pass) and ``sampling`` (``--samples N``: mean and spread of stochastic sweeps).
Submodules import torch/rasterio lazily where the CLI needs a light import.
"""

from __future__ import annotations

from .api import Result, resolve_device, translate

__all__ = ["Result", "resolve_device", "translate"]
