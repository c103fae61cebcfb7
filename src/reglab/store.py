"""The run directory: append-only, atomic, resumable.

```
runs/<name>/
  spec.json          the sweep's settings, their hash, the data fingerprint and its config (written first)
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
  .lock              flock'ed by the process using the directory, from `open()` to `close()`
  .lock.json         who holds it: {pid, host, started} (removed on close; a stale one is harmless)
  quarantine/members/<id>.parquet.<time>, quarantine/histograms/…   damaged files, moved aside
  plan.json          the ids of the members the sweep planned (written at its end): only they are read
  log.txt            every warning and library log line of the CLI's runs (the screen gets reglab's own, one line each)
  checkpoints/<key>.npz  a population's training state at an epoch boundary (population engine), while
                     it trains; a re-run continues from it; removed when the sweep has finished
```

Every file is written to a temporary name in the same directory and moved into place with
`os.replace` (`reglab.files`), so a crash or SIGKILL leaves either the old file or the new one, never half of one.
A run directory only ever resumes the sweep it was made for: a different spec or different data is
refused before anything is trained.

One process at a time (`reglab.run_lock`): `open()` takes an exclusive `flock` on `.lock` (via `filelock`) and holds it
until `close()` (a `Sweep.run` closes in a `finally`). A second process gets `RunDirectoryInUse` (a
ValueError naming the holder's pid, host and start time) at once, or after waiting `wait` seconds.
The kernel drops a flock when its process dies, so a SIGKILLed run never leaves a lock behind.
`reglab report` reads a directory in use without writing to it (`report.refresh`); the sweep
renders its files when it ends.

A damaged run directory heals where it can: `open()` reads every member and histogram file, and one
that does not read back as that member's records (truncated, not Parquet, other content) is moved to
`quarantine/` with a warning, so that the resume trains that member again (a damaged histogram takes
its member's records with it). A damaged `spec.json` cannot be healed — it says which sweep the
directory belongs to — and is refused with an error naming it.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import warnings
from pathlib import Path

import pandas as pd

from reglab.files import atomic_path, write_json, write_table  # noqa: F401  (their home was here: still importable)
from reglab.run_lock import LOCK, RunDirectoryInUse, RunLock  # noqa: F401

SPEC = "spec.json"
MEMBERS = "members"
HISTOGRAMS = "histograms"
QUARANTINE = "quarantine"
CHECKPOINTS = "checkpoints"
PLAN = "plan.json"
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}(\.tmp|\.keras|\.npz)$")  # `atomic_path`'s names (mkstemp)
_SPEC_KEYS = {"spec": dict, "spec_hash": str, "data_fingerprint": str}
_RECORD_COLUMNS = ("member", "epoch", "status")


def _ours(name: str) -> bool:
    """Files a reglab process makes in a run directory before (or while) writing spec.json."""
    return name.startswith((LOCK, f".{LOCK}", f".{SPEC}."))


def _one_line(error: BaseException, limit: int = 160) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RunDirectory:
    """A sweep's run directory. `open()` creates it or checks that it belongs to the same sweep, and
    locks it until `close()` (or the end of a `with RunDirectory(...) as store:` block)."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = RunLock(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the lock (`reglab.run_lock`) ------------------------------------------------------------

    def lock(self, wait: float | None = None) -> None:
        """Take the directory's lock (creating the directory), waiting at most `wait` seconds (None or
        0: not at all; math.inf: as long as it takes). Raises RunDirectoryInUse naming the holder."""
        self._lock.acquire(wait)

    def close(self) -> None:
        """Release the lock (if this object holds it). Safe to call twice."""
        self._lock.release()

    # --- opening ----------------------------------------------------------------------------------

    def open(
        self,
        spec: dict,
        spec_hash: str,
        fingerprint: str,
        wait: float | None = None,
        config: dict | None = None,
        also: str | None = None,
    ) -> int:
        """Create or re-open, locked (see `lock`); return how many members are already complete.

        `config`: the sweep's config (`Sweep.get_config`), kept in spec.json beside the spec so that the
        directory says how to rebuild its sweep. `also`: another hash the same sweep was stored under by an
        earlier reglab (`reglab.sweep_spec`: a builder's source-text fingerprint); such a directory resumes.

        Raises ValueError (and touches nothing but the lock) if the directory holds another sweep or
        other data, or its spec.json is damaged; RunDirectoryInUse if another process uses it. Damaged
        member and histogram files are moved to quarantine/ (with a warning each), so that those
        members count as not done.
        """
        meta = self.path / SPEC
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"The run directory is a file. Received: run_dir={str(self.path)!r}")
        if not meta.exists():
            self._refuse_foreign()  # before the lock file would be made in someone's folder
        self.lock(wait)
        try:
            if meta.exists():
                stored = self._read_spec()
                if stored["spec_hash"] not in (spec_hash, also):
                    raise ValueError(
                        f"{self.path} holds a different sweep (spec hash {stored['spec_hash']} ≠ {spec_hash}); "
                        f"use another run directory or delete it. Received: run_dir={str(self.path)!r}"
                    )
                if stored["data_fingerprint"] != fingerprint:
                    raise ValueError(
                        f"{self.path} was run on different data (fingerprint {stored['data_fingerprint']} ≠ "
                        f"{fingerprint}). Received: run_dir={str(self.path)!r}"
                    )
                self._heal()
            else:
                self._refuse_foreign()
                written = {"spec": spec, "spec_hash": spec_hash, "data_fingerprint": fingerprint}
                write_json(meta, {**written, **({"config": config} if config is not None else {})})
        except BaseException:
            self.close()
            raise
        return len(self.completed())

    def _refuse_foreign(self) -> None:
        if self.path.exists() and any(not _ours(p.name) for p in self.path.iterdir()):
            raise ValueError(
                f"{self.path} exists and is not a reglab run directory; refusing to write into it. "
                f"Received: run_dir={str(self.path)!r}"
            )

    def _read_spec(self) -> dict:
        meta = self.path / SPEC
        try:
            stored = json.loads(meta.read_bytes())
        except ValueError as error:  # not JSON, not UTF-8, empty
            problem = f"not JSON: {_one_line(error)}"
        else:
            if not isinstance(stored, dict):
                problem = f"not a JSON object but a {type(stored).__name__}"
            else:
                wrong = [key for key, kind in _SPEC_KEYS.items() if not isinstance(stored.get(key), kind)]
                problem = f"missing or malformed: {', '.join(wrong)}" if wrong else None
        if problem:
            raise ValueError(
                f"{meta} is damaged ({problem}): delete the run directory or choose another --run-dir. "
                f"Received: run_dir={str(self.path)!r}"
            )
        return stored

    # --- healing ----------------------------------------------------------------------------------

    def _damage(self, file: Path) -> str | None:
        """Why `file` (members/<id>.parquet or histograms/<id>.parquet) is not that member's, or None."""
        try:
            frame = pd.read_parquet(file)
        except Exception as error:  # pyarrow raises several kinds for a truncated or foreign file
            return _one_line(error)
        needed = _RECORD_COLUMNS if file.parent.name == MEMBERS else ("member",)
        if frame.empty or not set(needed) <= set(frame.columns):
            return f"no rows or not the columns {list(needed)}"
        if (frame["member"].astype(str) != file.stem).any():
            return "records of another member"
        return None

    def _quarantine(self, file: Path) -> Path:
        folder = self.path / QUARANTINE / file.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
        target, n = folder / f"{file.name}.{stamp}", 1
        while target.exists():
            target, n = folder / f"{file.name}.{stamp}-{n}", n + 1
        os.replace(file, target)
        return target

    def _heal(self) -> None:
        # temporaries of a write that was killed (we hold the lock: no living process is writing them)
        for folder in (self.path, self.path / MEMBERS, self.path / HISTOGRAMS, self.path / CHECKPOINTS):
            for file in folder.glob(".*") if folder.is_dir() else []:
                if _TEMPORARY.match(file.name) and file.is_file():
                    file.unlink()
        for kind in (MEMBERS, HISTOGRAMS):
            for file in sorted((self.path / kind).glob("*.parquet")):
                problem = self._damage(file)
                if problem is None:
                    continue
                moved = [self._quarantine(file)]
                records = self.path / MEMBERS / file.name
                if kind == HISTOGRAMS and records.exists():  # the records mark the member complete: they go too
                    moved.append(self._quarantine(records))
                what = " and ".join(str(m.relative_to(self.path)) for m in moved)
                warnings.warn(
                    f"reglab: {self.path / kind / file.name} is damaged ({problem}); moved to {what} in "
                    f"{self.path}; the member is trained again",
                    UserWarning,
                    stacklevel=4,
                )

    def spec(self) -> dict:
        meta = self.path / SPEC
        if not meta.exists():
            raise ValueError(f"Not a reglab run directory (no {SPEC}). Received: run_dir={str(self.path)!r}")
        return self._read_spec()

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

    def keep_only(self, member_ids) -> None:
        """The sweep's plan: members/ and histograms/ files of other members (copied in from another
        sweep, say) are moved to quarantine/ with a warning, and `plan.json` records the ids, so that
        only planned members are ever read."""
        planned = set(member_ids)
        for kind in (MEMBERS, HISTOGRAMS):
            for file in sorted((self.path / kind).glob("*.parquet")):
                if file.stem not in planned:
                    moved = self._quarantine(file)
                    warnings.warn(
                        f"reglab: {file} is not a member of this sweep; moved to {moved.relative_to(self.path)}",
                        UserWarning,
                        stacklevel=3,
                    )
        write_json(self.path / PLAN, {"members": sorted(planned)})

    def _planned(self, files: list[Path]) -> list[Path]:
        plan = self.read_json(PLAN)
        return files if not plan else [f for f in files if f.stem in set(plan.get("members", []))]

    def all_histograms(self) -> pd.DataFrame:
        files = self._planned(sorted((self.path / HISTOGRAMS).glob("*.parquet")))
        return pd.concat([self._read(f) for f in files], ignore_index=True) if files else pd.DataFrame()

    def member_records(self, member_id: str) -> pd.DataFrame:
        return pd.read_parquet(self.path / MEMBERS / f"{member_id}.parquet")

    def member_tables(self) -> list[pd.DataFrame]:
        """Every planned member's stored table (`reglab.kit.records.member_records`), in file order."""
        return [self._read(f) for f in self._planned(sorted((self.path / MEMBERS).glob("*.parquet")))]

    def all_records(self) -> pd.DataFrame:
        tables = self.member_tables()
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    def _read(self, file: Path) -> pd.DataFrame:
        """A stored member file for `reglab report`, or a ValueError naming it (the next run heals it)."""
        try:
            return pd.read_parquet(file)
        except Exception as error:
            raise ValueError(
                f"{file} is damaged ({_one_line(error)}); run the sweep again: it moves the file to "
                f"{QUARANTINE}/ and trains that member again. Received: run_dir={str(self.path)!r}"
            ) from None

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        write_table(self.path / name, frame)

    def read_table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.path / name)

    def write_json(self, name: str, obj) -> None:
        write_json(self.path / name, obj)

    def read_json(self, name: str):
        target = self.path / name
        return json.loads(target.read_text()) if target.exists() else None

    # --- population checkpoints ----------------------------------------------------------------

    def save_checkpoint(self, key: str, arrays: dict) -> None:
        """A population's state (a dict of numpy arrays, no pickles), replacing its previous checkpoint."""
        import numpy as np

        with atomic_path(self.path / CHECKPOINTS / f"{key}.npz", suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

    def load_checkpoint(self, key: str) -> dict | None:
        """The checkpoint `save_checkpoint` wrote, or None; a damaged one is quarantined with a warning."""
        import numpy as np

        file = self.path / CHECKPOINTS / f"{key}.npz"
        if not file.exists():
            return None
        try:
            with np.load(file, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except Exception as error:  # truncated, not an npz, pickled content
            moved = self._quarantine(file)
            warnings.warn(
                f"reglab: {file} is damaged ({_one_line(error)}); moved to {moved.relative_to(self.path)}; "
                f"that population trains from its start",
                UserWarning,
                stacklevel=2,
            )
            return None

    def clear_checkpoints(self) -> None:
        """Remove every checkpoint (the sweep has finished: its members' records hold the work)."""
        folder = self.path / CHECKPOINTS
        if folder.exists():
            for file in folder.glob("*.npz"):
                file.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()

    def save_model(self, model, name: str = "best_model.keras") -> Path:
        target = self.path / name
        with atomic_path(target, suffix=".keras") as tmp:
            model.save(tmp)
        return target
