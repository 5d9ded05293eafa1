"""CLI flags generated from :class:`sar2opt_geo.options.TranslateOptions`' field metadata.

Every command that translates (``translate``, ``batch``, ``composite``, ``experiment``)
adds its translate flags with :func:`add_translate_options` and turns them back into
options with :func:`translate_options_from_args`, so a flag, its default, its unit and
its help text exist once (in :mod:`sar2opt_geo.options`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from typing import Any

from ..options import TranslateOptions, option_fields, parse_bands

__all__ = ["add_translate_options", "dest_of", "translate_options_from_args"]


def dest_of(f: dataclasses.Field) -> str:
    """The argparse ``dest`` of an option field: its first flag without dashes (``--t-srs`` -> ``t_srs``)."""
    return f.metadata["flag"][0].lstrip("-").replace("-", "_")


def _add(target: Any, f: dataclasses.Field) -> None:
    m = f.metadata
    kind, flags = m["kind"], m["flag"]
    kw: dict[str, Any] = {"help": m["help"], "dest": dest_of(f)}
    if kind == "flag":
        target.add_argument(*flags, action="store_true", **kw)
    elif kind == "switch":
        target.add_argument(*flags, action=argparse.BooleanOptionalAction, default=f.default, **kw)
    elif kind == "bounds":
        target.add_argument(*flags, type=float, nargs=4, metavar=("LEFT", "BOTTOM", "RIGHT", "TOP"), **kw)
    else:
        if kind == "value" and m["choices"] is None:
            annotation = str(f.type)
            kw["type"] = int if annotation.startswith("int") else float if annotation.startswith("float") else str
        if m["choices"] is not None and len(m["choices"]) <= 4:
            kw["choices"] = m["choices"]
        if m["metavar"]:
            kw["metavar"] = m["metavar"]
        target.add_argument(*flags, default=f.default if kind == "value" else None, **kw)


def add_translate_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    groups: bool = True,
) -> None:
    """Add the flags of the translate options (all with a flag, or ``only`` these field names)
    to ``parser``, in ``--help`` sections by their group unless ``groups`` is false."""
    wanted = set(only) if only is not None else None
    skip = set(exclude)
    sections: dict[str, Any] = {}
    for f in option_fields(cli_only=True):
        if (wanted is not None and f.name not in wanted) or f.name in skip:
            continue
        group = f.metadata["group"]
        if groups and group:
            if group not in sections:
                sections[group] = parser.add_argument_group(group)
            _add(sections[group], f)
        else:
            _add(parser, f)


def translate_options_from_args(args: argparse.Namespace, **fixed: Any) -> TranslateOptions:
    """The :class:`TranslateOptions` that the flags in ``args`` ask for (fields without a flag in
    ``args`` keep their defaults); ``fixed`` sets fields directly."""
    kw: dict[str, Any] = {}
    for f in option_fields(cli_only=True):
        dest = dest_of(f)
        if not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if f.metadata["kind"] == "bands":
            value = parse_bands(value)
        elif f.metadata["kind"] == "bounds" and value is not None:
            value = tuple(value)
        kw[f.name] = value
    if kw.get("bounds") is None:
        kw.pop("bounds_crs", None)
    kw.update(fixed)
    return TranslateOptions(**kw)
