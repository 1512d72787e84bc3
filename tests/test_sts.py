"""STS evaluation on cached token states: caching, pooling, cosines, training a learned pooling,
and the ``stsb`` machinery of compare on a synthetic pair task (no pretrained model)."""

from __future__ import annotations

import csv
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

from poolkit.data.pairs import SentencePairs  # noqa: E402
from poolkit.experiments import CompareSpec, Task, TaskData, compare  # noqa: E402
from poolkit.experiments.sts import (  # noqa: E402
    TokenStates,
    build_sts_pool,
    encode_token_states,
    evaluate_sts,
    fit_sts_pool,
    pair_cosines,
    pool_rows,
    train_pool,
)
from poolkit.nn.sequence import SequencePool  # noqa: E402

HIDDEN = 8


def _states(count: int = 12, seed: int = 0) -> tuple[list[str], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    sentences = [f"sentence {i}" for i in range(count)]
    lengths = torch.randint(1, 7, (count,), generator=generator).tolist()
    return sentences, [torch.randn(n, HIDDEN, generator=generator) for n in lengths]


class _FakeEmbedder:
    """What encode_token_states needs of an Embedder; counts encoder passes."""

    source, max_length = "fake-model", 16

    def __init__(self):
        self.calls = 0

    def token_states(self, sentences, show_progress=True):
        self.calls += 1
        table = dict(zip(*_states(), strict=True))
        return [table[s] for s in sentences]


def test_token_states_batch_save_load(tmp_path):
    sentences, tensors = _states()
    states = TokenStates.from_list(sentences, tensors)
    hidden, mask = states.batch([3, 0])
    assert hidden.dtype == torch.float32 and mask.dtype == torch.bool
    for b, row in enumerate([3, 0]):
        n = len(tensors[row])
        assert mask[b].sum() == n and not hidden[b, n:].any()
        torch.testing.assert_close(hidden[b, :n], tensors[row].half().float())
    states.save(tmp_path / "s.safetensors", {"model": "x"})
    loaded = TokenStates.load(tmp_path / "s.safetensors")
    assert loaded.sentences == sentences and torch.equal(loaded.flat, states.flat)
    assert torch.equal(loaded.offsets, states.offsets)
    with pytest.raises(KeyError, match="'nope' has no token states"):
        states.rows(["nope"])


def test_encode_token_states_caches_by_content(tmp_path):
    embedder = _FakeEmbedder()
    sentences = _states()[0]
    first = encode_token_states(embedder, sentences + sentences[:2], tmp_path)  # deduplicated
    again = encode_token_states(embedder, sentences, tmp_path)
    assert embedder.calls == 1 and first.sentences == again.sentences == sentences
    assert torch.equal(first.flat, again.flat)
    encode_token_states(embedder, sentences[:5], tmp_path)  # other sentences: another file
    assert embedder.calls == 2 and len(list(tmp_path.glob("token-states-*.safetensors"))) == 2
    with pytest.raises(ValueError, match="line breaks"):
        encode_token_states(embedder, ["two\nlines"])


@pytest.mark.parametrize("mode", ["mean", "cls+max", "last"])
def test_pool_rows_and_cosines_match_a_naive_loop(mode):
    sentences, tensors = _states()
    states = TokenStates.from_list(sentences, tensors)
    pool = SequencePool(mode, HIDDEN)
    rows = [5, 2, 9, 2]
    got = pool_rows(pool, states, rows, batch_size=3)
    expected = torch.stack([pool(tensors[r].half().float()[None], None)[0] for r in rows])
    torch.testing.assert_close(got, expected)
    pairs = SentencePairs(sentences[:6], sentences[6:], [0.0, 1, 2, 3, 4, 5])
    cosines = pair_cosines(pool, states, pairs)
    for i in range(6):
        a, b = (pool(tensors[j].half().float()[None], None)[0] for j in (i, i + 6))
        assert cosines[i] == pytest.approx(float(torch.cosine_similarity(a, b, dim=0)), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# A synthetic pair task: the gold similarity is the cosine of the *last* token's features 0..3
# (the last token is marked by its feature 7), so mean pooling is poor and a learned pooling can
# do better.


def _synthetic_split(count: int, seed: int, prefix: str):
    generator = torch.Generator().manual_seed(seed)
    sentences, tensors = [], []
    for i in range(2 * count):
        states = torch.randn(int(torch.randint(2, 6, (1,), generator=generator)), HIDDEN,
                             generator=generator)
        states[:, -1] = 0.0
        states[-1, -1] = 4.0  # the last token is marked, so attention can find it
        sentences.append(f"{prefix} {i}")
        tensors.append(states)
    scores = []
    for i in range(count):
        a, b = tensors[2 * i][-1, :4], tensors[2 * i + 1][-1, :4]
        scores.append(round(float(2.5 + 2.5 * torch.cosine_similarity(a, b, dim=0)), 3))
    pairs = SentencePairs(sentences[0::2], sentences[1::2], scores)
    return pairs, sentences, tensors


def synthetic_sts_task(sizes=(120, 40, 60)) -> TaskData:
    parts, sentences, tensors = [], [], []
    for size, seed, prefix in zip(sizes, (1, 2, 3), ("train", "dev", "test"), strict=True):
        pairs, names, states = _synthetic_split(size, seed, prefix)
        parts.append(pairs)
        sentences += names
        tensors += states
    states = TokenStates.from_list(sentences, tensors)
    return TaskData(*parts, collate_fn=None, num_classes=0,
                    info={"states": states, "hidden_size": HIDDEN})


def test_train_pool_learns_keeps_the_best_epoch_and_is_seeded():
    data = synthetic_sts_task()
    mean = pair_cosines(SequencePool("mean", HIDDEN), data.info["states"], data.dev)
    mean_dev = stats.spearmanr(mean, data.dev.scores).statistic
    runs = []
    for _ in range(2):
        torch.manual_seed(0)  # the initial weights (compare seeds before building the model)
        pool = build_sts_pool("attention", data, attention={"num_heads": 2})
        fitted = fit_sts_pool(pool, data, {"epochs": 6, "lr": 1e-2, "batch_size": 16}, seed=3)
        cosines = pair_cosines(pool, data.info["states"], data.dev)
        dev = stats.spearmanr(cosines, data.dev.scores).statistic
        assert dev == pytest.approx(fitted.best_dev_score)  # the best epoch is restored
        runs.append(cosines)
    assert 1 <= fitted.best_epoch <= fitted.epochs <= 6
    assert fitted.best_dev_score > mean_dev + 0.1
    np.testing.assert_array_equal(runs[0], runs[1])  # same seed, same result


def test_fixed_modes_do_not_train_and_bad_settings_are_named():
    data = synthetic_sts_task()
    fitted = fit_sts_pool(build_sts_pool("mean+max", data), data, {}, seed=0)
    assert fitted.epochs == 0 and fitted.train_time_s == 0.0
    with pytest.raises(ValueError, match=r"\['momentum'\] are not understood.*allowed"):
        train_pool(SequencePool("attention", HIDDEN), data.info["states"], data.train, data.dev,
                   {"momentum": 0.9}, 0)


def test_evaluate_sts_record():
    data = synthetic_sts_task()
    record = evaluate_sts(build_sts_pool("last", data), data)
    cosines = pair_cosines(SequencePool("last", HIDDEN), data.info["states"], data.test)
    assert record["spearman"] == pytest.approx(
        stats.spearmanr(cosines, data.test.scores).statistic
    )
    extra = record["extra"]
    assert extra["spearman_ci_low"] < record["spearman"] < extra["spearman_ci_high"]
    assert extra["vs_mean_ci_low"] > 0 and extra["vs_mean_p"] < 0.05  # last beats mean here
    assert record["n_test"] == 60 and record["reference_pool"] == "mean"
    same = evaluate_sts(build_sts_pool("mean", data), data)["extra"]
    assert (same["vs_mean"], same["vs_mean_ci_low"], same["vs_mean_p"]) == (0, 0, 1)


def test_a_pair_task_through_compare(tmp_path):
    from poolkit.experiments import sts

    task = Task(
        "synthetic-sts", "pairs", synthetic_sts_task, sts.build_sts_pool,
        train={"epochs": 2, "lr": 1e-2}, fit=sts.fit_sts_pool, metric="spearman",
        metric_label="Spearman x100", evaluate=sts.evaluate_sts, preload=True,
        model={"attention": {"num_heads": 2}},
    )
    assert task.perturbation is None and task.levels == ()
    spec = CompareSpec(task, ["mean", "last", "attention"], [0, 1], out_dir=tmp_path)
    report = compare(spec, jobs=1, threads=1, progress=False)
    rows = {row["pool"]: row for row in report.rows}
    assert report.rows[0]["verdict"] == "best" and rows["mean"]["spearman_std"] == 0
    assert rows["last"]["vs_mean_above"] == 2 and rows["last"]["vs_mean_below"] == 0
    markdown = (tmp_path / "summary.md").read_text()
    assert "Spearman x100" in markdown and "95% CI" in markdown and "accuracy %" not in markdown
    assert "| Δ vs `mean` (95% CI) | vs `mean` (paired bootstrap) |" in markdown
    assert "| `mean` | " in markdown and "reference" in markdown
    assert "better (2/2 seeds)" in markdown
    with open(tmp_path / "summary.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[5:7] == ["spearman_mean", "spearman_std"] and "accuracy_mean" not in header
    assert "macro_f1_mean" not in header and "vs_mean_above" in header
    assert (tmp_path / "spearman.png").stat().st_size > 0
    record = report.outcome.records[0]
    assert {"spearman", "pearson", "best_dev_spearman", "extra", "n_train"} <= set(record)
    # Finished runs are reused, as for every task.
    again = compare(spec, jobs=1, threads=1, progress=False)
    assert again.outcome.reused == 6 and again.outcome.ran == 0


def test_a_metric_other_than_accuracy_needs_an_evaluate():
    with pytest.raises(ValueError, match=r"metric \('spearman'\) needs an evaluate"):
        Task("t", "pairs", synthetic_sts_task, build_sts_pool, metric="spearman")
    with pytest.raises(ValueError, match="kind"):
        Task("t", "audio", synthetic_sts_task, build_sts_pool)


def test_the_builtin_stsb_task_is_registered():
    from poolkit.experiments import get_task

    task = get_task("stsb")
    assert (task.kind, task.metric, task.preload) == ("pairs", "spearman", True)
    assert {"mean", "cls", "max", "attention", "latent_attention"} <= set(task.default_pools)
    assert "cache_dir" in task.options
    assert isinstance(task.fit, functools.partial)
