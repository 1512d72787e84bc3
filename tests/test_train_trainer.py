"""The trainer end to end: it learns on real data, resumes exactly after a kill, stops early,
writes its files atomically."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from poolkit.data import TextEncoder, load_dataset, stratified_subset
from poolkit.data.dataset import TextCollator, TextDataset
from poolkit.data.splits import stratified_split
from poolkit.models import TextCNN, TextCNNConfig
from poolkit.train import TrainConfig, Trainer, set_seed
from poolkit.train.recipes import fit_and_evaluate
from poolkit.train.trainer import RunFolderError


def test_textcnn_learns_mr_subset(shared_data):
    """1,200 real MR sentences (900 to train): held-out accuracy clearly above chance (0.5).
    Seeds 0-3 of this setting reach 0.62-0.67; 0.6 is 3.5 standard errors above chance."""
    data = load_dataset("mr", shared_data / "mr").train
    data = data.subset(stratified_subset(data.labels, 1200, seed=0))
    train_idx, dev_idx = stratified_split(data.labels, 0.25, seed=0)
    outcome = fit_and_evaluate(
        "textcnn", data.subset(train_idx), data.subset(dev_idx), None,
        train_config=TrainConfig(epochs=5, batch_size=32, lr=1e-2, progress=False,
                                 group_by_length=True),
        model_options={"embed_dim": 32, "num_filters": 16},
    )
    history = outcome.result.history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert outcome.dev["accuracy"] >= 0.6, history  # 300 held out: chance is 0.50 +- 0.029


def test_convnet_learns_digits():
    """Real 8x8 digits: 10 classes, held-out accuracy far above chance (0.1)."""
    data = load_dataset("digits").train
    train_idx, test_idx = stratified_split(data.labels, 0.2, seed=0)
    outcome = fit_and_evaluate(
        "convnet", data.subset(train_idx), None, data.subset(test_idx),
        train_config=TrainConfig(epochs=3, batch_size=32, lr=3e-3, progress=False),
        model_options={"channels": (8, 16), "pool": "max", "global_pool": "avg"},
    )
    assert outcome.test["accuracy"] >= 0.8
    assert len(outcome.test["confusion_matrix"]) == 10


# --------------------------------------------------------------------------------------------
# Resume


def _tiny_text_task():
    texts = ["good fun film", "bad dull film", "great acting", "awful plot", "fine movie here",
             "boring and bad", "a joy", "a mess of a film"] * 6
    labels = [1, 0, 1, 0, 1, 0, 1, 0] * 6
    encoder = TextEncoder.fit(texts)
    train = TextDataset.from_texts(texts[:40], labels[:40], encoder)
    dev = TextDataset.from_texts(texts[40:], labels[40:], encoder)
    return encoder, train, dev


def _run(out_dir, *, resume=False, callbacks=(), epochs=5, patience=None):
    encoder, train, dev = _tiny_text_task()
    set_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=8, num_filters=4))
    config = TrainConfig(epochs=epochs, batch_size=6, optimizer="adadelta", schedule="cosine",
                         warmup=0.1, seed=3, out_dir=str(out_dir), resume=resume,
                         progress=False, group_by_length=True, patience=patience)
    trainer = Trainer(model, config, train, dev, TextCollator(min_length=5),
                      metadata={"label_names": ["neg", "pos"]}, callbacks=callbacks)
    return model, trainer.fit()


def _same_run(model_a, result_a, out_a: Path, model_b, result_b, out_b: Path):
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert result_a.history == [{**r, "time_s": a["time_s"]}
                                for r, a in zip(result_b.history, result_a.history, strict=True)]
    assert result_a.best_epoch == result_b.best_epoch
    assert result_a.best_metrics == result_b.best_metrics
    assert (out_a / "model.safetensors").read_bytes() == (out_b / "model.safetensors").read_bytes()


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same run, never interrupted."""
    out = tmp_path_factory.mktemp("uninterrupted")
    model, result = _run(out)
    return model, result, out


def test_resume_after_exception_gives_the_same_result(tmp_path, uninterrupted):
    model_a, result_a, out_a = uninterrupted

    def stop_after_two(trainer, record):
        if record["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        _run(tmp_path / "b", callbacks=[stop_after_two])
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["epoch-0002"]
    # a half-written checkpoint folder from a crash mid-save is ignored
    (tmp_path / "b" / "checkpoints" / ".epoch-0003.tmp999").mkdir()
    model_b, result_b = _run(tmp_path / "b", resume=True)
    assert result_b.resumed_from == 2 and result_b.epochs_run == 5
    _same_run(model_a, result_a, out_a, model_b, result_b, tmp_path / "b")
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if r["event"] == "epoch"] == [1, 2, 3, 4, 5]
    assert log[-1]["event"] == "end"


def test_resume_after_sigkill_of_a_subprocess(tmp_path, uninterrupted):
    """A process killed with SIGKILL after epoch 3 (no cleanup at all) resumes in another."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_train_trainer import _run

        def die(trainer, record):
            if record["epoch"] == 3:
                os.kill(os.getpid(), signal.SIGKILL)

        _run({str(tmp_path / "b")!r}, callbacks=[die])
    """))
    # same thread count as this process: float sums must be reduced in the same order
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    model_b, result_b = _run(tmp_path / "b", resume=True)
    assert result_b.resumed_from == 3
    model_a, result_a, out_a = uninterrupted
    _same_run(model_a, result_a, out_a, model_b, result_b, tmp_path / "b")


def test_resume_refuses_changed_settings(tmp_path):
    _run(tmp_path, epochs=1)
    encoder, train, dev = _tiny_text_task()
    model = TextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=8, num_filters=4))
    config = TrainConfig(epochs=2, batch_size=7, optimizer="adadelta", seed=3,
                         out_dir=str(tmp_path), resume=True, progress=False)
    with pytest.raises(RunFolderError, match=r"batch_size 6 -> 7; .*schedule 'cosine' -> "
                       r"'constant'; warmup 0.1 -> 0.0.*group_by_length True -> False"):
        Trainer(model, config, train, dev, TextCollator(min_length=5)).fit()


# --------------------------------------------------------------------------------------------
# Early stopping, evaluation, files


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    model, result = _run(tmp_path, epochs=12, patience=2)
    scores = [r["dev"]["accuracy"] for r in result.history]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    assert result.best_epoch == best + 1
    assert result.stopped_early == (result.epochs_run < 12)
    if result.stopped_early:
        assert result.epochs_run == result.best_epoch + 2
    saved = json.loads((tmp_path / "poolkit_config.json").read_text())
    assert saved["train"]["best_epoch"] == result.best_epoch
    assert saved["label_names"] == ["neg", "pos"]


def test_evaluate_metrics_and_no_temporary_files(tmp_path):
    encoder, train, dev = _tiny_text_task()
    model, result = _run(tmp_path, epochs=2)
    trainer = Trainer(model, TrainConfig(progress=False), collate_fn=TextCollator(min_length=5))
    metrics = trainer.evaluate(dev)
    assert set(metrics) >= {"accuracy", "macro_f1", "confusion_matrix", "loss", "f1_per_class"}
    assert sum(map(sum, metrics["confusion_matrix"])) == len(dev)
    assert metrics["accuracy"] == pytest.approx(result.best_metrics["accuracy"])
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_train_config_errors():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        TrainConfig(resume=True)
    with pytest.raises(ValueError, match="monitor"):
        TrainConfig(monitor="f1")
    with pytest.raises(ValueError, match="empty"):
        Trainer(torch.nn.Linear(2, 2), TrainConfig(progress=False), [], None).fit()
