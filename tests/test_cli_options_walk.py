"""Every option of eval, predict, embed, eval-embeddings, compare and demo reaches what the
command does (train's walk: tests/test_cli_train_options.py). Each table of checks must name
every option its command has, so that an option added without a check fails here.

eval and predict run on a small trained TextCNN; embed, eval-embeddings, compare and demo hand
their work to a library function, replaced here by a recorder, so these tests check that each
option gets there (what the functions do with it is tested with them)."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
import typer

from poolkit.cli import app, run


def _options_of(name: str) -> set[str]:
    command = typer.main.get_command(app).commands[name]
    return {max(param.opts, key=len) for param in command.params
            if param.param_type_name == "option" and param.name != "help"}


def _assert_all_checked(name: str, checks: dict) -> None:
    assert set(checks) == _options_of(name), f"every option of {name} needs a check here"
    failed = [option for option, ok in checks.items() if not ok]
    assert not failed, f"options of {name} that did not reach it: {failed}"


def _go(capsys, argv, code=0):
    got = run(argv)
    captured = capsys.readouterr()
    assert got == code, captured.err
    return captured


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import contextlib
    import io

    root = tmp_path_factory.mktemp("walk")
    rows = [f'"{["great", "warm", "superb"][i % 3] if i % 2 == 0 else "dull"} film {i}",'
            f'{"pos" if i % 2 == 0 else "neg"}' for i in range(48)]
    data = root / "reviews.csv"
    data.write_text("review,sentiment\n" + "\n".join(rows) + "\n")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert run(["train", "textcnn", "--data", str(data), "--text-column", "review",
                    "--label-column", "sentiment", "--epochs", "1", "--embed-dim", "4",
                    "--num-filters", "2", "--test-fraction", "0.25", "--out", str(root / "run"),
                    "--quiet", "--json"]) == 0
    return root, root / "run", data


class _Spy:
    """Records the keyword arguments of each call of ``target`` (and still calls it)."""

    def __init__(self, target):
        self.target, self.calls = target, []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.target(*args, **kwargs)


def test_every_eval_option_reaches_it(trained, tmp_path, monkeypatch, capsys):
    import poolkit.train.inference as inference

    root, out, data = trained
    threads_before = torch.get_num_threads()
    predictor_class = inference.Predictor
    made = _Spy(predictor_class)
    logits = _Spy(predictor_class.logits)
    monkeypatch.setattr(predictor_class, "logits", lambda self, *a: logits(self, *a))
    monkeypatch.setattr(inference, "Predictor", made)

    other = tmp_path / "other.data"  # tab-separated, a name no format is guessed from
    other.write_bytes(("t\tl\n" + "".join(f"a café {i}\t{'pos' if i % 2 == 0 else 'neg'}\n"
                                          for i in range(8))).encode("latin-1"))
    bad = tmp_path / "bad.csv"
    bad.write_text("review,sentiment\na warm film,pos\na,b,c,d\ndull,neg\n")
    columns = ["--text-column", "t", "--label-column", "l", "--encoding", "latin-1"]
    result = json.loads(_go(capsys, [
        "eval", str(out), "--data", str(other), "--format", "tsv", *columns, "--json",
        "--batch-size", "3", "--device", "cpu", "--threads", "1",
        "--predictions", str(tmp_path / "p.csv"), "--plot", str(tmp_path / "r.png"),
        "--ece-bins", "7", "--quiet"]).out)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_before)
    by_dataset = json.loads(_go(capsys, ["eval", str(out), "--data", str(other), "--dataset",
                                         "tsv", *columns, "--json"]).out)
    no_format = run(["eval", str(out), "--data", str(other), *columns])
    no_encoding = run(["eval", str(out), "--data", str(other), "--format", "tsv",
                       *columns[:4]])
    wrong_text = run(["eval", str(out), "--data", str(other), "--format", "tsv",
                      "--text-column", "x", *columns[2:]])
    default_label = run(["eval", str(out), "--data", str(other), "--format", "tsv",
                         *columns[:2], *columns[4:]])
    loud = _go(capsys, ["eval", str(out)])
    quiet = _go(capsys, ["eval", str(out), "--quiet"])
    skipped = json.loads(_go(capsys, ["eval", str(out), "--data", str(bad), "--text-column",
                                      "review", "--label-column", "sentiment",
                                      "--skip-bad-lines", "--json"]).out)
    not_skipped = run(["eval", str(out), "--data", str(bad), "--text-column", "review",
                       "--label-column", "sentiment"])
    train_split = json.loads(_go(capsys, ["eval", str(out), "--split", "train", "--json",
                                          "-q"]).out)
    reduce = _go(capsys, ["eval", str(out), "--reduce", "merge:r=2"], code=2)

    checks = {
        "--data": result["data"] == str(other) and result["num_examples"] == 8,
        "--dataset": by_dataset["dataset"] == "tsv",
        "--format": result["dataset"] == "tsv" and no_format == 1,
        "--split": train_split["split"] == "train" and train_split["train_overlap"] > 0,
        "--text-column": wrong_text == 1,
        "--label-column": default_label == 1,  # the training run's column, not in this file
        "--predictions": (tmp_path / "p.csv").read_text().count("\n") == 9,
        "--batch-size": logits.calls[0][0][2] == 3,
        "--device": made.calls[0][1]["device"] == "cpu",
        "--threads": threads == 1,
        "--encoding": no_encoding == 1,
        "--skip-bad-lines": skipped["num_examples"] == 2 and not_skipped == 1,
        "--reduce": "--reduce" in reduce.err,
        "--plot": (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG",
        "--ece-bins": result["ece_bins"] == 7 and len(result["reliability"]["count"]) == 7,
        "--quiet": "poolkit: csv" in loud.err and quiet.err == "",
        "--json": result["checkpoint"] == str(out),
    }
    capsys.readouterr()
    _assert_all_checked("eval", checks)


def test_every_predict_option_reaches_it(trained, tmp_path, monkeypatch, capsys):
    import poolkit.train.inference as inference

    _, out, _ = trained
    threads_before = torch.get_num_threads()
    predictor_class = inference.Predictor
    made = _Spy(predictor_class)
    predicted = _Spy(predictor_class.predict_texts)
    monkeypatch.setattr(predictor_class, "predict_texts", lambda self, *a: predicted(self, *a))
    monkeypatch.setattr(inference, "Predictor", made)
    texts = tmp_path / "new.csv"
    texts.write_bytes("review\ncafé au lait\nwarm\n".encode("latin-1"))
    document = json.loads(_go(capsys, ["predict", str(out), "--data", str(texts),
                                       "--text-column", "review", "--encoding", "latin-1",
                                       "--batch-size", "1", "--device", "cpu", "--threads", "1",
                                       "--out", str(tmp_path / "p.csv"), "--json"]).out)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_before)
    lines = _go(capsys, ["predict", str(out), "warm", "dull", "--jsonl"]).out.splitlines()
    checks = {
        "--data": [p["text"] for p in document["predictions"]] == ["café au lait", "warm"],
        "--text-column": run(["predict", str(out), "--data", str(texts), "--text-column", "x",
                              "--encoding", "latin-1"]) == 1,
        "--encoding": run(["predict", str(out), "--data", str(texts),
                           "--text-column", "review"]) == 1,
        "--out": (tmp_path / "p.csv").read_text().count("\n") == 3
        and document["out"] == str(tmp_path / "p.csv"),
        "--batch-size": predicted.calls[0][0][2] == 1,
        "--device": made.calls[0][1]["device"] == "cpu",
        "--threads": threads == 1,
        "--json": isinstance(document["predictions"], list),
        "--jsonl": [json.loads(line)["text"] for line in lines] == ["warm", "dull"],
    }
    capsys.readouterr()
    _assert_all_checked("predict", checks)


# ---------------------------------------------------------------------------------------------
# Commands that hand their work to one library function: the function is replaced by a recorder


class _FakeEmbedder:
    made: list[dict] = []

    def __init__(self, model, pool=None, **kwargs):
        _FakeEmbedder.made.append({"model": model, "pool": pool, **kwargs})
        self.pool = types.SimpleNamespace(mode=pool or "mean")
        self.normalize = bool(kwargs.get("normalize"))
        self.reduce = kwargs.get("reduce", "none")

    def encode(self, texts, show_progress=True):
        _FakeEmbedder.made[-1]["show_progress"] = show_progress
        return np.ones((len(texts), 3), dtype=np.float32)


def test_every_embed_option_reaches_the_embedder(tmp_path, monkeypatch, capsys):
    import poolkit.models.embedder as embedder

    monkeypatch.setattr(embedder, "Embedder", _FakeEmbedder)
    _FakeEmbedder.made = []
    sentences = tmp_path / "s.txt"
    sentences.write_text("one\n\ntwo\n")
    first = _go(capsys, [
        "embed", str(sentences), "--model", "some-model", "--pooling", "kmax", "--pool-arg", "k=2",
        "--no-normalize", "--batch-size", "5", "--max-length", "16", "--gguf-file", "m.gguf",
        "--out", str(tmp_path / "e.npy"), "--json", "--quiet", "--device", "cpu",
        "--reduce", "merge:r=2"])
    document = json.loads(first.out)
    made = _FakeEmbedder.made[0]
    lines = _go(capsys, ["embed", str(sentences), "-m", "x", "--jsonl"])
    loud = _go(capsys, ["embed", str(sentences), "-m", "x", "-o", str(tmp_path / "e.jsonl")])
    old = _go(capsys, ["embed", str(sentences), "-m", "x", "--pool", "max", "--json"])
    checks = {
        "--model": made["model"] == "some-model" and document["model"] == "some-model",
        "--pooling": made["pool"] == "kmax",
        "--pool": _FakeEmbedder.made[-1]["pool"] == "max"
        and "--pool is deprecated here, give --pooling" in old.err,
        "--pool-arg": made["pool_kwargs"] == {"k": 2},
        "--normalize": made["normalize"] is False,
        "--batch-size": made["batch_size"] == 5,
        "--max-length": made["max_length"] == 16,
        "--gguf-file": made["gguf_file"] == "m.gguf",
        "--out": np.load(tmp_path / "e.npy").shape == (2, 3),
        "--json": [e["line"] for e in document["embeddings"]] == [1, 3],
        "--jsonl": [json.loads(x)["line"] for x in lines.out.splitlines()] == [1, 3],
        "--quiet": made["show_progress"] is False and _FakeEmbedder.made[1]["show_progress"]
        and first.err == "" and "wrote 2 x 3 embeddings" in loud.err,
        "--device": str(made["device"]) == "cpu",
        "--reduce": made["reduce"] == "merge:r=2",
    }
    _assert_all_checked("embed", checks)


def test_every_eval_embeddings_option_reaches_the_evaluation(tmp_path, monkeypatch, capsys):
    import poolkit.experiments.sts as sts

    calls = []

    def record(path, model, pools, **kwargs):
        calls.append({"path": path, "model": model, "pools": pools, **kwargs})
        return {"file": str(path), "pairs": 3, "model": model, "max_length": 8,
                "bootstrap_samples": kwargs["samples"], "seed": kwargs["seed"],
                "results": [{"pool": p, "spearman": 0.5, "ci_low": 0.4, "ci_high": 0.6,
                             "pearson": 0.5} for p in pools]}

    monkeypatch.setattr(sts, "evaluate_pairs_file", record)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b,s\n")
    report = json.loads(_go(capsys, [
        "eval-embeddings", str(pairs), "--model", "m", "--pooling", "mean,cls", "--max-length", "8",
        "--batch-size", "4", "--bootstrap", "20", "--seed", "3", "--sentence1-column", "a",
        "--sentence2-column", "b", "--score-column", "s", "--gguf-file", "g.gguf",
        "--device", "cpu", "--json"]).out)
    loud = _go(capsys, ["eval-embeddings", str(pairs), "-m", "m"])
    quiet = _go(capsys, ["eval-embeddings", str(pairs), "-m", "m", "--quiet"])
    old = _go(capsys, ["eval-embeddings", str(pairs), "-m", "m", "--pool", "max", "--json"])
    made = calls[0]
    checks = {
        "--model": made["model"] == "m",
        "--pooling": made["pools"] == ["mean", "cls"] and calls[1]["pools"] == ["mean"],
        "--pool": calls[-1]["pools"] == ["max"]
        and "--pool is deprecated here, give --pooling" in old.err,
        "--max-length": made["max_length"] == 8,
        "--batch-size": made["batch_size"] == 4,
        "--bootstrap": made["samples"] == 20,
        "--seed": made["seed"] == 3,
        "--sentence1-column": made["columns"]["sentence1"] == "a",
        "--sentence2-column": made["columns"]["sentence2"] == "b",
        "--score-column": made["columns"]["score"] == "s",
        "--gguf-file": made["gguf_file"] == "g.gguf",
        "--device": made["device"] == "cpu",
        "--quiet": calls[2]["show_progress"] is False and calls[1]["show_progress"] is True
        and "bootstrap" in loud.err and quiet.err == "",
        "--json": report["bootstrap_samples"] == 20,
    }
    _assert_all_checked("eval-embeddings", checks)


def _fake_report():
    outcome = types.SimpleNamespace(failed=0, ran=0, reused=0, wall_time_s=0.0, jobs=1,
                                    threads=1, busy=0, unfinished=0, total=0, records=[])
    return types.SimpleNamespace(warnings=[], outcome=outcome, rows=[], files={},
                                 to_json=lambda: {"fake": True})


def test_every_compare_option_reaches_the_spec(tmp_path, monkeypatch, capsys):
    import poolkit.experiments as experiments

    calls = []

    def record(spec, **kwargs):
        calls.append((spec, kwargs))
        return _fake_report()

    monkeypatch.setattr(experiments, "compare", record)
    data = tmp_path / "reviews.csv"
    data.write_text("review,stars\n")
    printed = _go(capsys, [
        "compare", "--task", f"csv:{data}", "--pools", "max,avg", "--seeds", "2",
        "--sweep", "num_filters=2,4", "--epochs", "3", "--jobs", "2", "--threads", "1",
        "--throughput-threads", "2", "--out", str(tmp_path / "c"), "--data", str(data),
        "--text-column", "review", "--label-column", "stars", "--tokenizer", "char",
        "--train-size", "10", "--dev-size", "5", "--test-size", "6", "--batch-size", "4",
        "--lr", "0.1", "--shard", "1/2", "--encoding", "latin-1", "--skip-bad-lines",
        "--quiet", "--json"])
    spec, kwargs = calls[0]
    options = spec.task.options
    _go(capsys, ["compare", "--task", "digits", "--pools", "max", "--out", str(tmp_path / "d")])
    loud = calls[1][1]
    checks = {
        "--task": spec.task.name == f"csv:{data}",
        "--pools": spec.pools == ["max", "avg"],
        "--seeds": spec.seeds == [0, 1],
        "--sweep": [axis.name for axis in spec.sweep] == ["num_filters"],
        "--epochs": spec.train["epochs"] == 3,
        "--jobs": kwargs["jobs"] == 2,
        "--threads": kwargs["threads"] == 1,
        "--throughput-threads": spec.train["throughput_threads"] == 2,
        "--out": spec.out_dir == tmp_path / "c",
        "--data": options["path"] == str(data),
        "--text-column": options["text_column"] == "review",
        "--label-column": options["label_column"] == "stars",
        "--tokenizer": options["tokenizer"] == "char",
        "--train-size": options["train_size"] == 10,
        "--dev-size": options["dev_size"] == 5,
        "--test-size": options["test_size"] == 6,
        "--batch-size": spec.train["batch_size"] == 4,
        "--lr": spec.train["lr"] == 0.1,
        "--shard": kwargs["shard"] == (1, 2),
        "--encoding": options["encoding"] == "latin-1",
        "--skip-bad-lines": options["skip_bad_lines"] is True,
        "--quiet": kwargs["progress"] is False and loud["progress"] is True,
        "--json": json.loads(printed.out) == {"fake": True},
    }
    _assert_all_checked("compare", checks)


def test_every_demo_option_reaches_run_demo(tmp_path, monkeypatch, capsys):
    import poolkit.experiments.demo as demo

    calls = []

    def record(out, **kwargs):
        calls.append({"out": out, **kwargs})
        return types.SimpleNamespace(reports=[], to_json=lambda: {"fake": True})

    monkeypatch.setattr(demo, "run_demo", record)
    printed = _go(capsys, ["demo", "--out", str(tmp_path / "d"), "--quick", "--jobs", "2",
                           "--quiet", "--json"])
    made = calls[0]
    checks = {
        "--out": made["out"] == tmp_path / "d",
        "--quick": made["quick"] is True,
        "--jobs": made["jobs"] == 2,
        "--quiet": made["progress"] is False and printed.err == "",
        "--json": json.loads(printed.out) == {"fake": True},
    }
    _assert_all_checked("demo", checks)
