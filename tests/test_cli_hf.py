"""``--data hf:...`` on the command line: train -> eval -> compare on folders written by
``save_to_disk`` (the real ``datasets``), exit codes and messages for the failures."""

from __future__ import annotations

import json

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")
pytest.importorskip("torch")

from poolkit.cli import run  # noqa: E402

SENTIMENT = datasets.ClassLabel(names=["negative", "positive"])
TINY_TEXTCNN = ["--epochs", "2", "--embed-dim", "8", "--num-filters", "4", "--quiet"]


def _reviews(n: int, seed: int, *, labelled: bool = True):
    """``n`` distinct reviews with a cue word (great/awful) and GLUE's column names."""
    rng = np.random.default_rng(seed)
    filler = ["the", "film", "was", "a", "story", "and", "it", "plot", "quite", "cast"]
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(filler, 6))
        words.insert(2, "great" if i % 2 else "awful")
        texts.append(" ".join(words) + f" {seed}-{i}")
        labels.append(i % 2 if labelled else -1)
    features = datasets.Features({"sentence": datasets.Value("string"), "label": SENTIMENT})
    return datasets.Dataset.from_dict({"sentence": texts, "label": labels}, features=features)


@pytest.fixture
def sst2_copy(tmp_path):
    """train/validation/test, all labelled."""
    folder = tmp_path / "sst2-copy"
    datasets.DatasetDict({"train": _reviews(80, 0), "validation": _reviews(20, 1),
                          "test": _reviews(30, 2)}).save_to_disk(str(folder))
    return folder


def test_train_then_eval_scores_the_test_split(sst2_copy, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = run(["train", "textcnn", "--data", f"hf:{sst2_copy}", "--out", str(run_dir),
                *TINY_TEXTCNN, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert (summary["num_train"], summary["num_dev"], summary["num_test"]) == (80, 20, 30)
    assert summary["splits"]["test"]["source"] == "sst2-copy[test]"
    assert summary["label_names"] == ["negative", "positive"]
    recorded = json.loads((run_dir / "poolkit_config.json").read_text())["data"]
    assert recorded["path"] == f"hf:{sst2_copy}"

    assert run(["eval", str(run_dir), "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert (own["split"], own["num_examples"], own["train_overlap"]) == ("test", 30, 0)
    assert own["available_splits"] == ["train", "dev", "test"]

    for data in (f"hf:{sst2_copy}", str(sst2_copy)):  # with or without the prefix
        assert run(["eval", str(run_dir), "--data", data, "--json"]) == 0
        scored = json.loads(capsys.readouterr().out)
        assert scored["split"] == "test" and scored["accuracy"] == own["accuracy"]
    assert run(["eval", str(run_dir), "--data", f"hf:{sst2_copy}", "--split", "validation",
                "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 20


def test_glue_style_unlabelled_test_is_said_and_eval_scores_dev(tmp_path, capsys):
    folder = tmp_path / "glue-sst2"
    datasets.DatasetDict({"train": _reviews(60, 0), "validation": _reviews(16, 1),
                          "test": _reviews(12, 2, labelled=False)}).save_to_disk(str(folder))
    run_dir = tmp_path / "run"
    code = run(["train", "textcnn", "--data", f"hf:{folder}", "--out", str(run_dir),
                *TINY_TEXTCNN, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (f"{folder}[test]: none of its 12 rows has a label (-1: GLUE's hidden test labels); "
            "split left out") in captured.err
    assert json.loads(captured.out)["num_test"] == 0
    assert run(["eval", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "dev"
    assert run(["eval", str(run_dir), "--split", "test"]) == 2
    assert "split 'test' does not exist" in capsys.readouterr().err


def test_errors_exit_1_with_the_reason(sst2_copy, capsys):
    assert run(["train", "textcnn", "--data", f"hf:{sst2_copy}", "--label-column", "stars",
                *TINY_TEXTCNN]) == 1
    assert ("no column 'stars' (label_column, --label-column); the columns are ['sentence', "
            "'label']") in capsys.readouterr().err
    # the test suite runs offline (HF_HUB_OFFLINE=1, conftest): a hub name cannot be reached
    assert run(["train", "textcnn", "--data", "hf:stanfordnlp/sst2", *TINY_TEXTCNN]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot load the Hugging Face data set 'stanfordnlp/sst2'" in err
    assert "--data hf:./my-data" in err and "Traceback" not in err


def test_images_train_a_convnet(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    labels = np.arange(60) % 2
    pixels = rng.integers(0, 60, size=(60, 8, 8), dtype=np.uint8)
    pixels[labels == 1, 2:6, 2:6] = 250  # class 1: a bright square
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["plain", "square"])})
    folder = tmp_path / "squares"
    datasets.Dataset.from_dict({"image": [Image.fromarray(p) for p in pixels],
                                "label": labels.tolist()}, features=features) \
        .save_to_disk(str(folder))
    code = run(["train", "convnet", "--data", f"hf:{folder}", "--channels", "4,8", "--epochs",
                "1", "--test-fraction", "0.2", "--out", str(tmp_path / "run"), "--quiet",
                "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["num_test"] == 12


def test_compare_on_a_saved_dataset(sst2_copy, tmp_path, capsys):
    out = tmp_path / "compare"
    argv = ["compare", "--task", f"hf:{sst2_copy}", "--pools", "max,avg", "--seeds", "1",
            "--epochs", "2", "--jobs", "1", "--threads", "1", "--out", str(out), "--json"]
    code = run(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    assert payload["task"] == f"hf:{sst2_copy}" and payload["runs"]["ran"] == 2
    record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert record["n_test"] == 30  # the data set's own test split


def test_compare_refuses_an_image_data_set_as_a_text_task(tmp_path, capsys):
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["a", "b"])})
    folder = tmp_path / "pictures"
    datasets.Dataset.from_dict({"image": [Image.fromarray(np.zeros((4, 4), np.uint8))] * 4,
                                "label": [0, 1, 0, 1]}, features=features) \
        .save_to_disk(str(folder))
    code = run(["compare", "--task", f"hf:{folder}", "--pools", "max", "--seeds", "1",
                "--jobs", "1", "--out", str(tmp_path / "out")])
    assert code == 1
    assert f"the hf task {folder} holds images; a text task needs texts" in \
        " ".join(capsys.readouterr().err.split())


def test_real_sst2_from_a_saved_copy_trains_as_the_tsv_files(shared_data, tmp_path, capsys):
    """SST-2's TSV files read by ``datasets``' own CSV reader (no quoting: quotes are text),
    saved with save_to_disk in GLUE's layout (ClassLabel, an unlabelled test split): poolkit
    reads the same rows, and a run trains to the same scores as on the TSV folder."""
    import csv

    folder = shared_data / "sst2"
    names = ["negative", "positive"]
    raw = datasets.load_dataset("csv", data_files={"train": str(folder / "train.tsv"),
                                                   "validation": str(folder / "dev.tsv")},
                                delimiter="\t", quoting=csv.QUOTE_NONE)
    raw = raw.rename_column("text", "sentence").cast_column("label",
                                                            datasets.ClassLabel(names=names))
    raw["test"] = raw["validation"].map(lambda row: {"label": -1})
    raw.save_to_disk(str(tmp_path / "sst2-copy"))

    from poolkit.data import load_dataset

    native, copy = load_dataset("sst2", folder), load_dataset(path=f"hf:{tmp_path / 'sst2-copy'}")
    assert (len(copy.train), len(copy.dev), copy.test) == (67349, 872, None)
    for ours, theirs in ((native.train, copy.train), (native.dev, copy.dev)):
        assert ours.texts == theirs.texts and ours.labels == theirs.labels
    summaries = []
    for data in (str(folder), f"hf:{tmp_path / 'sst2-copy'}"):
        assert run(["train", "textcnn", "--data", data, "--limit", "600", "--out",
                    str(tmp_path / f"run{len(summaries)}"), *TINY_TEXTCNN, "--json"]) == 0
        summaries.append(json.loads(capsys.readouterr().out))
    assert summaries[0]["dev"] == summaries[1]["dev"]  # the same rows, the same run


def test_eval_a_split_by_its_own_name(tmp_path, capsys):
    folder = tmp_path / "mnli-like"
    datasets.DatasetDict({"train": _reviews(60, 0), "validation_matched": _reviews(14, 1),
                          "validation_mismatched": _reviews(10, 2)}).save_to_disk(str(folder))
    run_dir = tmp_path / "run"
    code = run(["train", "textcnn", "--data", f"hf:{folder}", "--out", str(run_dir),
                *TINY_TEXTCNN, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (f"{folder}: split(s) 'validation_matched', 'validation_mismatched' not used "
            "(poolkit reads train, validation and test)") in " ".join(captured.err.split())
    for name, size in (("validation_matched", 14), ("validation_mismatched", 10)):
        assert run(["eval", str(run_dir), "--split", name, "--json"]) == 0
        scored = json.loads(capsys.readouterr().out)
        assert (scored["split"], scored["num_examples"]) == (name, size)
        assert scored["source"] == f"mnli-like[{name}]"
    assert run(["eval", str(run_dir), "--split", "validation_other"]) == 1
    assert "no split 'validation_other'; the data set has ['train', 'validation_matched', " \
        "'validation_mismatched']" in " ".join(capsys.readouterr().err.split())
