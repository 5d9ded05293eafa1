"""AOI reading, naming, reprojection and buffering (sar2opt_geo.batch.aoi)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import LineString, Point, Polygon, box

from sar2opt_geo.batch.aoi import (
    NULL_GEOMETRY,
    aoi_key,
    geometry_problem,
    metric_crs,
    output_filename,
    prepare_aoi,
    read_aoi,
    sanitize_name,
    unique_names,
)
from sar2opt_geo.errors import GeoreferencingError, InputError


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Zürich Nord", "Zurich_Nord"),
        ("a/b\\c:d*e?f", "a_b_c_d_e_f"),
        ("  ..field 7..  ", "field_7"),
        ("CON", "CON_"),
        ("nul.txt", "nul.txt_"),
        ("x" * 200, "x" * 80),
    ],
)
def test_sanitize_name_makes_safe_stems(value, expected):
    assert sanitize_name(value, "3") == expected


@pytest.mark.parametrize("value", [None, float("nan"), "", "///", "日本"])
def test_sanitize_name_falls_back_to_feature_id(value):
    assert sanitize_name(value, "12") == "12"


def test_unique_names_is_case_insensitive_and_avoids_existing_names():
    names = unique_names(["a", "A", "a_2", "b", "a"])
    assert names[0] == "a" and names[2] == "a_2" and names[3] == "b"
    assert len({n.lower() for n in names}) == len(names)
    assert all(n.lower().startswith("a") for n in (names[1], names[4]))


def test_output_filename():
    assert output_filename("fields", "field_1", "S1A_x") == "fields__field_1__S1A_x.tif"


def test_aoi_key_is_the_file_stem_plus_the_layer_of_a_multi_layer_file():
    assert aoi_key("/data/Parcelles été.gpkg") == "Parcelles_ete"
    assert aoi_key("/data/parcels.gpkg", "fields 2024") == "parcels.fields_2024"


def _gdf(geoms, crs="EPSG:4326", **cols):
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=crs)


@pytest.mark.parametrize("ext, driver", [(".shp", "ESRI Shapefile"), (".geojson", "GeoJSON"), (".gpkg", "GPKG")])
def test_read_aoi_formats_names_from_field_or_feature_id(tmp_path, ext, driver):
    path = tmp_path / f"aoi{ext}"
    _gdf([box(0, 0, 1, 1), box(1, 1, 2, 2), box(2, 2, 3, 3)], label=["North field", None, "north/field"]).to_file(
        path, driver=driver
    )
    by_field = read_aoi(path, name_field="label")
    fids = [str(i) for i in by_field.index]
    assert list(by_field["name"]) == ["North_field", fids[1], "north_field_2"]
    assert CRS.from_user_input(by_field.crs) == CRS.from_epsg(4326)
    by_id = read_aoi(path)
    assert list(by_id["name"]) == fids
    assert len(set(fids)) == 3


def test_read_aoi_layer_choice_and_errors(tmp_path):
    path = tmp_path / "aoi.gpkg"
    _gdf([box(0, 0, 1, 1)], label=["a"]).to_file(path, layer="fields")
    _gdf([box(5, 5, 6, 6), box(6, 6, 7, 7)], label=["b", "c"]).to_file(path, layer="towns")
    with pytest.raises(InputError, match="--layer"):
        read_aoi(path)
    towns = read_aoi(path, layer="towns", name_field="label")
    assert list(towns["name"]) == ["b", "c"]
    assert list(towns.index) == [1, 2]  # GeoPackage FIDs
    with pytest.raises(InputError, match="fields, towns"):
        read_aoi(path, layer="roads")
    with pytest.raises(InputError, match="label"):
        read_aoi(path, layer="towns", name_field="nom")
    with pytest.raises(InputError, match="not found"):
        read_aoi(tmp_path / "missing.gpkg")
    # the source of the features is recorded; the layer is part of the name of a multi-layer file's
    assert towns.attrs == {"aoi_source": str(path.resolve()), "aoi_layer": "towns", "aoi_key": "aoi.towns"}
    single = tmp_path / "single.gpkg"
    _gdf([box(0, 0, 1, 1)]).to_file(single, layer="parcels")
    assert read_aoi(single).attrs == {"aoi_source": str(single.resolve()), "aoi_layer": "parcels", "aoi_key": "single"}


@pytest.mark.parametrize("ext", [".gpkg", ".shp", ".geojson"])
def test_empty_aoi_layer_is_refused_naming_file_and_layer(tmp_path, ext):
    """Regression (issue 19): an AOI layer without features made a batch of nothing that exited 0
    without a word."""
    path = tmp_path / f"empty{ext}"
    gpd.GeoDataFrame({"label": []}, geometry=gpd.GeoSeries([], crs=4326), crs=4326).to_file(
        path, **({"layer": "parcels"} if ext == ".gpkg" else {}))
    layer = "parcels" if ext == ".gpkg" else "empty"
    with pytest.raises(InputError, match=rf"empty\{ext}: AOI layer '{layer}' has no features.*add polygons"):
        read_aoi(path)
    # in a multi-layer file, the message lists the other layers
    if ext == ".gpkg":
        _gdf([box(0, 0, 1, 1)]).to_file(path, layer="towns")
        with pytest.raises(InputError, match=r"'parcels' has no features.*--layer \(towns\)"):
            read_aoi(path, layer="parcels")


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_read_aoi_without_crs_is_refused(tmp_path):
    gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]).to_file(tmp_path / "nocrs.shp")  # Shapefile without .prj
    with pytest.raises(GeoreferencingError, match="no CRS"):
        read_aoi(tmp_path / "nocrs.shp")


def test_geometry_problem():
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    assert "invalid" in geometry_problem(bowtie) and "Self-intersection" in geometry_problem(bowtie)
    assert geometry_problem(Polygon()) == "empty geometry"
    assert geometry_problem(None) == NULL_GEOMETRY and geometry_problem(float("nan")) == NULL_GEOMETRY
    assert "no area" in geometry_problem(Point(0, 0))
    assert geometry_problem(Point(0, 0), buffer_m=10) is None
    assert geometry_problem(box(0, 0, 1, 1)) is None


def test_prepare_aoi_reprojects_vertices_like_pyproj(s1_db_tif):
    with rasterio.open(s1_db_tif) as ds:
        scene_crs, b = ds.crs, ds.bounds
    to_ll = Transformer.from_crs(scene_crs, "EPSG:4326", always_xy=True)
    ring_utm = [(b.left + 500, b.bottom + 500), (b.right - 500, b.bottom + 800), (b.left + 2000, b.top - 300)]
    poly_ll = Polygon([to_ll.transform(x, y) for x, y in ring_utm])
    out = prepare_aoi(poly_ll, "EPSG:4326", scene_crs)
    # densified edges, but every original vertex comes back within a millimetre
    coords = np.asarray(out.exterior.coords)
    for x, y in ring_utm:
        assert np.min(np.hypot(coords[:, 0] - x, coords[:, 1] - y)) < 1e-3
    assert out.area == pytest.approx(Polygon(ring_utm).area, rel=1e-4)


def test_prepare_aoi_buffers_in_metres_in_projected_scene_crs(s1_db_tif):
    with rasterio.open(s1_db_tif) as ds:
        scene_crs, b = ds.crs, ds.bounds
    square = box(b.left + 1000, b.bottom + 1000, b.left + 2000, b.bottom + 2000)
    grown = prepare_aoi(square, scene_crs, scene_crs, buffer_m=100)
    assert grown.bounds == pytest.approx((b.left + 900, b.bottom + 900, b.left + 2100, b.bottom + 2100))
    shrunk = prepare_aoi(square, scene_crs, scene_crs, buffer_m=-600)
    assert shrunk.is_empty


def test_prepare_aoi_buffers_in_local_utm_for_geographic_target():
    lonlat = box(2.30, 48.80, 2.32, 48.81)  # Paris
    grown = prepare_aoi(lonlat, "EPSG:4326", "EPSG:4326", buffer_m=250)
    utm, factor = metric_crs(CRS.from_epsg(4326), lonlat)
    assert utm.to_epsg() == 32631 and factor == 1.0
    a = gpd.GeoSeries([lonlat], crs=4326).to_crs(utm).iloc[0]
    g = gpd.GeoSeries([grown], crs=4326).to_crs(utm).iloc[0]
    # the buffered boundary lies 250 m from the original polygon, everywhere
    d = [a.distance(shapely.Point(p)) for p in np.asarray(g.exterior.coords)]
    assert min(d) == pytest.approx(250, abs=1.0) and max(d) == pytest.approx(250, abs=1.0)


def test_prepare_aoi_keeps_holes_and_multipolygons():
    outer = box(0, 0, 1000, 1000)
    hole = box(400, 400, 600, 600)
    multi = shapely.MultiPolygon([Polygon(outer.exterior.coords, [hole.exterior.coords]), box(2000, 0, 2500, 500)])
    out = prepare_aoi(multi, "EPSG:32631", "EPSG:32631", buffer_m=10)
    assert out.geom_type == "MultiPolygon" and len(out.geoms) == 2
    big = max(out.geoms, key=lambda g: g.area)
    assert len(big.interiors) == 1
    assert Polygon(big.interiors[0]).bounds == pytest.approx((410, 410, 590, 590))
    # a buffered line becomes an area
    line = prepare_aoi(LineString([(0, 0), (100, 0)]), "EPSG:32631", "EPSG:32631", buffer_m=5)
    assert line.area == pytest.approx(100 * 10 + np.pi * 25, rel=0.01)
