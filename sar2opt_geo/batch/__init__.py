"""Batches: translate whole scenes, or every scene x AOI feature into its own masked GeoTIFF,
resumably, serially or on Dask distributed; a large scene can be split into row bands run by
several workers, with the very bytes of a one-pass translate.

Three steps:

1. :func:`plan_batch` (in the calling process, cheap): open each scene's metadata; with an AOI,
   reproject and buffer each feature into the scene CRS and drop unusable or non-overlapping
   features (reported, not fatal); hash the inputs of each output and skip those already
   complete from an earlier run (same hash, same file size and mtime as recorded).
2. :func:`run_task` (in any process): load the model once per process
   (:func:`load_model_cached`), call :func:`sar2opt_geo.translate` on the whole scene, or with
   ``bounds`` (the crop window, with the engine's context margin read around it) and ``aoi``
   (mask outside the polygon to nodata unless ``keep_rectangle``). Never raises: a failure
   becomes a record. A scene split into row bands (``split``) runs as
   :func:`plan_scene_task` -> :func:`band_task` per band -> :func:`assemble_task`
   (:mod:`sar2opt_geo.translation.rowbands`), each a task of its own.
3. :func:`run_batch` runs the tasks serially (``client=None``) or as Dask futures
   (``client.submit`` + ``as_completed``), and merges its rows into ``summary.gpkg`` (layer
   ``summary``): footprint, scene, output, status (done / skipped / failed), reason, timing and
   input hash. Rows are keyed by output path and merged under a file lock, so several AOI files
   or concurrent batches can share one folder; the summary is rewritten after every whole scene
   and every crop that took a while (and at least every few seconds), so a batch killed with
   ``kill -9`` resumes without redoing finished scenes.

Output names say which scene, AOI file and feature an output comes from, whatever else is in the
batch or the folder, so that one output is never replaced by another's:

* whole scene: ``<scene key>.tif``;
* AOI crop: ``<aoi key>__<feature name>__<scene key>.tif``
  (:func:`sar2opt_geo.batch.aoi.output_filename`), e.g. ``fields__Parcel_1__S1A_IW_GRDH_1SDV_...tif``.

The **scene key** is the scene's stem (file name without suffix; a product folder's name without
``.SAFE``). When scenes with the same stem meet, in one batch or in one output folder across
batches, the scene whose rows in the folder's summary already use the plain stem keeps it, and
the others get ``<stem>-<8 hex digits>``, the digits being a SHA-256 prefix of the scene's
resolved path; a scene once named with its hash keeps that name (:func:`scene_keys`). Names thus
never depend on the order of the scenes, so a rerun with the scenes listed in another order skips
what is done. The **aoi key** is the AOI file's stem, sanitised, plus ``.<layer>`` for a layer of
a multi-layer file (:func:`sar2opt_geo.batch.aoi.aoi_key`): two AOI files whose features share a name
("field1") give two outputs and two summary rows. Two AOI files with the same stem (in different
folders) are the same AOI to a batch: the later one's crops replace the earlier one's, with a
warning naming both files. The feature name is the ``--name-field`` value or the feature id
(:func:`sar2opt_geo.batch.aoi.read_aoi`). Outputs are written atomically by translate.

The output folder is checked before any work (created if missing, a real probe file written and
removed): an existing file there, a read-only folder or a full disk is one
:class:`~sar2opt_geo.errors.ConfigError` / :class:`~sar2opt_geo.errors.InputError` line naming
the folder. A disk that fills up (or turns read-only) during the batch stops it with one
:class:`~sar2opt_geo.errors.InputError` line; the outputs finished so far are kept and recorded,
and a rerun resumes.
"""

from __future__ import annotations

from ..models.loading import load_model_cached
from .cluster import cluster_pays, dask_client, task_megapixels
from .hashing import input_hash
from .planning import plan_batch
from .records import BatchSummary, CropTask, Record
from .run import check_output_dir, run_batch
from .scenes import SceneInfo, expand_scenes, scene_info, scene_keys
from .summary import (
    SUMMARY_CRS,
    SUMMARY_LAYER,
    SUMMARY_NAME,
    read_summary,
    summary_lock,
    write_summary,
)
from .tasks import assemble_task, band_task, bands_per_scene, plan_scene_task, run_task

__all__ = [
    "SUMMARY_CRS",
    "SUMMARY_LAYER",
    "SUMMARY_NAME",
    "BatchSummary",
    "CropTask",
    "Record",
    "SceneInfo",
    "assemble_task",
    "band_task",
    "bands_per_scene",
    "check_output_dir",
    "cluster_pays",
    "dask_client",
    "expand_scenes",
    "input_hash",
    "load_model_cached",
    "plan_batch",
    "plan_scene_task",
    "read_summary",
    "run_batch",
    "run_task",
    "scene_info",
    "scene_keys",
    "summary_lock",
    "task_megapixels",
    "write_summary",
]
