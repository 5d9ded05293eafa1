"""Write the real sample pair bundled for ``sar2opt demo`` (run once; the outputs are committed).

A 512 x 512 px crop (rows and columns 256..767) of tile 156 of ``../shared/data/pairs/
s1vh_s2rgb_epsg3395``: Sentinel-1A IW GRDH VH of 2020-11-07 (uint8 = linear sigma0 / scene
99th percentile, clipped, x 255) and Sentinel-2A L1C true colour of 2020-11-04 (tile T11SMT,
uint8, each band / its 99th percentile), EPSG:3395, 10 m. Tile 156 is in the **validation area**
of the area split (never trained on), so the demo shows the model on a place it has not seen.

Contains modified Copernicus Sentinel data 2020 (the Copernicus Sentinel data licence allows
reproduction and distribution; source: the Optical-SAR-dataset repository of VolkovVl).

    .venv/bin/python scripts/make_demo_sample.py [../shared/data]
"""

from __future__ import annotations

import sys
from pathlib import Path

import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "sar2opt_geo" / "samples" / "data"
TILE, WINDOW = "156", Window(col_off=256, row_off=256, width=512, height=512)
ATTRIBUTION = "Contains modified Copernicus Sentinel data 2020"


def main(data: Path) -> None:
    pairs = data / "pairs" / "s1vh_s2rgb_epsg3395"
    jobs = (
        ("sar", "S1A_IW_GRDH_20201107_VH_la156_512px.tif", ("VH",),
         {"SENSOR": "Sentinel-1A", "PRODUCT": "IW GRDH, S1A_IW_GRDH_1SDV_20201107T135241", "POLARISATION": "VH",
          "QUANTITY": "sigma0", "UNITS": "scaled",
          "SCALING": "uint8 = linear sigma0 / scene 99th percentile, clipped to 1, x 255"}),
        ("opt", "S2A_MSIL1C_20201104_T11SMT_RGB_la156_512px.tif", ("red", "green", "blue"),
         {"SENSOR": "Sentinel-2A", "PRODUCT": "MSIL1C T11SMT 2020-11-04",
          "SCALING": "uint8 = band / its 99th percentile, clipped to 1, x 255"}),
    )
    OUT.mkdir(parents=True, exist_ok=True)
    for side, name, bands, tags in jobs:
        with rasterio.open(pairs / side / f"{TILE}.tif") as src:
            data_ = src.read(window=WINDOW)
            profile = {"driver": "GTiff", "width": 512, "height": 512, "count": src.count, "dtype": "uint8",
                       "crs": src.crs, "transform": src.window_transform(WINDOW), "compress": "deflate",
                       "predictor": 2, "zlevel": 9, "tiled": True, "blockxsize": 256, "blockysize": 256}
            if src.count == 3:
                profile["photometric"] = "RGB"
        tmp = OUT / f".{name}.tmp"
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data_)
            for i, b in enumerate(bands, 1):
                dst.set_band_description(i, b)
            dst.update_tags(**tags, ATTRIBUTION=ATTRIBUTION, SOURCE=f"s1vh_s2rgb_epsg3395 tile {TILE}, rows/cols 256..767")
        tmp.replace(OUT / name)
        print(OUT / name, (OUT / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
