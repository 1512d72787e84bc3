"""A run folder is never lost by mistake: a new run into a folder that holds one is refused
without --overwrite (and with it, the old checkpoints go only at the new run's first save);
--resume with other settings is refused listing each difference (--force-resume overrides);
runtime failures exit 1, bad usage 2."""

from __future__ import annotations

import json

import pytest

from poolkit.cli import run
from poolkit.data import TextEncoder
from poolkit.data.dataset import TextCollator, TextDataset
from poolkit.models import TextCNN, TextCNNConfig
from poolkit.train import TrainConfig, Trainer, set_seed


def _csv(path, offset=0):
    rows = [f'"a {"great" if i % 2 else "dull"} film {i + offset}",{i % 2}' for i in range(30)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return path


def _train(data, out, *extra) -> int:
    return run(["train", "textcnn", "--data", str(data), "--epochs", "1", "--embed-dim", "8",
                "--num-filters", "2", "--lr", "0.01", "--out", str(out), "--quiet", *extra])


def test_a_new_run_into_a_used_folder_is_refused_without_overwrite(tmp_path, capsys):
    data, out = _csv(tmp_path / "a.csv"), tmp_path / "run"
    assert _train(data, out) == 0
    before = (out / "model.safetensors").read_bytes()
    assert _train(data, out, "--epochs", "2") == 1
    err = capsys.readouterr().err
    assert f"{out} already holds a run (model.safetensors, checkpoints/epoch-0001); pass " \
           "--resume to continue it, --overwrite to replace it, or another --out" in err
    assert (out / "model.safetensors").read_bytes() == before
    assert (out / "checkpoints" / "epoch-0001").is_dir()
    assert _train(data, out, "--epochs", "2", "--overwrite") == 0
    assert json.loads((out / "result.json").read_text())["epochs_run"] == 2


def test_overwrite_keeps_old_checkpoints_until_the_first_save(tmp_path):
    out = tmp_path / "run"
    old = out / "checkpoints" / "epoch-0007"
    old.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"old")
    texts, labels = ["good fun", "bad dull"] * 6, [1, 0] * 6
    encoder = TextEncoder.fit(texts)
    set_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=4, num_filters=2))
    still_there = []
    model.register_forward_hook(lambda *_: still_there.append(old.is_dir()))
    config = TrainConfig(epochs=1, batch_size=4, out_dir=str(out), progress=False)
    data = TextDataset.from_texts(texts, labels, encoder)
    with pytest.raises(RuntimeError, match="already holds a run"):
        Trainer(model, config, data, None, TextCollator(min_length=5)).fit()
    config.overwrite = True
    Trainer(model, config, data, None, TextCollator(min_length=5)).fit()
    assert still_there and all(still_there)  # during the whole first epoch
    assert not old.exists() and (out / "checkpoints" / "epoch-0001").is_dir()
    assert (out / "model.safetensors").read_bytes() != b"old"


def test_resume_with_other_settings_lists_each_difference(tmp_path, capsys):
    data, out = _csv(tmp_path / "a.csv"), tmp_path / "run"
    assert _train(data, out) == 0
    before = (out / "model.safetensors").read_bytes()
    assert _train(data, out, "--epochs", "2", "--resume", "--lr", "0.02", "--pool", "avg") == 1
    err = capsys.readouterr().err
    assert "cannot resume" in err and "lr 0.01 -> 0.02" in err
    assert "model_config.pool 'max' -> 'avg'" in err and "--force-resume" in err
    # other data: another vocabulary and other rows, refused before any tensor is loaded
    other = _csv(tmp_path / "b.csv", offset=100)
    assert _train(other, out, "--epochs", "2", "--resume") == 1
    err = capsys.readouterr().err
    assert "data.path" in err and "data.train_rows.digest" in err
    assert "text_encoder.vocab (other items, 32 in both)" in err
    assert (out / "model.safetensors").read_bytes() == before
    # the same settings resume; --force-resume lets a pool without weights change
    assert _train(data, out, "--epochs", "2", "--resume", "--pool", "avg",
                  "--force-resume") == 0
    config = json.loads((out / "poolkit_config.json").read_text())
    assert config["model_config"]["pool"] == "avg" and config["train"]["config"]["epochs"] == 2


def test_runtime_failures_exit_1_and_usage_2(tmp_path, capsys):
    header_only = tmp_path / "empty.csv"
    header_only.write_text("text,label\n")
    assert _train(header_only, tmp_path / "e") == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    data, out = _csv(tmp_path / "a.csv"), tmp_path / "run"
    assert _train(data, out) == 0
    (out / "checkpoints" / "epoch-0001" / "trainer_state.json").write_text("{broken")
    assert _train(data, out, "--epochs", "2", "--resume") == 1
    err = capsys.readouterr().err
    assert "cannot resume from" in err and "epoch-0001" in err and "unreadable" in err
    assert _train(data, out, "--force-resume") == 2
    assert "--force-resume goes with --resume" in capsys.readouterr().err
    assert _train(data, out, "--resume", "--overwrite") == 2
    assert run(["eval", str(out), "--split", "nope"]) == 2
    assert _train(data, tmp_path / "p", "--pool", "nopool") == 2
    assert "--pool ('nopool') must be one of attention, avg" in capsys.readouterr().err
    assert run(["train", "transformer", "--data", str(data), "--pool", "mean+nope"]) == 2
    assert "mean, max, min" in capsys.readouterr().err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("text,label\ngood,x\n")
    assert run(["eval", str(out), "--data", str(wrong)]) == 1
    assert "data labels ['x'] of " in capsys.readouterr().err
