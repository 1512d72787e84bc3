"""The training guard: a NaN/inf loss stops the run (exit 1 from the CLI) naming the epoch and
step, ``skip_nonfinite`` skips a counted number of such batches, and a model with a non-finite
dev loss or weights is never saved as the best."""

from __future__ import annotations

import math

import pytest
import torch

from poolkit.cli import run
from poolkit.data import TextEncoder
from poolkit.data.dataset import TextCollator, TextDataset
from poolkit.models import TextCNN, TextCNNConfig
from poolkit.train import TrainConfig, Trainer, set_seed
from poolkit.train.trainer import NonFiniteLossError

TEXTS = ["good fun film", "bad dull film", "great acting", "awful plot"] * 6  # 24: 4 batches of 6
LABELS = [1, 0, 1, 0] * 6


def _trainer(out_dir, *, nan_at=(), nan_in_eval=(), epochs=2, skip=0, optimizer="adamw"):
    """A tiny TextCNN whose logits are NaN on the training calls ``nan_at`` (1-based, counted
    over the run) and on the evaluation calls ``nan_in_eval``."""
    encoder = TextEncoder.fit(TEXTS)
    data = TextDataset.from_texts(TEXTS, LABELS, encoder)
    set_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=8, num_filters=4))
    calls = {"train": 0, "eval": 0}

    def poison(module, inputs, output):
        mode = "train" if module.training else "eval"
        calls[mode] += 1
        if calls[mode] in (nan_at if mode == "train" else nan_in_eval):
            return output * float("nan")
        return output

    model.register_forward_hook(poison)
    config = TrainConfig(epochs=epochs, batch_size=6, optimizer=optimizer, seed=1,
                         out_dir=str(out_dir), progress=False, skip_nonfinite=skip)
    return Trainer(model, config, data, data, TextCollator(min_length=5),
                   metadata={"label_names": ["neg", "pos"]})


def test_a_nan_loss_stops_the_run_naming_epoch_and_step(tmp_path):
    trainer = _trainer(tmp_path, nan_at=(3,))
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, step 3 \(batch 3 of 4"):
        trainer.fit()
    assert not (tmp_path / "model.safetensors").exists()  # nothing saved, no best model


def test_skip_nonfinite_skips_and_counts_then_stops(tmp_path):
    # NaN at step 3 (epoch 1) and step 8 (epoch 2, its last batch)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 8 .* after 1 skipped"):
        _trainer(tmp_path / "one", nan_at=(3, 8), skip=1).fit()
    trainer = _trainer(tmp_path / "two", nan_at=(3, 8), skip=2)
    result = trainer.fit()
    assert [r["skipped_nonfinite"] for r in result.history] == [1, 1]
    assert trainer.nonfinite_skipped == 2
    # a skipped batch is no update: AdamW took 8 - 2 steps
    steps = {int(s["step"]) for s in trainer.optimizer.state.values()}
    assert steps == {6}
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "two" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in saved.values())


def test_a_nan_dev_loss_is_never_the_best_model(tmp_path):
    # evaluation calls: epoch 1's dev pass is call 1, epoch 2's is call 2 (24 examples, 1 batch)
    trainer = _trainer(tmp_path, nan_in_eval=(2,))
    result = trainer.fit()
    assert math.isnan(result.history[1]["dev"]["loss"]) and result.history[1]["best"] is False
    assert result.best_epoch == 1


def test_non_finite_weights_stop_the_run(tmp_path):
    trainer = _trainer(tmp_path, epochs=1)
    with torch.no_grad():  # <unk> (id 1) never occurs in the data: the loss stays finite
        trainer.model.embedding.weight[1] = float("inf")
    with pytest.raises(NonFiniteLossError, match=r"weights are no longer finite after epoch 1 "
                       r"\(embedding.weight holds NaN or inf\)"):
        trainer.fit()
    assert not (tmp_path / "model.safetensors").exists()


def test_cli_exits_1_on_a_diverging_run(tmp_path, capsys):
    out = tmp_path / "run"
    code = run(["train", "convnet", "--dataset", "digits", "--limit", "200", "--epochs", "2",
                "--channels", "4", "--optimizer", "sgd", "--lr", "1e30", "--out", str(out),
                "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "poolkit: error: the training loss is nan at epoch 1, step 2" in err
    errors = [line for line in err.strip().splitlines() if line.startswith("poolkit: error")]
    assert len(errors) == 1 and not (out / "model.safetensors").exists()
    assert TrainConfig(skip_nonfinite=3).skip_nonfinite == 3
    with pytest.raises(ValueError, match=r"skip_nonfinite \(-1\) must be an integer >= 0"):
        TrainConfig(skip_nonfinite=-1)


DDP_SCRIPT = """
import json, os, sys
from poolkit.data import TextEncoder
from poolkit.data.dataset import TextCollator, TextDataset
from poolkit.models import TextCNN, TextCNNConfig
from poolkit.train import TrainConfig, Trainer, set_seed

texts = ["good fun film", "bad dull film", "great acting", "awful plot"] * 8
encoder = TextEncoder.fit(texts)
data = TextDataset.from_texts(texts, [1, 0, 1, 0] * 8, encoder)
set_seed(0)
model = TextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=8, num_filters=4))
calls = [0]

def poison(module, inputs, output):  # only process 1, its 2nd training batch
    if module.training and os.environ["RANK"] == "1":
        calls[0] += 1
        if calls[0] == 2:
            return output * float("nan")
    return output

model.register_forward_hook(poison)
config = TrainConfig(epochs=2, batch_size=4, seed=1, progress=False,
                     skip_nonfinite=int(sys.argv[2]), out_dir=sys.argv[1])
trainer = Trainer(model, config, data, None, TextCollator(min_length=5))
result = trainer.fit()
with open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.json"), "w") as handle:
    json.dump([r["skipped_nonfinite"] for r in result.history], handle)
"""


@pytest.mark.parametrize("skip", [0, 1])
def test_torchrun_processes_skip_or_stop_together(tmp_path, skip):
    """A NaN in one process only: every process skips that batch (DDP needs all of them in
    each backward pass), or every process stops; none waits for the others forever."""
    import os
    import subprocess
    import sys

    script = tmp_path / "nan_run.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(out), str(skip)], env=env, capture_output=True, text=True, timeout=240)
    if skip:
        assert done.returncode == 0, done.stderr[-3000:]
        import json

        assert [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)] == [[1, 0]] * 2
    else:
        assert done.returncode != 0
        assert "the training loss is not finite in another process at epoch 1, step 2" in \
            done.stderr and "the training loss is nan at epoch 1, step 2" in done.stderr
