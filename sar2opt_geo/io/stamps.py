"""What identifies an input file's version: resolved path, size and modification time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["file_fingerprint"]


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Resolved path, size in bytes and mtime (ns) of a scene; for a product folder, totals over its files."""
    path = Path(path).resolve()
    if path.is_dir():
        size, mtime, count = 0, 0, 0
        for root, _dirs, files in os.walk(path):
            for f in files:
                st = os.stat(os.path.join(root, f))
                size, mtime, count = size + st.st_size, max(mtime, st.st_mtime_ns), count + 1
        return {"path": str(path), "size": size, "mtime_ns": mtime, "files": count}
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
