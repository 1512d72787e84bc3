"""The results folder of ``poolkit compare``, shared by any number of processes and machines.

Layout of ``out_dir``:

- ``runs/<id>.json``: one file per run (``id`` = a hash of the run key), written atomically by the
  process that ran it. A run's file appears whole or not at all, so a ``kill -9`` loses at most
  the runs in flight, and two processes that happen to finish the same run replace one file: the
  run is recorded once.
- ``runs/.<id>.lock``: the claim of a run in progress (an ``flock``, dropped by the kernel when
  its process dies): a second process skips a run that another one is training.
- ``results.jsonl``: every record, one per line; the merge of ``runs/`` (and of the lines an
  older poolkit wrote there), rewritten atomically under ``.lock`` after each run. Readers see the
  previous or the next version, never half a file.

Why one file per run rather than appending to ``results.jsonl`` under a lock: a cluster's shared
folder (NFS, Lustre) does not always honour ``flock`` across machines, and NFS appends from two
machines can overwrite each other; a rename inside one folder is atomic on all of them. The locks
here only save duplicate work; without them every record is still written once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from poolkit._io import FileLock, atomic_write_json, read_jsonl, write_jsonl
from poolkit.errors import DataFormatError

RESULTS_FILE = "results.jsonl"
RUNS_DIR = "runs"
LOCK_FILE = ".lock"


def run_id(key: str) -> str:
    """The file name stem of the run with ``key``."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


class ResultStore:
    """Read and write the records of one ``compare`` output folder.

    Example:
        >>> import tempfile
        >>> store = ResultStore(tempfile.mkdtemp())
        >>> _ = store.save({"run_key": "t|max|0|c", "status": "ok", "finished_at": "1"})
        >>> [r["run_key"] for r in store.records()]
        ['t|max|0|c']
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.runs_dir = self.out_dir / RUNS_DIR
        self.results_path = self.out_dir / RESULTS_FILE

    def run_path(self, key: str) -> Path:
        return self.runs_dir / f"{run_id(key)}.json"

    def read_run(self, key: str) -> dict[str, Any] | None:
        """The record of the run ``key``, or ``None`` if it has not finished."""
        return _read_record(self.run_path(key))

    def records(self) -> list[dict[str, Any]]:
        """Every record of the folder, one per run key: the lines of ``results.jsonl`` overlaid
        by ``runs/`` (a success is never replaced by a failure)."""
        merged: dict[str, dict[str, Any]] = {}
        for record in read_jsonl(self.results_path):
            _merge(merged, record)
        run_files = list(self.runs_dir.glob("*.json")) if self.runs_dir.is_dir() else []
        fresh = []
        for path in run_files:
            record = _read_record(path)
            if record is not None:  # None: replaced or removed since the listing
                finished = (str(record.get("finished_at", "")), _mtime_ns(path))
                fresh.append((finished, str(record["run_key"]), record))
        fresh.sort(key=lambda item: item[:2])  # in the order the runs finished
        for *_, record in fresh:
            _merge(merged, record)
        return list(merged.values())

    def claim(self, key: str) -> FileLock | None:
        """Claim the run ``key`` for this process: the held lock, or ``None`` if another process
        is running it. Release the lock once the run's record is saved."""
        lock = FileLock(self.runs_dir / f".{run_id(key)}.lock")
        return lock if lock.acquire(blocking=False) else None

    def save(self, record: dict[str, Any]) -> Path:
        """Write the record of one run (atomically; replaces an earlier try of that run)."""
        return atomic_write_json(self.run_path(record["run_key"]), record, indent=None)

    def lock(self) -> FileLock:
        """The folder's lock, held while ``results.jsonl`` and the summary are rewritten."""
        return FileLock(self.out_dir / LOCK_FILE)

    def publish(self) -> list[dict[str, Any]]:
        """Rewrite ``results.jsonl`` from every record (under the folder's lock); returns them."""
        with self.lock():
            records = self.records()
            write_jsonl(self.results_path, records)
        return records


def _merge(merged: dict[str, dict[str, Any]], record: dict[str, Any]) -> None:
    key = record.get("run_key")
    if key is None:  # not a compare record: keep it, under a key of its own
        key = json.dumps(record, sort_keys=True)
    old = merged.get(key)
    if old is not None and old.get("status") == "ok" and record.get("status") != "ok":
        return
    merged.pop(key, None)  # a newer record moves to the end
    merged[key] = record


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, None, f"not UTF-8 ({exc.reason})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"not JSON ({exc.msg})") from None
    if not isinstance(record, dict) or "run_key" not in record:
        raise DataFormatError(path, None, "not a compare run record (no run_key)")
    return record


def grid_records(records: Iterable[dict[str, Any]], keys: Iterable[str]) -> list[dict[str, Any]]:
    """The records of ``keys`` that exist, in the order of ``keys``."""
    by_key = {r.get("run_key"): r for r in records}
    return [by_key[key] for key in keys if key in by_key]
