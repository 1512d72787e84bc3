"""The README's "Use with Hugging Face datasets" snippets, run as written on local copies saved
with ``save_to_disk`` in tmp_path (each hub name in them replaced by the folder of a small data
set with the same splits, columns and features; the suite runs offline)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")
pytest.importorskip("torch")

from poolkit.cli import run  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet(marker: str, language: str) -> str:
    """The ``language`` block that follows ``<!-- test: marker -->`` in README.md."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- test: {marker} -->\n```{language}\n(.*?)```", text, re.S)
    assert found, f"README.md has no {language} block marked {marker!r}"
    return found.group(1)


def _texts(n: int, seed: int, column: str, names: list[str], *, labelled: bool = True):
    rng = np.random.default_rng(seed)
    filler = ["the", "film", "was", "a", "story", "and", "it", "plot", "cast"]
    rows = [" ".join([*rng.choice(filler, 5), "great" if i % 2 else "awful", f"{seed}-{i}"])
            for i in range(n)]
    features = datasets.Features({column: datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    labels = [i % 2 if labelled else -1 for i in range(n)]
    return datasets.Dataset.from_dict({column: rows, "label": labels}, features=features)


def _digits(n: int, seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    pixels = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        pixels[i, 2 * label:2 * label + 6, 4:24] = 255  # a bar whose height is the class
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[str(k) for k in range(10)])})
    return datasets.Dataset.from_dict({"image": [Image.fromarray(p) for p in pixels],
                                       "label": labels.tolist()}, features=features)


def _pairs(n: int, seed: int):
    words = ["a man plays", "a woman sings", "a dog runs", "the cat sleeps", "kids laugh"]
    return datasets.Dataset.from_dict({
        "sentence1": [f"{words[i % 5]} {seed}-{i}" for i in range(n)],
        "sentence2": [f"{words[(i * 2) % 5]} today" for i in range(n)],
        "score": [round((i % 5) / 4, 2) for i in range(n)]})


@pytest.fixture
def hub_copies(tmp_path):
    """``{hub name: saved folder}`` with the layout of each hub data set the README names."""
    sentiment = ["negative", "positive"]
    copies = {
        "stanfordnlp/sst2": datasets.DatasetDict({
            "train": _texts(60, 0, "sentence", sentiment), "validation": _texts(16, 1,
                                                                              "sentence",
                                                                              sentiment),
            "test": _texts(10, 2, "sentence", sentiment, labelled=False)}),
        "cornell-movie-review-data/rotten_tomatoes": datasets.DatasetDict({
            "train": _texts(60, 3, "text", ["neg", "pos"]),
            "validation": _texts(14, 4, "text", ["neg", "pos"]),
            "test": _texts(12, 5, "text", ["neg", "pos"])}),
        "ylecun/mnist": datasets.DatasetDict({"train": _digits(100, 6), "test": _digits(20, 7)}),
        "sentence-transformers/stsb": datasets.DatasetDict({
            "train": _pairs(10, 8), "validation": _pairs(5, 9), "test": _pairs(10, 10)}),
    }
    folders = {}
    for name, data in copies.items():
        folders[name] = tmp_path / "hub" / name.replace("/", "--")
        data.save_to_disk(str(folders[name]))
    return folders


FAST = {  # fewer epochs and smaller models: the commands' meaning is unchanged
    "textcnn": ["--epochs", "1", "--embed-dim", "8", "--num-filters", "4", "--quiet"],
    "convnet": ["--epochs", "1", "--channels", "4,8", "--quiet"],
    "compare": ["--seeds", "1", "--epochs", "1", "--jobs", "1", "--threads", "1", "--json"],
}


def test_cli_snippet(hub_copies, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    commands = [shlex.split(line, comments=True)
                for line in snippet("readme-hf-cli", "bash").splitlines() if line.strip()]
    results = []
    for argv in commands:
        assert argv[0] == "poolkit"
        args = [_local(arg, hub_copies) for arg in argv[1:]]
        if args[0] == "train":
            args += FAST[args[1]]
        elif args[0] == "compare":
            args += [*FAST["compare"], "--out", str(tmp_path / f"compare-{len(results)}")]
        elif args[0] == "eval":
            args += ["--json"]
        code = run(args)
        captured = capsys.readouterr()
        assert code == 0, (argv, captured.err)
        results.append((argv, captured))
    evals = [json.loads(c.out) for argv, c in results if argv[1] == "eval"]
    assert [(e["split"], e["num_examples"]) for e in evals] == [("dev", 16), ("test", 12),
                                                               ("dev", 14)]
    assert "none of its 10 rows has a label" in results[0][1].err
    assert (tmp_path / "mr-validation.csv").is_file()
    assert (tmp_path / "runs" / "mnist" / "model.safetensors").is_file()
    compares = [json.loads(c.out) for argv, c in results if argv[1] == "compare"]
    assert [(c["task"], c["runs"]["ran"], c["runs"]["failed"]) for c in compares] == [
        (f"hf:{hub_copies['cornell-movie-review-data/rotten_tomatoes']}", 3, 0), ("stsb", 3, 0)]
    stsb = {row["pool"]: row for row in compares[1]["summary"]}
    assert set(stsb) == {"mean", "cls", "max"}


def _local(arg: str, folders: dict) -> str:
    if arg.startswith("hf:") and arg[3:] in folders:
        return f"hf:{folders[arg[3:]]}"
    return arg


def test_python_snippet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    datasets.DatasetDict({
        "train": _texts(20, 0, "sentence", ["negative", "positive"]),
        "validation": _texts(6, 1, "sentence", ["negative", "positive"]),
        "test": _texts(4, 2, "sentence", ["negative", "positive"], labelled=False),
    }).save_to_disk("sst2-copy")
    scope: dict = {}
    exec(snippet("readme-hf-python", "python"), scope)
    bundle = scope["bundle"]
    assert bundle.label_names == ["negative", "positive"]
    assert (len(bundle.train), len(bundle.dev), bundle.test) == (20, 6, None)
