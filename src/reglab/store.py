"""The run directory: append-only, atomic, resumable.

```
runs/<name>/
  spec.json          the sweep's settings, their hash and the data fingerprint (written first)
  members/<id>.parquet   one file per completed member: its epoch records (durable once written)
  histograms/<id>.parquet  that member's final weight histograms (written just before its records)
  epochs.parquet     all epoch records          } derived from members/ at the end of a run
  members.parquet    one row per member         } and by `reglab report`
  histograms.parquet all members' final weight histograms   } (report.html and plots use only these)
  summary.json       per-point summary, best point, 1-SE point, verdicts, test score
  test.json          the once-only test score of the selected point
  plots/*.png        learning curves, validation curve, penalty share, regularization paths, weights
  report.html        everything above in one self-contained interactive page
  best_model.keras   the selected point refit on all non-test data
```

Every file is written to a temporary name in the same directory and moved into place with
`os.replace`, so a crash or SIGKILL leaves either the old file or the new one, never half of one.
A run directory only ever resumes the sweep it was made for: a different spec or different data is
refused before anything is trained.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

_UMASK = os.umask(0)  # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)

SPEC = "spec.json"
MEMBERS = "members"
HISTOGRAMS = "histograms"


@contextmanager
def atomic_path(target: Path, suffix: str = ".tmp"):
    """Yield a temporary path next to `target`; on success move it over `target` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the finished file gets the usual permissions
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:  # the bytes reach the disk before the name does
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(target: Path, obj) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_plain) + "\n")


def write_table(target: Path, frame: pd.DataFrame) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


class RunDirectory:
    """A sweep's run directory. `open()` creates it or checks that it belongs to the same sweep."""

    def __init__(self, path):
        self.path = Path(path)

    def open(self, spec: dict, spec_hash: str, fingerprint: str) -> int:
        """Create or re-open; return how many members are already complete.

        Raises ValueError (and touches nothing) if the directory holds another sweep or other data.
        """
        meta = self.path / SPEC
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"The run directory is a file. Received: run_dir={str(self.path)!r}")
        if meta.exists():
            stored = json.loads(meta.read_text())
            if stored.get("spec_hash") != spec_hash:
                raise ValueError(
                    f"{self.path} holds a different sweep (spec hash {stored.get('spec_hash')} ≠ {spec_hash}); "
                    f"use another run directory or delete it. Received: run_dir={str(self.path)!r}"
                )
            if stored.get("data_fingerprint") != fingerprint:
                raise ValueError(
                    f"{self.path} was run on different data (fingerprint {stored.get('data_fingerprint')} ≠ "
                    f"{fingerprint}). Received: run_dir={str(self.path)!r}"
                )
        elif self.path.exists() and any(p.name != ".lock" for p in self.path.iterdir()):
            raise ValueError(
                f"{self.path} exists and is not a reglab run directory; refusing to write into it. "
                f"Received: run_dir={str(self.path)!r}"
            )
        else:
            write_json(meta, {"spec": spec, "spec_hash": spec_hash, "data_fingerprint": fingerprint})
        return len(self.completed())

    def spec(self) -> dict:
        meta = self.path / SPEC
        if not meta.exists():
            raise ValueError(f"Not a reglab run directory (no {SPEC}). Received: run_dir={str(self.path)!r}")
        return json.loads(meta.read_text())

    def completed(self) -> set[str]:
        folder = self.path / MEMBERS
        return {p.stem for p in folder.glob("*.parquet")} if folder.exists() else set()

    def record_member(self, member_id: str, records: pd.DataFrame, histogram: pd.DataFrame | None = None) -> None:
        """Store a finished member. The records file marks it complete, so it is written last."""
        if histogram is not None:
            write_table(self.path / HISTOGRAMS / f"{member_id}.parquet", histogram)
        write_table(self.path / MEMBERS / f"{member_id}.parquet", records)

    def member_histogram(self, member_id: str) -> pd.DataFrame | None:
        target = self.path / HISTOGRAMS / f"{member_id}.parquet"
        return pd.read_parquet(target) if target.exists() else None

    def all_histograms(self) -> pd.DataFrame:
        files = sorted((self.path / HISTOGRAMS).glob("*.parquet"))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()

    def member_records(self, member_id: str) -> pd.DataFrame:
        return pd.read_parquet(self.path / MEMBERS / f"{member_id}.parquet")

    def all_records(self) -> pd.DataFrame:
        files = sorted((self.path / MEMBERS).glob("*.parquet"))
        if not files:
            return pd.DataFrame()
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        write_table(self.path / name, frame)

    def read_table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.path / name)

    def write_json(self, name: str, obj) -> None:
        write_json(self.path / name, obj)

    def read_json(self, name: str):
        target = self.path / name
        return json.loads(target.read_text()) if target.exists() else None

    def save_model(self, model, name: str = "best_model.keras") -> Path:
        target = self.path / name
        with atomic_path(target, suffix=".keras") as tmp:
            model.save(tmp)
        return target
