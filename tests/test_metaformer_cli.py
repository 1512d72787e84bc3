"""``poolkit train metaformer`` and ``poolkit compare --task digits-metaformer``: the token mixer
by name (``--pool``/``--pools``), checkpoints that eval and predict, refused mixers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poolkit.cli import run

TINY = ["--seeds", "1", "--epochs", "1", "--jobs", "1", "--threads", "1", "--json"]


def _json(capsys, argv) -> dict:
    code = run(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_train_metaformer_with_a_zoo_mixer_eval_and_predict(tmp_path, capsys):
    out = tmp_path / "run"
    result = _json(capsys, [
        "train", "metaformer", "--dataset", "digits", "--limit", "200", "--test-fraction", "0.2",
        "--epochs", "1", "--pool", "lp_abs", "--pool-arg", "norm_type=3",
        "--model-arg", "dims=8,16", "--model-arg", "depths=1,1", "--out", str(out), "--quiet",
        "--json",
    ])
    assert result["model"] == "metaformer" and result["pool"] == "lp_abs"
    assert result["num_test"] == 40 and result["test"]["num_examples"] == 40
    config = json.loads((out / "poolkit_config.json").read_text())
    assert config["model_type"] == "metaformer"
    assert config["model_config"]["mixer"] == "lp_abs"
    assert config["model_config"]["mixer_kwargs"] == {"norm_type": 3}
    assert config["model_config"]["dims"] == [8, 16] and config["model_config"]["depths"] == [1, 1]
    heldout = _json(capsys, ["eval", str(out), "--split", "heldout", "--json"])
    assert heldout["accuracy"] == pytest.approx(result["test"]["accuracy"])
    from poolkit.data import load_digits

    np.save(tmp_path / "zero.npy", load_digits().images[0, 0])
    rows = _json(capsys, ["predict", str(out), str(tmp_path / "zero.npy"), "--json"])
    assert rows["predictions"][0]["label"] in [str(k) for k in range(10)]


def test_train_metaformer_defaults_to_poolformers_pool(tmp_path, capsys):
    result = _json(capsys, [
        "train", "metaformer", "--dataset", "digits", "--limit", "100", "--epochs", "1",
        "--model-arg", "dims=4", "--model-arg", "depths=1", "--out", str(tmp_path / "run"),
        "--quiet", "--json",
    ])
    assert result["pool"] == "pool"
    config = json.loads((tmp_path / "run" / "poolkit_config.json").read_text())
    model_config = config["model_config"]
    assert model_config["mixer"] == "pool" and model_config["mixer_kwargs"] == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pool", "catavgmax"], "cannot be a stride-1 same-size token mixer because it "
         "concatenates avg and max"),
        (["--pool", "nope"], "valid mixers: ['pool', 'attention', 'identity', 'avg'"),
        (["--pool", "attention", "--pool-arg", "p=2"], "apply to zoo families only"),
        (["--global-pool", "max"], "--global-pool does not apply to model 'metaformer'"),
    ],
)
def test_train_metaformer_bad_usage(argv, message, capsys):
    assert run(["train", "metaformer", "--dataset", "digits", "--quiet", *argv]) == 2
    assert message in capsys.readouterr().err


def test_compare_mixers_on_digits(tmp_path, capsys):
    out = tmp_path / "cmp"
    payload = _json(capsys, [
        "compare", "--task", "digits-metaformer", "--pools", "pool,attention,identity",
        "--train-size", "200", "--test-size", "100", "--out", str(out), *TINY,
    ])
    rows = {row["pool"]: row for row in payload["summary"]}
    assert set(rows) == {"pool", "attention", "identity"}
    # the twin differs only in its mixers: qkv and proj in each of 2 + 2 blocks (16, 32 wide)
    extra = 2 * (4 * 16 * 16 + 4 * 16) + 2 * (4 * 32 * 32 + 4 * 32)
    assert rows["attention"]["params"] - rows["pool"]["params"] == extra
    assert rows["identity"]["params"] == rows["pool"]["params"]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["model_pools"]["mixer"] for r in records} == {"pool", "attention", "identity"}
    assert all(r["throughput_samples_s"] > 0 and r["n_test"] == 100 for r in records)


def test_compare_refuses_a_family_that_cannot_mix(tmp_path, capsys):
    argv = ["compare", "--task", "digits-metaformer", "--pools", "pool,kmax",
            "--out", str(tmp_path / "x"), *TINY]
    assert run(argv) == 2
    error = capsys.readouterr().err
    assert "pool 'kmax' cannot be a stride-1 same-size token mixer" in error
    assert not (tmp_path / "x").exists()
