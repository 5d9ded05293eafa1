"""Which scene bands feed the model, and what does not match the card.

Rules (a mismatch is a warning, recorded in the output's tags and ``Result.warnings``;
``strict=True`` turns every warning into a :class:`~sar2opt_geo.errors.BandError`):

SAR models (card quantity sigma0/gamma0/beta0):

1. ``bands=`` given: exactly those scene bands, as many as the model has input channels;
   names that differ from the card's are a mismatch.
2. The card's bands are all in the scene (case-insensitive): those.
3. Single-pol SAR scene: its one band, whatever its name (mismatch).
4. Dual/quad-pol scene without the card's band: the band of the same *kind* —
   cross-pol (VH, HV) for a cross-pol model, co-pol (VV, HH) for a co-pol model, so a
   VH model reads HV from an HH+HV scene (mismatch). If that is not unique:
   :class:`BandError` asking for ``bands=``.
5. Optical scene: :class:`BandError` (use the gray model, or ``bands=`` to force it).

Also a mismatch: the scene's radar frequency band (C, L) or quantity (sigma0 vs gamma0)
differs from the card's.

Gray models (card quantity ``gray``): ``bands=`` (one band used as gray, or as many as
``gray_from``, combined); else a scene band named ``gray``; else the card's ``gray_from``
bands (red, green, blue), combined with ``gray_weights``; else a single-band scene's band
(a SAR band is a mismatch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BandError
from ..models.card import ModelCard

__all__ = ["SAR_QUANTITIES", "BandPlan", "is_gray_card", "is_sar_card", "plan_bands"]

SAR_QUANTITIES = ("sigma0", "gamma0", "beta0")
_CROSS = {"VH", "HV"}
_CO = {"VV", "HH"}


@dataclass(frozen=True)
class BandPlan:
    """Scene bands to read (in model order), whether to combine them to gray, and mismatch warnings."""

    bands: tuple[str, ...]
    gray: bool = False
    warnings: tuple[str, ...] = ()


def is_gray_card(card: ModelCard) -> bool:
    return card.input.quantity == "gray" or bool(card.input.gray_from)


def is_sar_card(card: ModelCard) -> bool:
    return card.input.quantity in SAR_QUANTITIES or card.input.frequency_band is not None


def _find(scene: Any, name: str) -> str | None:
    for key in scene.bands:
        if key.lower() == name.lower():
            return key
    return None


def _pol_kind(name: str) -> str | None:
    n = name.upper()
    return "cross" if n in _CROSS else "co" if n in _CO else None


def _sar_bands(scene: Any) -> list[str]:
    return [k for k, v in scene.bands.items() if getattr(v.quantity, "value", v.quantity) in SAR_QUANTITIES] or (
        list(scene.bands) if scene.is_sar else []
    )


def _describe_scene(scene: Any) -> str:
    f = getattr(scene, "frequency_band", None)
    freq = f"{f}-band " if f and f.lower() not in ("unknown", "?", "none") else ""
    return f"{freq}{scene.sensor} scene with bands {', '.join(scene.bands)}"


def _describe_card(card: ModelCard) -> str:
    d = card.input
    freq = f"{d.frequency_band}-band " if d.frequency_band else ""
    return f"model {card.name!r} (trained on {freq}{d.sensor} {', '.join(d.bands)} {d.quantity})"


def plan_bands(scene: Any, card: ModelCard, requested: Sequence[str] | None = None, strict: bool = False) -> BandPlan:
    """Choose the scene bands for ``card`` (see the module docstring); raise or warn on mismatch."""
    path = scene.path
    warnings: list[str] = []
    if requested:
        requested = [str(b) for b in requested]
        found = []
        for b in requested:
            key = _find(scene, b)
            if key is None:
                raise BandError(f"{path}: no band {b!r} in this {_describe_scene(scene)}; pass one of them with --bands")
            found.append(key)
    if is_gray_card(card):
        plan = _plan_gray(scene, card, found if requested else None, warnings)
    else:
        plan = _plan_sar_or_other(scene, card, found if requested else None, warnings)
    if is_sar_card(card) and scene.is_sar:
        d = card.input
        scene_freq = (scene.frequency_band or "").strip()
        known = scene_freq and scene_freq.lower() not in ("unknown", "?", "none")
        if d.frequency_band and known and d.frequency_band.upper() != scene_freq.upper():
            warnings.append(f"{_describe_card(card)} applied to a {_describe_scene(scene)}: radar frequency bands differ")
        quantities = {getattr(scene.bands[b].quantity, "value", scene.bands[b].quantity) for b in plan.bands}
        other = sorted(q for q in quantities if q != d.quantity)
        if other:
            warnings.append(f"{_describe_card(card)} fed {'/'.join(other)} from {path.name if hasattr(path, 'name') else path}")
    warnings = list(dict.fromkeys(warnings))
    if strict and warnings:
        raise BandError(f"{path}: {warnings[0]} (refused because strict=True / --strict; drop it to proceed with a warning)")
    return BandPlan(plan.bands, plan.gray, tuple(warnings))


def _plan_sar_or_other(scene: Any, card: ModelCard, requested: list[str] | None, warnings: list[str]) -> BandPlan:
    want = list(card.input.bands)
    n_in = card.in_channels
    path = scene.path
    if requested is not None:
        if len(requested) != n_in:
            raise BandError(f"{path}: {_describe_card(card)} takes {n_in} band(s), got --bands {','.join(requested)}")
        if [b.upper() for b in requested] != [b.upper() for b in want]:
            warnings.append(f"{_describe_card(card)} fed {', '.join(requested)} of a {_describe_scene(scene)}")
        return BandPlan(tuple(requested))
    exact = [_find(scene, b) for b in want]
    if all(exact):
        return BandPlan(tuple(exact))  # type: ignore[arg-type]
    if is_sar_card(card) and not scene.is_sar:
        raise BandError(
            f"{path}: {_describe_card(card)} needs SAR input, this is a {_describe_scene(scene)}; "
            "translate it with the gray model (leave --model out) or force bands with --bands"
        )
    candidates = _sar_bands(scene) if scene.is_sar else list(scene.bands)
    if len(want) == 1 and len(candidates) == 1:
        chosen = [candidates[0]]
    else:
        chosen = []
        for b in want:
            kind = _pol_kind(b)
            same = [c for c in candidates if kind is not None and _pol_kind(c) == kind]
            if len(same) != 1:
                raise BandError(
                    f"{path}: {_describe_card(card)} has no matching band in this {_describe_scene(scene)}; "
                    "choose the input with --bands (bands=)"
                )
            chosen.append(same[0])
    warnings.append(f"{_describe_card(card)} fed {', '.join(chosen)} of a {_describe_scene(scene)}")
    return BandPlan(tuple(chosen))


def _plan_gray(scene: Any, card: ModelCard, requested: list[str] | None, warnings: list[str]) -> BandPlan:
    path = scene.path
    gray_from = list(card.input.gray_from or ())
    if requested is not None:
        if len(requested) == 1:
            if scene.is_sar:  # the article's gray->RGB-on-SAR experiment: allowed, but said
                warnings.append(f"{_describe_card(card)} fed the SAR band {requested[0]} of a {_describe_scene(scene)}")
            return BandPlan(tuple(requested))
        if gray_from and len(requested) == len(gray_from):
            if [b.lower() for b in requested] != [b.lower() for b in gray_from]:
                warnings.append(f"{_describe_card(card)} combines {', '.join(requested)} as {', '.join(gray_from)}")
            return BandPlan(tuple(requested), gray=True)
        raise BandError(
            f"{path}: {_describe_card(card)} takes one gray band or {len(gray_from) or 1} bands to combine "
            f"({', '.join(gray_from)}), got --bands {','.join(requested)}"
        )
    key = _find(scene, "gray")
    if key is not None:
        return BandPlan((key,))
    found = [_find(scene, b) for b in gray_from]
    if gray_from and all(found):
        return BandPlan(tuple(found), gray=True)  # type: ignore[arg-type]
    if len(scene.bands) == 1:
        (only,) = scene.bands
        if scene.is_sar:
            warnings.append(f"{_describe_card(card)} fed the SAR band {only} of a {_describe_scene(scene)}")
        return BandPlan((only,))
    raise BandError(
        f"{path}: {_describe_card(card)} needs a gray band or {', '.join(gray_from) or 'red, green, blue'}; "
        f"this is a {_describe_scene(scene)}; choose them with --bands (bands=)"
    )
