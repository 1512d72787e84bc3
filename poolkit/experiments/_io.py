"""Atomic file writes and the JSON-lines results file of ``compare``.

Every file people look at is written to a temporary file in the same folder and then moved over
the old one with :func:`os.replace`, so a crash or Ctrl-C never leaves half a file behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def to_json_line(record: dict[str, Any]) -> str:
    return json.dumps(_finite(record), sort_keys=False, default=str)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> Path:
    """Write all ``records`` as JSON lines, atomically (the whole file is replaced)."""
    text = "".join(to_json_line(record) + "\n" for record in records)
    return atomic_write_text(path, text)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a missing file is empty. A malformed line raises
    :class:`poolkit.errors.DataFormatError` naming the file and line."""
    from poolkit.errors import DataFormatError

    path = Path(path)
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, number, f"not a JSON object ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DataFormatError(path, number, "expected a JSON object per line")
            records.append(record)
    return records
