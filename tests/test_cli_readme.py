"""The README's "your own data" commands, run as written (the test fails when README drifts),
and the default run folder of ``poolkit train``."""

from __future__ import annotations

import datetime
import json
import re
import shlex
from pathlib import Path

from poolkit.cli import run
from poolkit.cli.train import default_run_folder

REPO_ROOT = Path(__file__).resolve().parents[1]


def _own_data_commands() -> list[list[str]]:
    """The ``poolkit`` lines of the first bash block after "Your own data" in README.md."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("Your own data")
    block = re.search(r"```bash\n(.*?)```", readme[start:], re.S).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.startswith("poolkit ")]


def _write_reviews(path) -> None:
    good = ["a gripping , beautifully shot film", "warm and funny", "a superb story"]
    bad = ["dull and far too long", "a flat , silly mess", "boring from start to end"]
    rows = [f'"{text} ({i})",positive' for i in range(10) for text in good]
    rows += [f'"{text} ({i})",negative' for i in range(10) for text in bad]
    path.write_text("review,sentiment\n" + "\n".join(rows) + "\n")


def test_readme_own_data_commands_chain(tmp_path, monkeypatch, capsys):
    commands = _own_data_commands()
    assert [argv[1] for argv in commands] == ["train", "eval", "predict"]
    monkeypatch.chdir(tmp_path)
    _write_reviews(tmp_path / "reviews.csv")
    outputs = []
    for argv in commands:
        code = run(argv[1:])
        captured = capsys.readouterr()
        assert code == 0, (argv, captured.err)
        outputs.append(captured.out)
    assert "on the dev split (6 examples) of reviews.csv, 10% held out by train" in outputs[1]
    predicted = [re.fullmatch(r"(\S+)\s+([0-9.]+)\s+(.*)", line).groups()
                 for line in outputs[2].splitlines()]
    assert [row[2] for row in predicted] == commands[2][3:]
    assert all(row[0] in ("negative", "positive") for row in predicted)


def test_train_without_out_writes_a_printed_default_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_reviews(tmp_path / "my reviews.csv")
    code = run(["train", "textcnn", "--data", "my reviews.csv", "--text-column", "review",
                "--label-column", "sentiment", "--epochs", "1", "--embed-dim", "8",
                "--num-filters", "2", "--pool", "kmax", "--pool-arg", "k=2", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    folder = json.loads(captured.out)["out_dir"]
    assert re.fullmatch(r"runs/textcnn-my_reviews-kmax-\d{8}-\d{6}", folder)
    assert f"run folder: {folder}" in captured.err
    assert (tmp_path / folder / "model.safetensors").is_file()
    assert run(["eval", folder, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "dev"


def test_default_run_folder_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert str(default_run_folder("textcnn", "data/reviews.csv", "max", now)) == \
        "runs/textcnn-reviews-max-20260102-030405"
    assert str(default_run_folder("convnet", "digits", "gem", now)) == \
        "runs/convnet-digits-gem-20260102-030405"
    assert str(default_run_folder("transformer", "stanfordnlp/imdb", "mean+max", now)) == \
        "runs/transformer-imdb-mean_max-20260102-030405"
    assert str(default_run_folder("textcnn", "../data/mr/", "max", now)) == \
        "runs/textcnn-mr-max-20260102-030405"
    (tmp_path / "runs" / "convnet-digits-gem-20260102-030405").mkdir(parents=True)
    assert str(default_run_folder("convnet", "digits", "gem", now)) == \
        "runs/convnet-digits-gem-20260102-030405-2"
