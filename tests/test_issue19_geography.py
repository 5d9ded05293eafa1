"""Issue 19: geography that was refused or failed late.

Scenes are **synthetic** (a sample VH dB scene re-georeferenced in EPSG:4326): across the antimeridian,
near the North and South Poles. Each translates; ``--t-srs`` drives the model grid; a ``--tr`` in the
wrong units fails before any work with one line and leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from sar2opt_geo import translate
from sar2opt_geo.cli.main import main
from sar2opt_geo.errors import ConfigError
from sar2opt_geo.preprocess.grid import (
    MAX_GRID_PIXELS,
    Grid,
    check_grid_size,
    reprojected_grid,
    utm_crs_for,
)
from sar2opt_geo.samples.synthetic import write_sample_scene

STEP = 0.0002  # deg: about 22 m north-south, a few metres east-west near the poles


def _lonlat_scene(tmp: Path, name: str, west: float, north: float, size: int = 96) -> Path:
    """A synthetic VH dB scene of ``size`` px square at ``STEP`` deg in EPSG:4326, upper-left (west, north)."""
    src = write_sample_scene(tmp / f"src_{name}", size=size)
    with rasterio.open(src) as ds:
        data, profile, tags, desc = ds.read(), ds.profile, ds.tags(), ds.descriptions
    profile.update(crs="EPSG:4326", transform=from_origin(west, north, STEP, STEP))
    path = tmp / name
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        dst.set_band_description(1, desc[0])
    return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("geo")
    return {
        "antimeridian": _lonlat_scene(tmp, "antimeridian.tif", 179.995, 60.0),  # 179.995 .. 180.0142 E: centre in zone 1
        "north": _lonlat_scene(tmp, "north.tif", 20.0, 86.0),
        "south": _lonlat_scene(tmp, "south.tif", 20.0, -82.0),
    }


def _valid_fraction(path: Path) -> float:
    with rasterio.open(path) as ds:
        mask = ds.dataset_mask()
    return float((mask > 0).mean())


@pytest.mark.parametrize(("name", "epsg"), [("antimeridian", 32601), ("north", 32661), ("south", 32761)])
def test_lonlat_scene_translates_on_the_local_metric_grid(scenes, tmp_path, name, epsg):
    """Was: "(polar area?) ... pass dst_crs". The model grid is UTM (zone 1 across 180 deg) or UPS near a pole."""
    out = tmp_path / f"{name}_rgb.tif"
    translate(scenes[name], out)
    with rasterio.open(out) as ds:
        assert ds.crs == CRS.from_epsg(epsg)
        assert ds.count == 3
        left, bottom, right, top = ds.bounds
        assert right - left > 100 and top - bottom > 100  # metres: a real footprint, not a sliver
    assert _valid_fraction(out) > 0.15  # a thin lon/lat strip is diagonal on the metric grid


@pytest.mark.parametrize("name", ["antimeridian", "north"])
def test_lonlat_output_is_accepted_for_polar_and_antimeridian_scenes(scenes, tmp_path, name):
    """Was: a PROJ "Parameterization error" traceback for a polar scene with --t-srs EPSG:4326."""
    out = tmp_path / f"{name}_4326.tif"
    rc = main(["translate", str(scenes[name]), str(out), "--t-srs", "EPSG:4326", "--progress", "none"])
    assert rc == 0
    with rasterio.open(out) as ds:
        assert ds.crs.is_geographic
        left, _, right, _ = ds.bounds
        assert 0 < right - left < 1.0  # degrees: no grid that wraps the globe
        if name == "antimeridian":
            assert left == pytest.approx(179.995, abs=0.005) and right > 180.0  # continuous longitudes
        data = ds.read(1, masked=True)
    assert data.count() > 0.8 * data.size  # the scene's own footprint, not the model grid's bounding box


def test_metric_t_srs_drives_the_model_grid(scenes, tmp_path):
    """Was: --t-srs ignored when the model grid was chosen (always the scene's UTM zone)."""
    out = tmp_path / "north_3413.tif"
    rc = main(["translate", str(scenes["north"]), str(out), "--t-srs", "EPSG:3413", "--progress", "none"])
    assert rc == 0
    with rasterio.open(out) as ds:
        assert ds.crs == CRS.from_epsg(3413)
        assert abs(ds.res[0] - 10.0) < 0.5  # the model's own 10 m spacing, in the requested CRS


def test_utm_crs_for_poles_and_antimeridian():
    assert utm_crs_for(180.004, 60.0) == CRS.from_epsg(32601)
    assert utm_crs_for(-179.99, -10.0) == CRS.from_epsg(32701)
    assert utm_crs_for(20.0, 86.0) == CRS.from_epsg(32661)
    assert utm_crs_for(20.0, -82.0) == CRS.from_epsg(32761)
    assert utm_crs_for(20.0, 83.9) == CRS.from_epsg(32634)


def test_tr_in_the_wrong_units_fails_before_work_with_one_line(tmp_path, capsys):
    """Was: inference ran, then "tile arrays larger than 2GB" (or minutes of writing) at the end."""
    scene = write_sample_scene(tmp_path / "utm.tif", size=64)  # 10 m, EPSG:32631
    out = tmp_path / "utm_rgb.tif"
    rc = main(["translate", str(scene), str(out), "--tr", "0.0001", "--progress", "none"])
    assert rc != 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert "--tr" in err[0] and "coarser" in err[0] and "Traceback" not in err[0]
    assert not out.exists()
    assert not list(tmp_path.glob("utm_rgb*"))


def test_grid_size_check_counts_pixels_not_only_sides():
    crs = CRS.from_epsg(32631)
    side = int(np.sqrt(MAX_GRID_PIXELS)) + 1
    with pytest.raises(ConfigError, match="at least"):
        check_grid_size(side, side, 0.01, crs)
    check_grid_size(side - 2, side - 2, 0.01, crs)  # just under: fine
    grid = Grid(crs, from_origin(500_000.0, 4_600_000.0, 10.0, 10.0), 50, 60)
    with pytest.raises(ConfigError, match=r"--tr .*at least"):
        reprojected_grid(grid, dst_res=0.0001)
    assert reprojected_grid(grid, dst_res=5.0).width == 100

