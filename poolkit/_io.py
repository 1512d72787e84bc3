"""File output in one place: atomic writes that honour the umask, JSON without NaN, JSON lines.

A leaf module (it imports only :mod:`poolkit.errors`, itself a leaf), used by every layer that
writes a file.

- :func:`atomic_write` and its ``_bytes``/``_text``/``_json`` forms write to a temporary file in
  the target's folder, ``fsync`` it and move it over the target with :func:`os.replace`: a crash,
  Ctrl-C or ``kill -9`` leaves the old file or the new one, never half of one. The temporary file
  is created with mode ``0o666`` filtered by the user's umask (as ``open`` would), so a umask of
  ``022`` gives ``0644`` (``tempfile.mkstemp`` would give ``0600`` whatever the umask).
- :func:`to_jsonable` turns dataclasses, tuples, NumPy/torch values and paths into plain JSON
  types and writes NaN/infinity as ``null`` (JSON has neither).
- :class:`FileLock` is an exclusive ``flock`` on a lock file, released by the kernel when its
  process dies (even by ``kill -9``), so a crash never leaves a stale lock.
- :func:`append_jsonl` appends records to a JSON-lines file under an exclusive ``flock``, one
  ``write`` per call; :func:`read_jsonl` reads it, skipping a torn last line that a killed writer
  left (the next append cuts it off) and naming file and line of any other malformed line.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = atomic_write_json(os.path.join(folder, "a.json"), {"loss": float("nan")})
    >>> open(path).read()
    '{\\n  "loss": null\\n}\\n'
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from poolkit.errors import DataFormatError

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "to_jsonable",
    "dumps",
    "append_jsonl",
    "read_jsonl",
    "write_jsonl",
    "FileLock",
]


# ---------------------------------------------------------------------------------------------
# Atomic writes


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create a new temp file beside ``path``; mode 0o666 & ~umask, applied by the kernel."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some systems cannot open a folder, which is fine."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[bytes]], Any] | None = None,
    *,
    write_path: Callable[[str], Any] | None = None,
) -> Path:
    """Write ``path`` atomically; returns it as a :class:`~pathlib.Path`.

    Give either ``write(binary_stream)`` (e.g. ``lambda f: np.save(f, array)``) or
    ``write_path(temp_path)`` for writers that open the file themselves (safetensors'
    ``save_file``). The parent folder is created if needed.
    """
    if (write is None) == (write_path is None):
        raise TypeError("give exactly one of write(stream) and write_path(path)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = _create_temp(path)
    try:
        if write is not None:
            with os.fdopen(handle, "wb") as stream:
                write(stream)
                stream.flush()
                os.fsync(stream.fileno())
        else:
            mode = stat.S_IMODE(os.fstat(handle).st_mode)  # 0o666 & ~umask
            os.close(handle)
            write_path(str(temp))
            # Some writers replace the file with their own 0600 one (safetensors >= 0.7).
            os.chmod(temp, mode)
            with open(temp, "rb+") as stream:
                os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda stream: stream.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, payload: Any, *, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON (NaN/infinity as ``null``, a final newline) atomically."""
    return atomic_write_text(path, dumps(payload, indent=indent) + "\n")


# ---------------------------------------------------------------------------------------------
# JSON


def to_jsonable(value: Any, *, default: Callable[[Any], Any] | None = None) -> Any:
    """``value`` in plain JSON types.

    Dataclass instances become dicts, tuples and sets lists (sets sorted), dict keys strings,
    NumPy/torch values their ``tolist()``, paths strings, and non-finite floats ``None``. Any
    other object is passed to ``default`` (``str`` for a lenient dump); without one it raises
    ``TypeError`` naming its type.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): to_jsonable(item, default=default) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, default=default) for item in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(item, default=default) for item in sorted(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {f.name: to_jsonable(getattr(value, f.name), default=default) for f in fields}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, torch tensors
        return to_jsonable(value.tolist(), default=default)
    if default is not None:
        return to_jsonable(default(value))
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any, *, indent: int | None = None, default: Callable | None = None) -> str:
    """``json.dumps`` of :func:`to_jsonable` (valid JSON: no NaN, no Infinity)."""
    return json.dumps(to_jsonable(value, default=default), indent=indent, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# JSON lines


def _lock(handle: int, exclusive: bool) -> bool:
    """``flock`` the open file (a no-op where there is none, e.g. Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    return True


def _unlock(handle: int) -> None:
    import fcntl

    fcntl.flock(handle, fcntl.LOCK_UN)


class FileLock:
    """An exclusive ``flock`` on ``path`` (created, empty, if missing).

    ``acquire(blocking=False)`` returns ``False`` when another process (or another
    :class:`FileLock` of this one) holds it. The kernel drops the lock when the holder's process
    ends, however it ends. Where ``fcntl`` is missing (Windows) every acquire succeeds.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), ".lock")
        >>> with FileLock(path):
        ...     FileLock(path).acquire(blocking=False)
        False
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._handle: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        if self._handle is not None:
            raise RuntimeError(f"{self.path} is already locked by this FileLock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            self._handle = handle
            return True
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(handle)
            return False
        except BaseException:
            os.close(handle)
            raise
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)  # closing the only descriptor drops the flock
            self._handle = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def append_jsonl(path: str | os.PathLike, records: Iterable[Any], *, default=None) -> Path:
    """Append ``records`` to ``path`` as JSON lines, safe with any number of writers.

    The lines go in one ``write`` under an exclusive ``flock``; a torn last line left by a killed
    writer (no final newline) is cut off first, so it never merges with the new line.
    """
    path = Path(path)
    text = "".join(dumps(record, default=default) + "\n" for record in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        locked = _lock(handle, exclusive=True)
        size = os.lseek(handle, 0, os.SEEK_END)
        if size:
            keep = _complete_prefix(handle, size)
            if keep != size:
                os.ftruncate(handle, keep)
        data = text.encode("utf-8")
        os.lseek(handle, 0, os.SEEK_END)
        while data:
            data = data[os.write(handle, data):]
        os.fsync(handle)
        if locked:
            _unlock(handle)
    finally:
        os.close(handle)
    return path


def _complete_prefix(handle: int, size: int) -> int:
    """The length of the file up to and including its last newline."""
    position = size
    while position > 0:
        start = max(0, position - 65536)
        chunk = os.pread(handle, position - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def write_jsonl(path: str | os.PathLike, records: Iterable[Any], *, default=None) -> Path:
    """Write all ``records`` as JSON lines, atomically (the whole file is replaced)."""
    text = "".join(dumps(record, default=default) + "\n" for record in records)
    return atomic_write_text(path, text)


def read_jsonl(path: str | os.PathLike, *, missing_ok: bool = True) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, in order; empty lines are skipped.

    A last line without its newline is a write still in progress or torn by a killed writer and
    is left out. Any other line that is not a JSON object raises :class:`DataFormatError`
    naming the file and line. A missing file is empty when ``missing_ok``.
    """
    path = Path(path)
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if missing_ok:
            return []
        raise
    try:
        locked = _lock(handle, exclusive=False)  # waits for an append in progress
        with os.fdopen(os.dup(handle), "rb") as stream:
            data = stream.read()
        if locked:
            _unlock(handle)
    finally:
        os.close(handle)
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a torn line
    records = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DataFormatError(path, number, f"not UTF-8 ({exc.reason})") from None
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, number, f"not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataFormatError(path, number, "expected a JSON object per line")
        records.append(record)
    return records
