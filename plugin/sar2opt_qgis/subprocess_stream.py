"""Stream a subprocess's output lines while polling for cancellation.

One helper for the CLI runs (:mod:`.backend`) and the setup steps (:mod:`.installer`): the
process starts in a process group of its own (so a cancel reaches what it started), threads
read its stdout and stderr line by line, and :meth:`ProcessStream.lines` yields them while
polling a cancel callable; on cancel the group gets SIGTERM (Windows: ``terminate``) and, after
a grace period, SIGKILL (Windows: ``kill``).

Standard library only (it runs inside QGIS's Python).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing.Self is Python 3.11+; QGIS may bring an older Python
    from typing import Self

__all__ = ["POLL_S", "TERMINATE_GRACE_S", "ProcessStream", "group_popen_kwargs", "terminate"]

TERMINATE_GRACE_S = 10.0  # seconds between SIGTERM and SIGKILL on cancel
POLL_S = 0.1  # how often the cancel callable is polled while the process is quiet
JOIN_S = 1.0  # how long closing waits for the reader threads


def group_popen_kwargs() -> dict[str, Any]:
    """``Popen`` arguments that give the process a group of its own: a new session on POSIX,
    a new process group without a console window on Windows."""
    if os.name == "posix":
        return {"start_new_session": True}  # own process group: cancel reaches its workers too
    return {
        "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(subprocess, "CREATE_NO_WINDOW", 0)
    }


def terminate(proc: subprocess.Popen, grace_s: float = TERMINATE_GRACE_S) -> None:
    """SIGTERM the process (and anything it started), then SIGKILL after ``grace_s`` seconds."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


def _read_lines(stream, tag: str, q: queue.Queue) -> None:
    """Put ``(tag, line)`` for each line of ``stream`` on ``q``, then ``(tag, None)`` at its end."""
    try:
        for line in iter(stream.readline, ""):
            q.put((tag, line.rstrip("\r\n")))
    finally:
        q.put((tag, None))


class ProcessStream:
    """A started process whose output is read line by line.

    ``with ProcessStream(argv, env=env) as stream:`` starts it (``OSError`` when it cannot be
    started); ``stream.lines(cancel)`` yields ``("out", line)`` and ``("err", line)`` (only
    ``"out"`` with ``merge_stderr=True``); :meth:`wait` gives the exit status. Leaving the block
    with an exception terminates the process; leaving it in any way joins the reader threads.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        merge_stderr: bool = False,
        grace_s: float = TERMINATE_GRACE_S,
        poll_s: float = POLL_S,
    ):
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.cancelled = False
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
            **group_popen_kwargs(),
        )
        self._queue: queue.Queue = queue.Queue()
        streams = [(self.proc.stdout, "out")] + ([] if merge_stderr else [(self.proc.stderr, "err")])
        self._readers = [
            threading.Thread(target=_read_lines, args=(stream, tag, self._queue), daemon=True) for stream, tag in streams
        ]
        for reader in self._readers:
            reader.start()

    def lines(
        self, cancel: Callable[[], bool], on_cancel: Callable[[], None] | None = None
    ) -> Iterator[tuple[str, str]]:
        """Yield ``(tag, line)`` until every stream has ended, polling ``cancel()`` before each
        line and every ``poll_s`` seconds. When it turns true: ``on_cancel()``, then
        :meth:`terminate`, :attr:`cancelled` set and the iteration ends."""
        open_streams = len(self._readers)
        while open_streams:
            if cancel():
                self.cancelled = True
                if on_cancel is not None:
                    on_cancel()
                self.terminate()
                return
            try:
                tag, line = self._queue.get(timeout=self.poll_s)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
                continue
            yield tag, line

    def terminate(self) -> None:
        """SIGTERM, then SIGKILL after the grace period (:func:`terminate`)."""
        terminate(self.proc, self.grace_s)

    def wait(self) -> int:
        """Wait for the process and return its exit status."""
        return self.proc.wait()

    def close(self) -> None:
        """Join the reader threads (up to a second) and close the pipes once they are done."""
        for reader in self._readers:
            reader.join(timeout=JOIN_S)
        if not any(reader.is_alive() for reader in self._readers):
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                self.terminate()  # e.g. KeyboardInterrupt in qgis_process: never leave it running
        finally:
            self.close()
