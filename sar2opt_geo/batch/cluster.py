"""Dask distributed: the client or local cluster, whether a cluster pays, and running tasks as futures."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import (
    InputError,
)
from .records import CropTask, Record, Split, record_for
from .tasks import (
    assemble_task,
    band_task,
    bands_for,
    bands_per_scene,
    plan_scene_task,
    run_task,
)

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask ``Client``: to ``scheduler`` (``tcp://HOST:PORT``) if given, else on a new
    ``LocalCluster`` with ``workers`` processes (default: CPU cores), one thread each, on
    127.0.0.1, dashboard off. Yields None for ``workers == 0`` (serial)."""
    if scheduler is None and workers == 0:
        yield None
        return
    try:
        from distributed import Client, LocalCluster

        from .worker_logging import QuietHeartbeat
    except ImportError:
        raise InputError("Dask distributed is not installed: pip install 'sar2opt-geo[dask]' (or use --workers 0)") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"{scheduler}: cannot connect to the Dask scheduler ({exc}); start one (dask scheduler) "
                "or leave out --scheduler to use a local cluster"
            ) from None
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    # no dashboard; the scheduler's own HTTP endpoint (health, metrics) on a free port, not 8787, which
    # another cluster may hold ("Port 8787 is already in use" warning)
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, Client(cluster) as client:
        client.register_plugin(QuietHeartbeat())
        yield client


#: Measured on the project machine (2 cores, bundled model, bf16; docs/BATCH.md "When a cluster
#: pays"): `sar2opt batch` of one 4.2 / 16.8 Mpx scene took 4.7 / 10.4 s in one process and
#: 9.7 / 17.4 s on a 2-worker LocalCluster (2 row bands). Fitted: one process needs about
#: SERIAL_S_PER_TASK + SERIAL_S_PER_MPX x Mpx of the model grid; the cluster CLUSTER_START_S
#: more, and its 1-thread workers do the work CLUSTER_WORK_FACTOR times slower than one 2-thread
#: process (band overlap, assembly, no intra-op threads). Beyond 2 workers the cluster's work is
#: assumed to shrink in proportion to the workers (not measured here).
CLUSTER_START_S = 3.5

CLUSTER_WORK_FACTOR = 1.35

SERIAL_S_PER_MPX = 0.45

SERIAL_S_PER_TASK = 1.0

def task_megapixels(task: CropTask, headers: dict[str, tuple[float, float] | None] | None = None) -> float:
    """Megapixels of ``task``'s output on the model grid (10 m), from the scene's header: its
    footprint, or the crop's bounds. A rough size for :func:`cluster_pays`, not a plan.
    ``headers``: what earlier calls read per scene (each scene is opened once for all its crops)."""
    from ..sensors import open_scene

    headers = {} if headers is None else headers
    if task.scene not in headers:
        try:
            with open_scene(task.scene) as scene:
                spacing = scene.pixel_spacing_m() or 10.0
                unit = spacing / max(abs(scene.transform.a), 1e-12) if scene.transform is not None else 1.0
                headers[task.scene] = (scene.width * scene.height * (spacing / 10.0) ** 2 / 1e6, unit)
        except Exception:  # noqa: BLE001 - unknown size: counted as large, so the cluster is not ruled out
            headers[task.scene] = None
    header = headers[task.scene]
    if header is None:
        return 1e3
    whole_mpx, metres_per_unit = header
    if task.bounds is None:
        return whole_mpx
    left, bottom, right, top = task.bounds
    return (right - left) * (top - bottom) * metres_per_unit**2 / 100.0 / 1e6

def cluster_pays(tasks: Sequence[CropTask], workers: int) -> tuple[bool, float, float]:
    """Whether a new local cluster of ``workers`` processes is expected to beat this process on
    ``tasks``: ``(pays, serial seconds, cluster seconds)``, from the constants above (measured on
    2 cores: there a cluster never pays, whatever the size). A whole scene counts as splittable
    into ``workers`` row bands."""
    if workers < 2 or not tasks:
        return False, 0.0, 0.0
    headers: dict[str, tuple[float, float] | None] = {}
    sizes = [task_megapixels(t, headers) for t in tasks]
    serial = sum(SERIAL_S_PER_TASK + SERIAL_S_PER_MPX * m for m in sizes)
    units = sum(workers if t.whole_scene else 1 for t in tasks)
    cluster = CLUSTER_START_S + serial * CLUSTER_WORK_FACTOR * 2 / min(workers, max(units, 2))
    return cluster < serial, serial, cluster

def _worker_threads(client: Any) -> int:
    try:
        return int(sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - only the 'auto' split needs it
        return 1

@dataclass
class _Split:
    """A scene split into row bands, while its bands run."""

    plan: Any
    left: int
    started: float  # time.time()
    failure: Record | None = None

def run_dask(client: Any, tasks: list[CropTask], translate: Callable[..., Any] | None,
              finished: Callable[[Record], None], split: Split = 1) -> None:
    """Run ``tasks`` as Dask futures; split whole scenes go plan -> bands -> assembly, each
    submitted when the step before it is done, so bands of several scenes share the workers."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]  # fresh keys: a rerun with --redo must not reuse earlier results
    n = bands_per_scene(split, sum(t.whole_scene for t in tasks), _worker_threads(client))
    meta: dict[str, tuple[str, CropTask]] = {}
    live: dict[str, Any] = {}
    splits: dict[int, _Split] = {}
    started: dict[int, float] = {}
    ac = as_completed()

    def submit(kind: str, fn: Callable[..., Any], task: CropTask, *args: Any, k: int = -1) -> None:
        key = f"sar2opt-{kind}-{token}-{task.order}" + (f"-{k}" if k >= 0 else "")
        fut = client.submit(fn, task, *args, key=key, pure=False)
        meta[fut.key], live[fut.key] = (kind, task), fut
        ac.add(fut)

    for task in tasks:
        started[task.order] = time.time()
        if bands_for(task, n) > 1:
            submit("plan", plan_scene_task, task, n)
        else:
            submit("crop", run_task, task, translate)
    try:
        for fut in ac:
            kind, task = meta.pop(fut.key)
            live.pop(fut.key, None)
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - the worker died or the task could not be unpickled
                res = record_for(task, "failed", f"Dask task failed: {type(exc).__name__}: {exc}",
                              time.time() - started[task.order])
            if kind in ("crop", "assemble"):
                finished(res)
            elif kind == "plan":
                if isinstance(res, Record):
                    finished(res)
                    continue
                splits[task.order] = _Split(res, len(res.rows), started[task.order])
                for b in range(len(res.rows)):
                    submit("band", band_task, task, res, b, k=b)
            else:  # a band
                state = splits[task.order]
                state.left -= 1
                if isinstance(res, Record) and state.failure is None:
                    state.failure = res
                if state.left == 0:
                    if state.failure is not None:
                        state.failure.seconds = round(time.time() - state.started, 3)
                        finished(state.failure)
                    else:
                        submit("assemble", assemble_task, task, state.plan, state.started)
    except BaseException:
        client.cancel(list(live.values()))
        raise
