"""Errors about a file name the file, and are runtime errors (exit 1), not usage errors (2)."""

from __future__ import annotations

import io
import sys

import pytest

torch = pytest.importorskip("torch")

from poolkit.cli import run  # noqa: E402
from poolkit.errors import DataFormatError  # noqa: E402
from poolkit.models import TextCNN, TextCNNConfig  # noqa: E402
from poolkit.train.checkpoint import (  # noqa: E402
    load_checkpoint,
    load_state,
    save_checkpoint,
    save_state,
)


def _model(vocab=20):
    return TextCNN(TextCNNConfig(vocab_size=vocab, embed_dim=4, num_filters=2))


def test_a_corrupt_or_foreign_weights_file_is_named(tmp_path):
    folder = save_checkpoint(tmp_path / "ckpt", _model())
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])  # cut short
    with pytest.raises(DataFormatError, match=r"model\.safetensors: not a readable safetensors"):
        load_checkpoint(folder)
    save_checkpoint(tmp_path / "other", _model(vocab=30))
    weights.write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(DataFormatError, match=r"model\.safetensors: weights do not fit"):
        load_checkpoint(folder)


def test_a_broken_state_file_is_named_with_its_line(tmp_path):
    stem = tmp_path / "trainer_state"
    save_state(stem, {"step": 3, "moments": torch.ones(2), "best": float("nan")})
    assert load_state(stem)["best"] != load_state(stem)["best"]  # NaN comes back as NaN
    (tmp_path / "trainer_state.json").write_text('{\n  "step": 3,\n  "moments": {')
    with pytest.raises(DataFormatError, match=r"trainer_state\.json:3: invalid JSON"):
        load_state(stem)
    (tmp_path / "trainer_state.json").write_text('{"m": {"__tensor__": "gone"}}')
    with pytest.raises(DataFormatError, match="names tensor 'gone'"):
        load_state(stem)


def test_cli_resume_with_a_broken_state_exits_1_naming_the_file(tmp_path, capsys, monkeypatch):
    data = tmp_path / "x.csv"
    data.write_text("text,label\n" + "".join(f"good film {i},pos\nbad film {i},neg\n"
                                             for i in range(10)))
    out = tmp_path / "run"
    argv = ["train", "textcnn", "--data", str(data), "--epochs", "2", "--embed-dim", "8",
            "--num-filters", "2", "--out", str(out), "--quiet", "--json"]
    assert run(argv) == 0
    capsys.readouterr()
    states = sorted(out.glob("checkpoints/epoch-*/trainer_state.json"))
    assert states, "no checkpoint written"
    states[-1].write_text("{ not json")
    assert run([*argv[:4], "--epochs", "3", *argv[6:], "--resume"]) == 1
    err = capsys.readouterr().err
    assert "trainer_state.json:1: invalid JSON" in err and str(states[-1]) in err
    # stdin in another encoding: named with its line, then read with --encoding.
    for extra, code in (([], 1), (["--encoding", "cp1252"], 0)):
        stdin = io.TextIOWrapper(io.BytesIO("good\ncaf\u00e9\n".encode("cp1252")))
        monkeypatch.setattr(sys, "stdin", stdin)
        assert run(["predict", str(out), *extra]) == code
        if code:
            assert "<stdin>:2: cannot decode byte 0xe9" in capsys.readouterr().err
    capsys.readouterr()
    # An empty text is predicted, with a warning.
    assert run(["predict", str(out), "", "good"]) == 0
    assert "input 1 is empty" in capsys.readouterr().err
    # A cut model file in the run folder: predict names it, exit 1.
    (out / "model.safetensors").write_bytes(b"\x00" * 10)
    assert run(["predict", str(out), "good"]) == 1
    assert "model.safetensors: not a readable safetensors file" in capsys.readouterr().err
