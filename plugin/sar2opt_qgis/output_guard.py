"""Remember what existed at a run's output locations, so that a cancelled or failed run can
remove what it left (:class:`OutputGuard`).

Standard library only (it runs inside QGIS's Python).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["OutputGuard"]


class OutputGuard:
    """Remember what existed at the output locations before a run, so that a cancelled or
    killed run can remove what it left: new or rewritten files, the atomic writers'
    temporaries beside file outputs, and new entries in output folders."""

    def __init__(
        self,
        files: Iterable[str | os.PathLike] = (),
        folders: Iterable[str | os.PathLike] = (),
        *,
        keep_finished: bool = False,
    ):
        """``keep_finished``: also on cancel, keep the complete outputs a run wrote (AOI crops
        and their summary), so that running again resumes; only temporaries are removed."""
        self.keep_finished = keep_finished
        self._start = time.time()
        self._files = {Path(f): self._stamp(Path(f)) for f in files if f}
        self._folders: dict[Path, set[str] | None] = {}
        for d in folders:
            if d:
                d = Path(d)
                self._folders[d] = set(os.listdir(d)) if d.is_dir() else None

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def cleanup(self, temporaries_only: bool = False) -> list[Path]:
        """Remove partial outputs and return what was removed. ``temporaries_only`` keeps
        finished outputs (after a failure: complete AOI crops stay) and removes only the
        ``.<name>.tmp-*`` files a killed writer may have left."""
        removed: list[Path] = []
        for path, before in self._files.items():
            for tmp in _temporaries_of(path):
                removed += _remove(tmp)
            if not temporaries_only and path.exists() and self._stamp(path) != before:
                removed += _remove(path)
        for folder, before in self._folders.items():
            if not folder.exists():
                continue
            if before is None and not temporaries_only:
                removed += _remove(folder)
                continue
            for name in set(os.listdir(folder)) - (before or set()):
                if not temporaries_only or _is_temporary(name):
                    removed += _remove(folder / name)
        return removed


def _temporaries_of(path: Path) -> list[Path]:
    """What an atomic writer of ``path`` may leave when killed: ``.<name>.tmp-<pid>``
    (DESIGN.md), ``.<stem>.tmp-<pid><suffix>`` (+ ``.aux.xml``) and the scratch folder
    ``.<stem>.work-*`` (sar2opt_geo/io/atomic.py)."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    prefixes = (f".{path.name}.tmp-", f".{path.stem}.tmp-", f".{path.stem}.work-")
    return sorted(path.parent / n for n in names if n.startswith(prefixes))


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and (".tmp-" in name or ".work-" in name)


def _remove(path: Path) -> list[Path]:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return [path]
    except FileNotFoundError:
        return []
    except OSError:
        return []
