"""Issue 19: bad sensor input is one clear line naming the file and the problem (library and CLI).

* a Sentinel-1 SAFE with a truncated or junk annotation / calibration / noise XML (the real
  SAFE metadata of ``../shared/data``, copied into tmp_path and damaged there);
* complex (SLC) GeoTIFFs: read as intensity ``|z|^2``, not as the real part;
* sparse scenes: the scene statistics find a small patch of data the block sample misses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from sar2opt_geo.cli.main import main
from sar2opt_geo.errors import InputError
from sar2opt_geo.sensors import open_scene

STEM = "s1b-iw-grd-vv-20211223t051122-20211223t051147-030148-039993-001"
XMLS = {
    "annotation": f"annotation/{STEM}.xml",
    "calibration": f"annotation/calibration/calibration-{STEM}.xml",
    "noise": f"annotation/calibration/noise-{STEM}.xml",
}


def _copy_safe(src: Path, dst_parent: Path) -> Path:
    """A writable copy of the real SAFE (files copied without their read-only modes)."""
    dst = dst_parent / src.name
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return dst


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])  # a download cut half-way
    elif how == "junk":
        path.write_bytes(np.random.default_rng(0).bytes(2048))
    else:  # well-formed XML, but the vectors' numbers are junk
        text = data.decode()
        start = text.index("<pixel", text.index("Vector"))
        end = text.index("</pixel>", start)
        path.write_text(text[: text.index(">", start) + 1] + "0 12 not-a-number" + text[end:])


@pytest.mark.parametrize("which", list(XMLS))
@pytest.mark.parametrize("how", ["truncated", "junk"])
def test_truncated_or_junk_safe_xml_is_one_line_input_error(s1_safe: Path, tmp_path: Path, which: str, how: str):
    """Regression: a truncated or junk annotation, calibration or noise XML gave an ElementTree ParseError
    (or ValueError) traceback. Now open_scene raises one InputError line naming the XML file."""
    safe = _copy_safe(s1_safe, tmp_path)
    _damage(safe / XMLS[which], how)
    with pytest.raises(InputError, match="truncated or damaged") as err:
        open_scene(safe)
    message = str(err.value)
    assert str(safe / XMLS[which]) in message and "\n" not in message
    assert "not well-formed XML" in message


@pytest.mark.parametrize("which", ["calibration", "noise"])
def test_safe_lut_xml_with_junk_numbers_is_one_line_input_error(s1_safe: Path, tmp_path: Path, which: str):
    """Regression: a well-formed LUT XML whose pixel list holds junk raised ValueError from numpy mid-read."""
    safe = _copy_safe(s1_safe, tmp_path)
    _damage(safe / XMLS[which], "numbers")
    with pytest.raises(InputError, match="incomplete or damaged") as err:
        open_scene(safe)
    assert str(safe / XMLS[which]) in str(err.value) and "\n" not in str(err.value)


def test_safe_annotation_without_image_size_names_the_file(s1_safe: Path, tmp_path: Path):
    """Regression: an annotation without <numberOfSamples> raised ``int('')`` ValueError."""
    safe = _copy_safe(s1_safe, tmp_path)
    ann = safe / XMLS["annotation"]
    text = ann.read_text()
    start, end = text.index("<numberOfSamples>"), text.index("</numberOfSamples>") + len("</numberOfSamples>")
    ann.write_text(text[:start] + text[end:])
    with pytest.raises(InputError, match="numberOfSamples") as err:
        open_scene(safe)
    assert str(ann) in str(err.value)


def test_truncated_annotation_xml_is_one_line_cli_error(s1_safe: Path, tmp_path: Path, capsys):
    """Regression: ``sar2opt info`` on a SAFE with a truncated annotation printed a traceback."""
    safe = _copy_safe(s1_safe, tmp_path)
    _damage(safe / XMLS["annotation"], "truncated")
    assert main(["info", str(safe)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sar2opt: error: ") and "\n" not in err
    assert str(safe / XMLS["annotation"]) in err and "Traceback" not in err


def test_truncated_noise_xml_in_a_zipped_safe_names_the_member(s1_safe: Path, tmp_path: Path):
    """The zip form names the damaged member inside the zip."""
    import zipfile

    safe = _copy_safe(s1_safe, tmp_path)
    _damage(safe / XMLS["noise"], "truncated")
    archive = tmp_path / f"{safe.stem}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(safe.rglob("*")):
            if path.is_file():
                z.write(path, f"{safe.name}/{path.relative_to(safe)}")
    with pytest.raises(InputError, match="not well-formed XML") as err:
        open_scene(archive)
    assert f"{archive}/{safe.name}/{XMLS['noise']}" in str(err.value)


# -- complex (SLC) GeoTIFFs -----------------------------------------------------------------


def _write_complex(path: Path, z: np.ndarray, dtype: str, nodata=None) -> Path:
    """Synthetic: a small complex GeoTIFF (no real SLC sample exists under ../shared/data)."""
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[-1], height=z.shape[-2], count=1, dtype=dtype,
                       crs="EPSG:32631", transform=from_origin(500_000.0, 4_600_000.0, 10.0, 10.0),
                       nodata=nodata) as dst:
        dst.write(z.astype(np.complex64)[None])
    return path


@pytest.mark.parametrize("dtype", ["complex64", "complex_int16"])
def test_complex_slc_geotiff_reads_intensity_not_the_real_part(tmp_path: Path, dtype: str):
    """Regression: complex64 input lost its imaginary part (read as 'integer DN' of the real part) and
    CInt16 raised a numpy TypeError. Synthetic SLC: read() is |z|^2 and the scene says so."""
    rng = np.random.default_rng(3)
    z = rng.integers(-300, 300, (16, 24)) + 1j * rng.integers(-300, 300, (16, 24))
    z[0, 0] = 0  # nodata
    path = _write_complex(tmp_path / f"slc_{dtype}_VV.tif", z, dtype, nodata=0)
    scene = open_scene(path)
    assert scene.frequency_band is not None  # complex data is SAR
    band = scene.bands["VV"]
    assert "|z|^2" in band.description and "complex" in band.description
    assert "|z|^2" in scene.calibration and "phase" in scene.metadata["complex"]
    if dtype == "complex_int16":
        assert band.quantity == "dn"  # uncalibrated SLC DN
    values = scene.read("VV")
    expected = (z.real ** 2 + z.imag ** 2).astype(np.float32)
    assert np.isnan(values[0, 0])
    np.testing.assert_allclose(values.ravel()[1:], expected.ravel()[1:], rtol=1e-6)
    win = scene.read("VV", Window(col_off=5, row_off=3, width=4, height=2))
    np.testing.assert_allclose(win, expected[3:5, 5:9], rtol=1e-6)
    scene.close()


def test_complex_slc_geotiff_refuses_units_that_cannot_apply(tmp_path: Path):
    """Synthetic SLC: units=db (or an optical sensor) cannot describe complex samples: one clear line."""
    from sar2opt_geo.errors import UnsupportedFormatError

    path = _write_complex(tmp_path / "slc.tif", np.full((4, 4), 3 + 4j), "complex64")
    with pytest.raises(UnsupportedFormatError, match=r"slc\.tif: complex .* units='db' does not apply"):
        open_scene(path, units="db")
    with pytest.raises(UnsupportedFormatError, match=r"slc\.tif: complex .* SAR \(SLC\) data, not optical"):
        open_scene(path, sensor="optical")
    np.testing.assert_allclose(open_scene(path, units="amplitude").read("b1"), 25.0)


# -- sparse scenes: statistics ----------------------------------------------------------------

SPARSE = 4200  # just above the 16.8 Mpx statistics sampling limit: every 2nd 512-px block is sampled
PATCH = Window(col_off=100, row_off=100, width=40, height=40)  # in block 0, which the sample skips


@pytest.fixture(scope="module")
def sparse_scene(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Synthetic: 4200 x 4200 float32 linear VH, tiled and compressed, nodata (NaN) but one 40 x 40 patch."""
    path = tmp_path_factory.mktemp("sparse") / "synthetic_sparse_mosaic_VH.tif"
    patch = np.random.default_rng(5).gamma(1.0, 0.02, (40, 40)).astype(np.float32)
    profile = {"driver": "GTiff", "width": SPARSE, "height": SPARSE, "count": 1, "dtype": "float32",
               "crs": "EPSG:32631", "transform": from_origin(500_000, 4_800_000, 10, 10), "nodata": float("nan"),
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as ds:  # blocks never written are nodata (GDAL sparse files)
        ds.set_band_description(1, "VH")
        ds.update_tags(1, UNITS="linear")
        ds.write(patch, 1, window=PATCH)
    return path, patch


def _percentile_domain():
    from sar2opt_geo.models import InputDomain

    return InputDomain(sensor="Sentinel-1", bands=("VH",), quantity="sigma0", normalisation="percentile",
                       percentile=99.0, quantize_levels=255)


def test_sparse_scene_statistics_find_a_small_patch_the_sample_misses(sparse_scene):
    """Regression: the sampled statistics pass read every 2nd block, missed the only data (a 40 x 40 patch)
    and said 'band VH holds only nodata'. Now a sample without enough valid pixels reads the other blocks."""
    from sar2opt_geo.errors import NoValidDataError
    from sar2opt_geo.preprocess.domain import make_normaliser

    path, patch = sparse_scene
    scene = open_scene(path)
    assert scene.width * scene.height > (1 << 24)  # the statistics are sampled for this size
    with pytest.raises(NoValidDataError, match="only nodata"):  # the block sample alone misses the patch
        make_normaliser(_percentile_domain(), ["VH"], scene.read, scene.height, scene.width, source=path,
                        min_sample=0)
    fractions: list[float] = []
    norm = make_normaliser(_percentile_domain(), ["VH"], scene.read, scene.height, scene.width, source=path,
                           progress=lambda f, msg: fractions.append(f))
    assert norm.valid_pixels == patch.size
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # progress never goes back
    assert norm.scales[0] == pytest.approx(np.percentile(patch, 99), rel=0.01)
    scene.close()


def test_sparse_scene_translation_plan_uses_the_patch_statistics(sparse_scene):
    """The translate path (plan_translation, which computes the statistics before any inference) finds the
    patch too, for the whole scene."""
    import torch

    from sar2opt_geo.models import ModelCard, UNetGenerator
    from sar2opt_geo.models.loading import load
    from sar2opt_geo.options import TranslateOptions
    from sar2opt_geo.preprocess.domain import clear_statistics_cache
    from sar2opt_geo.translation.plan import plan_translation

    path, patch = sparse_scene
    torch.manual_seed(0)
    card = ModelCard(name="tiny-vh", architecture="unet_article",
                     architecture_args={"in_channels": 1, "out_channels": 3, "width": 0.0625},
                     input=_percentile_domain())
    model = load((UNetGenerator(1, 3, width=0.0625).eval(), card))
    clear_statistics_cache()
    with open_scene(path) as scene:
        plan = plan_translation(scene, model, TranslateOptions(tile_size=256, overlap=96, batch_size=2, device="cpu"))
    assert plan.statistics_area.startswith("whole scene")
    assert plan.normaliser.valid_pixels == patch.size
    assert plan.normaliser.scales[0] == pytest.approx(np.percentile(patch, 99), rel=0.01)


def test_calibration_factor_for_a_plain_raster_is_refused_not_ignored(tmp_path, capsys):
    """Issue 24: --calibration-factor was silently ignored for anything but a PALSAR-2 product."""
    from sar2opt_geo.cli.main import main
    from sar2opt_geo.errors import ConfigError
    from sar2opt_geo.samples.synthetic import write_sample_scene
    from sar2opt_geo.sensors import open_scene

    scene = write_sample_scene(tmp_path / "s1.tif", size=32)
    with pytest.raises(ConfigError, match=r"s1\.tif: --calibration-factor .*PALSAR-2"):
        open_scene(scene, calibration_factor_db=-80.0)
    out = tmp_path / "rgb.tif"
    assert main(["translate", str(scene), str(out), "--calibration-factor", "-80", "--progress", "none"]) != 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "PALSAR-2" in err[0] and not out.exists()
