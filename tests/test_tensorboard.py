"""TensorBoard logging (poolkit.train.tensorboard, train --log-dir): the scalars of each epoch,
each step once after an interrupted run is resumed, read back with TensorBoard's own
EventAccumulator; a missing package or a folder of another run stops before training."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # dev extra
from test_train_accum_precision import Interrupted, _fit

from poolkit.cli import run
from poolkit.train.tensorboard import TensorBoardLogger, record_scalars


def _scalars(log_dir, tag="train/loss") -> list[tuple[int, float]]:
    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_record_scalars_names_each_value():
    record = {"event": "epoch", "epoch": 2, "train_loss": 0.5, "train_accuracy": 0.75,
              "lr": 0.01, "steps": 10, "time_s": 1.5, "best": True,
              "dev": {"accuracy": 0.8, "macro_f1": 0.79, "loss": 0.4}}
    assert record_scalars(record) == {
        "train/loss": 0.5, "train/accuracy": 0.75, "train/lr": 0.01, "time/epoch_s": 1.5,
        "epoch": 2.0, "dev/accuracy": 0.8, "dev/macro_f1": 0.79, "dev/loss": 0.4}


def test_the_callback_logs_every_epoch_once_across_a_resume(tmp_path):
    """A run killed after epoch 2 (the logger had written epoch 2, and an orphan event after
    the checkpoint) and resumed to epoch 4 shows steps 1..4 once each, equal to an
    uninterrupted run's values."""
    options = {"grad_accum": 2, "epochs": 4}
    whole = tmp_path / "tb-whole"
    with TensorBoardLogger(whole) as logger:
        _, result = _fit(tmp_path / "a", callbacks=[logger], **options)
    expected = [(r["steps"], r["train_loss"]) for r in result.history]

    log_dir = tmp_path / "tb"
    first = TensorBoardLogger(log_dir)

    def stop(trainer, record):
        if record["epoch"] == 2:
            # what a kill between an epoch's log and the next checkpoint could leave behind
            first._writer.add_scalar("train/loss", 99.0, global_step=record["steps"] + 3)
            first.close()
            raise Interrupted

    with pytest.raises(Interrupted):
        _fit(tmp_path / "b", callbacks=[first, stop], **options)
    with TensorBoardLogger(log_dir) as second:
        _fit(tmp_path / "b", resume=True, callbacks=[second], **options)
    logged = _scalars(log_dir)
    assert [step for step, _ in logged] == [step for step, _ in expected] == [3, 6, 9, 12]
    assert [value for _, value in logged] == pytest.approx([v for _, v in expected], rel=1e-6)
    assert _scalars(whole) == logged


@pytest.fixture()
def reviews(tmp_path):
    rows = [f'"{["great", "warm"][i % 2] if i % 2 == 0 else "dull"} film {i}",'
            f'{"pos" if i % 2 == 0 else "neg"}' for i in range(40)]
    path = tmp_path / "reviews.csv"
    path.write_text("review,sentiment\n" + "\n".join(rows) + "\n")
    return path


def _train(path, out, log_dir, *extra) -> list[str]:
    return ["train", "textcnn", "--data", str(path), "--text-column", "review",
            "--label-column", "sentiment", "--embed-dim", "4", "--num-filters", "2",
            "--out", str(out), "--log-dir", str(log_dir), "--quiet", "--json", *extra]


def test_train_log_dir_resumed_run_has_no_step_twice(tmp_path, reviews, capsys):
    log_dir = tmp_path / "tb"
    assert run(_train(reviews, tmp_path / "run", log_dir, "--epochs", "2")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["log_dir"] == [str(log_dir)]
    assert len(_scalars(log_dir)) == 2
    assert run(_train(reviews, tmp_path / "run", log_dir, "--epochs", "3", "--resume")) == 0
    capsys.readouterr()
    history = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text()
               .splitlines() if json.loads(line)["event"] == "epoch"]
    assert _scalars(log_dir) == [(r["steps"], pytest.approx(r["train_loss"])) for r in history]
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1
    assert {"dev/accuracy", "train/lr"} <= set(EventAccumulator(str(log_dir)).Reload()
                                               .Tags()["scalars"])


def test_train_log_dir_of_folds_and_refusals(tmp_path, reviews, capsys, monkeypatch):
    assert run(_train(reviews, tmp_path / "cv", tmp_path / "tb", "--epochs", "1",
                      "--folds", "2")) == 0
    capsys.readouterr()
    assert len(_scalars(tmp_path / "tb" / "fold-02")) == 1
    # another run into the same folder: bad usage, before any training (exit 2)
    assert run(_train(reviews, tmp_path / "other", tmp_path / "tb" / "fold-02",
                      "--epochs", "1")) == 2
    assert "holds TensorBoard events of another run" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    # no tensorboard package: exit 1 naming the extra, before any training
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert run(_train(reviews, tmp_path / "none", tmp_path / "tb2", "--epochs", "1")) == 1
    assert "pip install 'poolkit[tensorboard]'" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
