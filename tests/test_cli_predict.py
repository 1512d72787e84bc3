"""Per-class metrics in eval and train, --label-names, and ``predict --data FILE --out CSV``."""

from __future__ import annotations

import csv
import json

import pytest

from poolkit.cli import run


@pytest.fixture()
def numeric_reviews(tmp_path):
    rows = []
    for i in range(40):
        good = i % 2 == 0
        rows.append(f'"a {"superb, warm" if good else "dull, flat"} film {i}",{int(good)}')
    path = tmp_path / "reviews.csv"
    path.write_text("review,stars\n" + "\n".join(rows) + "\n")
    return path


def _train(data, out, *extra):
    return run(["train", "textcnn", "--data", str(data), "--text-column", "review",
                "--label-column", "stars", "--epochs", "3", "--embed-dim", "8",
                "--num-filters", "4", "--lr", "0.01", "--dev-fraction", "0.25",
                "--out", str(out), *extra])


def test_label_names_and_per_class_metrics(tmp_path, numeric_reviews, capsys):
    out = tmp_path / "run"
    assert _train(numeric_reviews, out, "--label-names", "negative,positive") == 0
    trained = capsys.readouterr().out
    assert "per class (dev)" in trained and "precision" in trained and "negative" in trained
    assert json.loads((out / "poolkit_config.json").read_text())["label_names"] == ["negative",
                                                                           "positive"]
    assert run(["eval", str(out), "--json", "--predictions", str(tmp_path / "p.csv")]) == 0
    result = json.loads(capsys.readouterr().out)
    with open(tmp_path / "p.csv", newline="") as handle:
        scored = list(csv.DictReader(handle))
    for k, name in enumerate(["negative", "positive"]):  # counted by hand from the rows
        predicted = [r for r in scored if r["predicted"] == name]
        actual = [r for r in scored if r["label"] == name]
        hits = sum(r["label"] == name for r in predicted)
        assert result["precision_per_class"][k] == pytest.approx(
            hits / len(predicted) if predicted else 0.0)
        assert result["recall_per_class"][k] == pytest.approx(hits / len(actual))
        assert result["support_per_class"][k] == len(actual)
    assert run(["eval", str(out)]) == 0
    table = capsys.readouterr().out
    assert "precision" in table and "recall" in table and "support" in table
    # the numbers of the file are read as the names' positions
    assert run(["predict", str(out), "superb, warm", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["predictions"][0]
    assert set(row["probabilities"]) == {"negative", "positive"}


def test_label_names_must_fit_the_data(tmp_path, numeric_reviews, capsys):
    assert _train(numeric_reviews, tmp_path / "a", "--label-names", "neg,neg") == 2
    assert "must be distinct" in capsys.readouterr().err
    assert run(["train", "convnet", "--dataset", "digits", "--label-names", "a,b,c",
                "--out", str(tmp_path / "b")]) == 2
    assert "--label-names gives 3 names (a, b, c); the data has 10 labels" in \
        capsys.readouterr().err


def test_predict_a_file_column_to_csv(tmp_path, numeric_reviews, capsys):
    out = tmp_path / "run"
    assert _train(numeric_reviews, out, "--quiet") == 0
    capsys.readouterr()
    target = tmp_path / "predictions.csv"
    assert run(["predict", str(out), "--data", str(numeric_reviews), "--text-column",
                "review", "--out", str(target)]) == 0
    assert "40 predictions written to" in capsys.readouterr().out
    with open(target, newline="") as handle:
        written = list(csv.DictReader(handle))
    with open(numeric_reviews, newline="") as handle:
        texts = [r["review"] for r in csv.DictReader(handle)]
    assert [r["text"] for r in written] == texts
    assert list(written[0]) == ["row", "text", "label", "p_0", "p_1"]
    assert all(float(r["p_0"]) + float(r["p_1"]) == pytest.approx(1.0, abs=1e-5)
               for r in written)
    # the same as predicting the texts given as arguments
    assert run(["predict", str(out), texts[0], texts[1], "--json"]) == 0
    direct = json.loads(capsys.readouterr().out)["predictions"]
    assert [r["label"] for r in direct] == [written[0]["label"], written[1]["label"]]
    assert direct[0]["probabilities"]["1"] == pytest.approx(float(written[0]["p_1"]), abs=1e-6)
    # a missing column names the columns there are; a missing file is a runtime error
    assert run(["predict", str(out), "--data", str(numeric_reviews)]) == 1
    assert "no column 'text' (columns: review, stars); pass --text-column" in \
        capsys.readouterr().err
    assert run(["predict", str(out), "--data", str(tmp_path / "none.csv")]) == 1
    assert run(["predict", str(out), "x", "--data", str(numeric_reviews)]) == 2
