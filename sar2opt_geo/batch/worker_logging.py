"""Logging in the workers of the local Dask cluster that ``sar2opt batch`` starts (imports distributed)."""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

HEARTBEAT_FAILURE = "Failed to communicate with scheduler during heartbeat"


class QuietHeartbeat(WorkerPlugin):
    """Drops the worker's "Failed to communicate with scheduler during heartbeat" record (an ERROR
    with a traceback). On a loopback cluster that this process starts and owns, the heartbeat
    fails only in the race of closing it (a heartbeat in flight while the worker's connections
    close), which printed a traceback after a successful batch; a worker that really loses its
    scheduler still fails its tasks, which the batch records. Registered only on that local
    cluster, never on a user's ``--scheduler``."""

    idempotent = True
    name = "sar2opt-quiet-heartbeat"

    def setup(self, worker: Any) -> None:
        logging.getLogger("distributed.worker").addFilter(drop_heartbeat_failure)

    def teardown(self, worker: Any) -> None:
        logging.getLogger("distributed.worker").removeFilter(drop_heartbeat_failure)


def drop_heartbeat_failure(record: logging.LogRecord) -> bool:
    """``logging`` filter: False for the heartbeat-failure record, True for every other."""
    return not str(record.msg).startswith(HEARTBEAT_FAILURE)
