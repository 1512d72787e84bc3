"""compare on the command line: built-in tasks, a user's CSV and .npz, the task API, errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from poolkit.cli import run  # noqa: E402
from poolkit.experiments import Task, get_task, list_tasks, register_task  # noqa: E402
from poolkit.experiments.robustness import shift_images, word_dropout  # noqa: E402

TINY = ["--seeds", "1", "--epochs", "2", "--jobs", "1", "--threads", "1", "--json"]


def test_builtin_digits_task_from_the_cli(tmp_path, capsys):
    out = tmp_path / "digits"
    argv = ["compare", "--task", "digits", "--pools", "max,avg", "--train-size", "300",
            "--test-size", "150", "--out", str(out), *TINY]
    assert run(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["task"] == "digits" and payload["runs"]["ran"] == 2
    rows = {row["pool"]: row for row in payload["summary"]}
    assert set(rows) == {"max", "avg"}
    assert all(0 <= row["accuracy_mean"] <= 1 for row in rows.values())
    assert {"shift_1px_mean", "shift_3px_std", "params", "verdict"} <= set(rows["max"])
    record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert record["model_pools"] == {"downsample": "max", "global": "max"}
    assert record["n_test"] == 150
    # Same command again: everything is reused.
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == {
        "total": 2, "ran": 0, "reused": 2, "failed": 0
    }


def _write_reviews(path, n=240):
    rng = np.random.default_rng(0)
    filler = ["the", "film", "was", "a", "story", "and", "it", "plot", "quite"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "review", "sentiment"])
        for i in range(n):
            label = ["neg", "pos"][i % 2]
            words = list(rng.choice(filler, 8))
            words.insert(3, "great" if label == "pos" else "awful")
            writer.writerow([i, " ".join(words), label])


def test_a_users_csv_by_path_and_columns(tmp_path, capsys):
    path = tmp_path / "reviews.csv"
    _write_reviews(path)
    argv = ["compare", "--task", f"csv:{path}", "--text-column", "review", "--label-column",
            "sentiment", "--pools", "max", "--out", str(tmp_path / "out"), *TINY]
    assert run(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    row = payload["summary"][0]
    assert row["pool"] == "max" and row["accuracy_mean"] > 0.6  # the cue word is easy
    assert "word_dropout_30_mean" in row
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "| drop 30% |" in markdown and f"csv:{path}" in markdown


def test_a_users_npz_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 2
    images = rng.random((120, 1, 8, 8)).astype(np.float32) * 0.2
    images[labels == 1, :, 2:6, 2:6] += 0.8
    np.savez(tmp_path / "squares.npz", images=images, labels=labels)
    argv = ["compare", "--task", f"images:{tmp_path / 'squares.npz'}", "--pools", "max",
            "--out", str(tmp_path / "out"), *TINY]
    assert run(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["summary"][0]["runs"] == 1 and "shift_2px_mean" in payload["summary"][0]


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["compare", "--task", "no-such-task"], 2),
        (["compare", "--task", "digits", "--pools", "max,no-such-pool"], 2),
        (["compare", "--task", "csv:/no/such/file.csv"], 1),
        (["compare", "--task", "digits", "--text-column", "x"], 2),
        (["compare", "--task", "digits", "--seeds", "0"], 2),
    ],
)
def test_errors_exit_codes(argv, code, tmp_path, capsys):
    assert run([*argv, "--out", str(tmp_path / "out")]) == code
    assert "error" in capsys.readouterr().err.lower()


def test_task_registry_api():
    names = list_tasks()
    for name in ("digits", "mnist5k", "mnist", "mr", "sst2", "chnsenti", "rt"):
        assert name in names
    with pytest.raises(ValueError, match="must be one of"):
        get_task("nope")
    task = register_task(Task("my-images", "image", _load, _build), overwrite=True)
    assert get_task("my-images") is task
    assert task.perturbation == "shift" and task.levels == (1, 2, 3)
    with pytest.raises(ValueError, match="already registered"):
        register_task(Task("my-images", "image", _load, _build))
    with pytest.raises(ValueError, match="kind"):
        Task("x", "audio", _load, _build)


def _load(**options):  # pragma: no cover - registry test only
    raise NotImplementedError


def _build(pool, data):  # pragma: no cover - registry test only
    raise NotImplementedError


def test_shift_images_moves_by_k_pixels_with_zero_fill():
    images = torch.arange(1.0, 26.0).reshape(1, 1, 5, 5).repeat(16, 1, 1, 1)
    shifted = shift_images({"images": images}, 2, torch.Generator().manual_seed(0))["images"]
    for image in shifted[:, 0]:
        nonzero = image.nonzero()
        # a 2-pixel move keeps a 3x5, 5x3 or 3x3 block of the original values
        rows = nonzero[:, 0].unique().numel()
        cols = nonzero[:, 1].unique().numel()
        assert (rows, cols) in ((3, 5), (5, 3), (3, 3))
        assert image.sum() < images[0, 0].sum()
    assert shift_images({"images": images}, 0, None)["images"] is images
    with pytest.raises(ValueError, match="pixels"):
        shift_images({"images": images}, -1)


def test_word_dropout_deletes_tokens_keeps_order_and_one_token():
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 0, 0], [3, 0, 0, 0, 0, 0, 0, 0]])
    out = word_dropout({"input_ids": ids}, 0.5, torch.Generator().manual_seed(0))["input_ids"]
    assert out.shape == ids.shape
    kept = [t for t in out[0].tolist() if t]
    assert kept == sorted(kept) and set(kept) <= {5, 6, 7, 8, 9, 10}  # order kept
    assert out[1].tolist() == ids[1].tolist()  # never empties a text
    assert (out[0, len(kept):] == 0).all()  # padded at the end
    dropped = word_dropout({"input_ids": ids.repeat(500, 1)}, 0.3,
                           torch.Generator().manual_seed(1))["input_ids"][::2]
    share = 1 - (dropped != 0).sum().item() / (6 * 500)
    assert 0.25 < share < 0.35  # about 30% of the words deleted
    with pytest.raises(ValueError, match="rate"):
        word_dropout({"input_ids": ids}, 1.0)
    # keep_ends: a transformer's [CLS] (101) and [SEP] (102) always stay
    cls_sep = torch.tensor([[101, 7, 8, 9, 10, 11, 102, 0]])
    batch = {"input_ids": cls_sep, "attention_mask": (cls_sep != 0).long()}
    for seed in range(20):
        out = word_dropout(batch, 0.9, torch.Generator().manual_seed(seed), keep_ends=True)
        kept = out["input_ids"][0][out["attention_mask"][0].bool()].tolist()
        assert kept[0] == 101 and kept[-1] == 102


def test_a_tasks_word_dropout_reads_its_padding_id_and_end_tokens_from_the_task():
    """PERTURBATIONS take the task's data: word dropout pads with its pad_id and, for a
    transformer task (keep_ends), never drops [CLS] and [SEP]."""
    from poolkit.experiments.robustness import PERTURBATIONS
    from poolkit.experiments.tasks import TaskData

    ids = torch.tensor([[101, 5, 6, 7, 8, 102, 9, 9]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]])
    data = TaskData(None, None, None, None, 2, info={"pad_id": 9, "keep_ends": True})
    for seed in range(20):
        out = PERTURBATIONS["word_dropout"]({"input_ids": ids, "attention_mask": mask}, 0.9,
                                            torch.Generator().manual_seed(seed), data)
        real = out["attention_mask"][0].bool()
        kept = out["input_ids"][0][real].tolist()
        assert kept[0] == 101 and kept[-1] == 102
        assert (out["input_ids"][0][~real] == 9).all()
