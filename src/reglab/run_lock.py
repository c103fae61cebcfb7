"""One process at a time in a run directory: an exclusive `flock` (via `filelock`) on `<dir>/.lock`, and
`<dir>/.lock.json` saying who holds it ({pid, host, started}).

The kernel drops a flock when its process dies, so a SIGKILLed run never leaves a lock behind; a stale
`.lock.json` is harmless (it is only read while the flock is held by someone). A second process gets
`RunDirectoryInUse` (a ValueError naming the holder) at once, or after waiting.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import socket
import warnings
from pathlib import Path

from reglab.files import write_json

LOCK = ".lock"  # flock'ed while a process uses the directory
HOLDER = ".lock.json"  # {pid, host, started} of that process (a sidecar: the lock file itself is the flock's)


class RunDirectoryInUse(ValueError):
    """Another process holds the run directory's lock. `holder` is its record ({pid, host, started}) or None."""

    def __init__(self, message: str, holder: dict | None):
        super().__init__(message)
        self.holder = holder


class RunLock:
    """The lock of the run directory at `path`; `acquire` takes it (creating the directory), `release` lets it go."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def acquire(self, wait: float | None = None) -> None:
        """Take the lock, waiting at most `wait` seconds (None or 0: not at all; math.inf: as long as it
        takes). Raises RunDirectoryInUse naming the holder."""
        if self._lock is not None:
            return
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path / LOCK)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise self._in_use() from None
            warnings.warn(
                f"reglab: run directory {self.path} is in use by {self._holder()[1]}; waiting up to {wait:g} s for it",
                UserWarning,
                stacklevel=4,
            )
            try:
                lock.acquire(timeout=-1 if math.isinf(wait) else wait)
            except Timeout:
                raise self._in_use(waited=wait) from None
        self._lock = lock
        try:
            write_json(
                self.path / HOLDER,
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                },
            )
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Let the lock go (if this object holds it). Safe to call twice."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            (self.path / HOLDER).unlink(missing_ok=True)  # before the unlock: afterwards it may be the next holder's
        finally:
            lock.release()

    def _holder(self) -> tuple[dict | None, str]:
        """The holder's record and a description of it ("process 1234 on host h since …")."""
        try:
            holder = json.loads((self.path / HOLDER).read_text())
            return holder, f"process {int(holder['pid'])} on host {holder['host']} since {holder['started']}"
        except (OSError, ValueError, TypeError, KeyError):  # not written yet (it is, just after the flock)
            return None, "another process"

    def _in_use(self, waited: float | None = None) -> RunDirectoryInUse:
        holder, who = self._holder()
        after = f" (waited {waited:g} s)" if waited else ""
        return RunDirectoryInUse(
            f"run directory {self.path} is in use by {who}{after}; wait for it (--wait SECONDS) or use another "
            f"--run-dir. Received: run_dir={str(self.path)!r}",
            holder,
        )
