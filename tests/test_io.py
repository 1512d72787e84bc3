"""poolkit._io: atomic writes that honour the umask, JSON without NaN, shared JSON lines."""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from poolkit._io import (
    append_jsonl,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    dumps,
    read_jsonl,
    to_jsonable,
    write_jsonl,
)
from poolkit.errors import DataFormatError


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(saved)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_every_writer_honours_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    written = [
        atomic_write_bytes(tmp_path / "a.bin", b"x"),
        atomic_write_text(tmp_path / "b.txt", "x"),
        atomic_write_json(tmp_path / "c.json", {"a": 1}),
        atomic_write(tmp_path / "d.npy", lambda stream: np.save(stream, np.zeros(2))),
        atomic_write(tmp_path / "e.txt", write_path=lambda p: Path(p).write_text("x")),
        write_jsonl(tmp_path / "f.jsonl", [{"a": 1}]),
        append_jsonl(tmp_path / "g.jsonl", [{"a": 1}]),
    ]
    for path in written:
        assert _mode(path) == expected, path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_checkpoint_and_state_files_honour_the_umask(tmp_path, umask):
    torch = pytest.importorskip("torch")
    from poolkit.models import TextCNN, TextCNNConfig
    from poolkit.train.checkpoint import save_checkpoint, save_state

    umask(0o022)
    model = TextCNN(TextCNNConfig(vocab_size=20, embed_dim=4, num_filters=2))
    folder = save_checkpoint(tmp_path / "ckpt", model)
    save_state(tmp_path / "ckpt" / "state", {"step": 3, "m": torch.ones(2)})
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [
        "model.safetensors", "poolkit_config.json", "state.json", "state.safetensors"
    ]
    assert {_mode(f) for f in files} == {0o644}


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = atomic_write_text(tmp_path / "out.txt", "old")

    def broken(stream):
        stream.write(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp file left behind
    with pytest.raises(TypeError, match="exactly one"):
        atomic_write(target)


def test_json_writes_nan_and_infinity_as_null(tmp_path):
    payload = {"loss": math.nan, "best": [math.inf, -math.inf, 1.5], "n": np.float32("nan")}
    path = atomic_write_json(tmp_path / "r.json", payload)
    assert json.loads(path.read_text()) == {"loss": None, "best": [None, None, 1.5], "n": None}
    assert "NaN" not in dumps(payload) and "Infinity" not in dumps(payload)


@dataclasses.dataclass
class _Config:
    sizes: tuple = (3, 4)
    path: Path = Path("/tmp/x")
    scale: float = 0.5


def test_to_jsonable_plain_types():
    value = {1: _Config(), "arr": np.arange(3), "i": np.int64(7), "set": {"b", "a"}}
    assert to_jsonable(value) == {
        "1": {"sizes": [3, 4], "path": "/tmp/x", "scale": 0.5},
        "arr": [0, 1, 2], "i": 7, "set": ["a", "b"],
    }
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        to_jsonable(object())
    assert to_jsonable({"x": object}, default=lambda v: v.__name__) == {"x": "object"}


def test_read_jsonl_skips_a_torn_last_line_and_append_cuts_it_off(tmp_path):
    path = tmp_path / "r.jsonl"
    append_jsonl(path, [{"run": 1}, {"run": 2}])
    with path.open("ab") as handle:  # a writer killed in the middle of its line
        handle.write(b'{"run": 3, "acc')
    assert read_jsonl(path) == [{"run": 1}, {"run": 2}]
    append_jsonl(path, [{"run": 4}])
    assert read_jsonl(path) == [{"run": 1}, {"run": 2}, {"run": 4}]
    assert path.read_text().count("\n") == 3


def test_read_jsonl_names_file_and_line_of_a_bad_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n\nnot json\n{"b": 2}\n')
    with pytest.raises(DataFormatError, match=r"r\.jsonl:3: not JSON"):
        read_jsonl(path)
    path.write_bytes(b'{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataFormatError, match=r"r\.jsonl:2: expected a JSON object"):
        read_jsonl(path)
    path.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(DataFormatError, match=r"r\.jsonl:1: not UTF-8"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "missing.jsonl", missing_ok=False)


def _append_many(path: str, writer: int, count: int) -> None:
    for index in range(count):
        append_jsonl(path, [{"writer": writer, "index": index, "pad": "x" * 5000}])


def test_concurrent_appends_lose_and_merge_nothing(tmp_path):
    path = str(tmp_path / "shared.jsonl")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, w, 25)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    records = read_jsonl(path)
    assert sorted((r["writer"], r["index"]) for r in records) == [
        (w, i) for w in range(4) for i in range(25)
    ]
