"""``poolkit eval`` scores held-out rows only, names the split and its source, and counts the
rows the model was trained on."""

from __future__ import annotations

import csv
import json

import pytest

from poolkit.cli import run

WORDS = ["great", "moving", "superb", "warm", "dull", "boring", "flat", "silly"]


@pytest.fixture()
def unique_reviews(tmp_path):
    """48 reviews, every text different (so a text names its row)."""
    rows = []
    for i in range(48):
        label = "pos" if i % 2 == 0 else "neg"
        words = WORDS[:4] if label == "pos" else WORDS[4:]
        rows.append(f'"{words[i % 4]} film number {i}",{label}')
    path = tmp_path / "reviews.csv"
    path.write_text("review,sentiment\n" + "\n".join(rows) + "\n")
    return path


def _train(tmp_path, data, *extra) -> list[str]:
    """Train a tiny TextCNN; return the texts the trainer was given (spied on prepare)."""
    import poolkit.train.recipes as recipes

    seen: list[str] = []
    original = recipes.prepare

    def spy(model_type, train, *args, **kwargs):
        seen.extend(train.texts)
        return original(model_type, train, *args, **kwargs)

    recipes.prepare = spy
    try:
        code = run(["train", "textcnn", "--data", str(data), "--text-column", "review",
                    "--label-column", "sentiment", "--epochs", "1", "--batch-size", "8",
                    "--embed-dim", "8", "--num-filters", "2", "--quiet", "--json", *extra])
    finally:
        recipes.prepare = original
    assert code == 0
    return seen


def _eval(capsys, argv) -> tuple[dict, str]:
    code = run(["eval", *argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out), captured.err


def _scored_texts(path) -> list[str]:
    with open(path, newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def test_eval_without_data_scores_no_training_row(tmp_path, unique_reviews, capsys):
    out = tmp_path / "run"
    trained = _train(tmp_path, unique_reviews, "--dev-fraction", "0.25", "--out", str(out))
    capsys.readouterr()
    result, err = _eval(capsys, [str(out), "--predictions", str(tmp_path / "p.csv")])
    scored = _scored_texts(tmp_path / "p.csv")
    assert len(trained) == 36 and len(scored) == 12 == result["num_examples"]
    assert not set(scored) & set(trained)  # the exact rows: none was trained on
    assert set(scored) | set(trained) == {f'{t}' for t in _file_texts(unique_reviews)}
    assert result["split"] == "dev" and result["train_overlap"] == 0
    assert result["source"].startswith("reviews.csv, 25% held out by train (--dev-fraction 0.25")
    assert result["available_splits"] == ["train", "dev"]
    assert "WARNING" not in err
    # the same path given as --data is the run's own data: the same held-out rows
    again, _ = _eval(capsys, [str(out), "--data", str(unique_reviews)])
    assert again["split"] == "dev" and again["accuracy"] == result["accuracy"]
    # the row numbers in the predictions file are the rows of the source file
    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    texts = _file_texts(unique_reviews)
    assert all(texts[int(row["row"])] == row["text"] for row in rows)


def _file_texts(path) -> list[str]:
    with open(path, newline="") as handle:
        return [row["review"] for row in csv.DictReader(handle)]


def test_eval_prefers_the_held_out_test_split(tmp_path, unique_reviews, capsys):
    out = tmp_path / "run"
    trained = _train(tmp_path, unique_reviews, "--dev-fraction", "0.25", "--test-fraction",
                     "0.25", "--out", str(out))
    capsys.readouterr()
    result, _ = _eval(capsys, [str(out), "--predictions", str(tmp_path / "p.csv")])
    assert result["split"] == "test" and result["num_examples"] == 12
    assert "--test-fraction 0.25" in result["source"]
    assert not set(_scored_texts(tmp_path / "p.csv")) & set(trained)
    dev, _ = _eval(capsys, [str(out), "--split", "dev", "--predictions", str(tmp_path / "d.csv")])
    assert dev["split"] == "dev" and dev["num_examples"] == 8  # round(0.25 * 18) per class
    assert not set(_scored_texts(tmp_path / "d.csv")) & set(trained)
    assert not set(_scored_texts(tmp_path / "d.csv")) & set(_scored_texts(tmp_path / "p.csv"))


def test_eval_of_a_cross_validation_fold_scores_its_test_fold(tmp_path, unique_reviews, capsys):
    out = tmp_path / "cv"
    trained = _train(tmp_path, unique_reviews, "--folds", "2", "--out", str(out))
    capsys.readouterr()
    first_fold = trained[: len(trained) // 2]  # prepare saw fold 1's training part first
    result, _ = _eval(capsys, [str(out / "fold-01"), "--predictions", str(tmp_path / "p.csv")])
    assert result["split"] == "test" and "fold 1 of 2" in result["source"]
    assert result["num_examples"] == 24 and result["train_overlap"] == 0
    assert not set(_scored_texts(tmp_path / "p.csv")) & set(first_fold)


def test_eval_names_another_file_and_counts_training_rows(tmp_path, unique_reviews, capsys):
    out = tmp_path / "run"
    _train(tmp_path, unique_reviews, "--dev-fraction", "0.25", "--out", str(out))
    copy = tmp_path / "copy.csv"
    copy.write_text(unique_reviews.read_text())
    capsys.readouterr()
    result, err = _eval(capsys, [str(out), "--data", str(copy)])
    assert result["split"] == "all" and result["source"] == "copy.csv"
    assert result["train_overlap"] == 36 and result["num_examples"] == 48
    assert "WARNING: 36 of 48 examples scored (75%)" in err
    assert run(["eval", str(out), "--data", str(copy)]) == 0
    captured = capsys.readouterr()
    assert "on all (48 examples) of copy.csv" in captured.out
    assert "train" not in captured.out.split("\n")[0]


def test_eval_asked_for_a_missing_split_lists_the_splits(tmp_path, unique_reviews, capsys):
    out = tmp_path / "run"
    _train(tmp_path, unique_reviews, "--dev-fraction", "0.25", "--out", str(out))
    capsys.readouterr()
    assert run(["eval", str(out), "--split", "test"]) == 2
    assert "split 'test' does not exist in the training run's data; the splits that exist: " \
           "train, dev" in capsys.readouterr().err


def test_eval_of_a_run_that_held_out_nothing_refuses(tmp_path, unique_reviews, capsys):
    out = tmp_path / "run"
    _train(tmp_path, unique_reviews, "--dev-fraction", "0", "--out", str(out))
    capsys.readouterr()
    assert run(["eval", str(out)]) == 2
    err = capsys.readouterr().err
    assert "held out no data" in err and "--split train" in err
    result, err = _eval(capsys, [str(out), "--split", "train"])
    assert result["train_overlap"] == 48 and "WARNING" in err


@pytest.mark.parametrize("columns", [80, 200])
def test_train_and_eval_output_fits_the_terminal(tmp_path, unique_reviews, capsys, monkeypatch,
                                                  columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    out = tmp_path / "run"
    assert run(["train", "textcnn", "--data", str(unique_reviews), "--text-column", "review",
                "--label-column", "sentiment", "--epochs", "1", "--embed-dim", "8",
                "--num-filters", "2", "--test-fraction", "0.25", "--out", str(out)]) == 0
    assert run(["eval", str(out)]) == 0
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert max(len(line) for line in lines) <= columns, "\n".join(lines)
    assert "test split (12 examples)" in captured.out
    assert any(line.startswith("accuracy ") and "loss" in line for line in lines)


def _bundle(n=40, with_dev=False):
    from poolkit.data.catalog import DataBundle
    from poolkit.data.text import TextData

    train = TextData([f"text {i}" for i in range(n)], [i % 2 for i in range(n)], ["a", "b"],
                     source="/data/train.tsv")
    dev = TextData(["d1", "d2"], [0, 1], ["a", "b"], source="/data/dev.tsv") if with_dev else None
    return DataBundle("tsv", "text", train, dev, None)


@pytest.mark.parametrize("settings", [
    {"dev_fraction": 0.25}, {"dev_fraction": 0.2, "test_fraction": 0.25},
    {"limit": 20, "dev_fraction": 0.2, "test_fraction": 0.2, "split_seed": 4},
    {"fold": 2, "folds": 3, "dev_fraction": 0.1},
])
def test_run_splits_partition_the_rows(settings):
    from poolkit.train.recipes import run_splits

    bundle = _bundle()
    splits = run_splits(bundle, **settings)
    rows = [set(split.rows.tolist()) for split in splits.values()]
    assert sum(len(r) for r in rows) == len(set().union(*rows))  # disjoint
    expected = settings.get("limit", 40)
    assert len(set().union(*rows)) == expected
    for split in splits.values():  # each split's examples are the rows it names
        assert split.data.texts == [bundle.train.texts[i] for i in split.rows]
    assert run_splits(bundle, **settings)["train"].rows.tolist() == \
        splits["train"].rows.tolist()  # seeded


def test_run_splits_of_a_fold_ignore_the_data_sets_own_dev():
    from poolkit.train.recipes import run_splits

    own = run_splits(_bundle(with_dev=True), dev_fraction=0.1)
    assert own["dev"].source == "dev.tsv" and len(own["dev"].data) == 2
    assert own["train"].source == "train.tsv" and len(own["train"].data) == 40
    fold = run_splits(_bundle(with_dev=True), dev_fraction=0.25, fold=1, folds=2)
    assert "held out by train (--dev-fraction 0.25, split seed 0)" in fold["dev"].source
    assert len(fold["dev"].data) == 4 and len(fold["test"].data) == 20  # round(2.5) = 2 a class
