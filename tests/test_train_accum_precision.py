"""Gradient accumulation, mixed precision and checkpoint retention in the trainer."""

from __future__ import annotations

import pytest
import torch

from poolkit.data import TextEncoder
from poolkit.data.dataset import TextCollator, TextDataset
from poolkit.models import TextCNN, TextCNNConfig
from poolkit.train import TrainConfig, Trainer, set_seed

TEXTS = ["good fun film", "bad dull film", "great acting", "awful plot", "fine movie here",
         "boring and bad", "a joy", "a mess of a film"] * 6
LABELS = [1, 0, 1, 0, 1, 0, 1, 0] * 6


def _fit(out_dir=None, *, epochs=3, batch_size=8, dropout=0.0, callbacks=(), resume=False,
         **options):
    encoder = TextEncoder.fit(TEXTS)
    train = TextDataset.from_texts(TEXTS[:40], LABELS[:40], encoder)
    dev = TextDataset.from_texts(TEXTS[40:], LABELS[40:], encoder)
    set_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=8, num_filters=4,
                                  dropout=dropout))
    config = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adamw", lr=0.05,
                         schedule="cosine", seed=3, progress=False, group_by_length=False,
                         out_dir=None if out_dir is None else str(out_dir), resume=resume,
                         **options)
    trainer = Trainer(model, config, train, dev, TextCollator(min_length=5),
                      metadata={"label_names": ["neg", "pos"]}, callbacks=callbacks)
    return model, trainer.fit()


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_accumulating_two_batches_equals_one_batch_twice_as_large():
    """4 batches of 5 summed per step = batches of 20: the same examples, the same mean
    gradient, the same schedule (steps count optimizer steps). Only the summation order of
    floats differs."""
    big_model, big = _fit(batch_size=20, restore_best=False)
    small_model, small = _fit(batch_size=5, grad_accum=4, restore_best=False)
    assert [r["steps"] for r in small.history] == [r["steps"] for r in big.history] == [2, 4, 6]
    for name, weight in _weights(big_model).items():
        torch.testing.assert_close(_weights(small_model)[name], weight, rtol=1e-5, atol=1e-6,
                                   msg=name)
    for a, b in zip(small.history, big.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)


def test_a_group_left_over_at_the_end_of_an_epoch_still_steps():
    """40 examples in batches of 8: 5 batches, grad_accum 2 -> steps of 16, 16 and 8."""
    _, result = _fit(epochs=2, batch_size=8, grad_accum=2)
    assert [r["steps"] for r in result.history] == [3, 6]


class Interrupted(Exception):
    pass


def test_resume_with_accumulation_and_bf16_is_bit_identical(tmp_path):
    options = {"grad_accum": 2, "precision": "bf16", "dropout": 0.3, "epochs": 4}
    model_a, result_a = _fit(tmp_path / "a", **options)

    def stop(trainer, record):
        if record["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        _fit(tmp_path / "b", callbacks=[stop], **options)
    model_b, result_b = _fit(tmp_path / "b", resume=True, **options)
    assert result_b.resumed_from == 2
    for (name, a), b in zip(_weights(model_a).items(), _weights(model_b).values(), strict=True):
        assert torch.equal(a, b), name
    assert [r["train_loss"] for r in result_a.history] == \
        [r["train_loss"] for r in result_b.history]


def test_bf16_matches_fp32_within_tolerance():
    """Autocast to bfloat16 (8 bits of mantissa): the same run ends within 0.05 of the fp32
    training loss after 3 epochs and at the same dev accuracy or within one example of it."""
    _, fp32 = _fit(restore_best=False)
    _, bf16 = _fit(restore_best=False, precision="bf16")
    assert bf16.history[-1]["train_loss"] == pytest.approx(fp32.history[-1]["train_loss"],
                                                          abs=0.05)
    assert abs(bf16.history[-1]["dev"]["accuracy"] - fp32.history[-1]["dev"]["accuracy"]) \
        <= 1 / 8 + 1e-9
    assert bf16.history[-1]["train_loss"] != fp32.history[-1]["train_loss"]  # it did autocast


def test_fp16_trains_with_a_scaler_and_resumes(tmp_path):
    options = {"precision": "fp16", "epochs": 3}
    model_a, result_a = _fit(tmp_path / "a", **options)

    def stop(trainer, record):
        if record["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        _fit(tmp_path / "b", callbacks=[stop], **options)
    model_b, _ = _fit(tmp_path / "b", resume=True, **options)
    assert result_a.history[-1]["train_loss"] < result_a.history[0]["train_loss"]
    for (name, a), b in zip(_weights(model_a).items(), _weights(model_b).values(), strict=True):
        assert torch.equal(a, b), name


def test_save_total_limit_keeps_the_last_checkpoints(tmp_path):
    _fit(tmp_path, epochs=4, save_total_limit=3)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch-0002", "epoch-0003", "epoch-0004"]


def test_without_resume_state_only_the_best_model_is_written(tmp_path):
    _fit(tmp_path, epochs=2, resume_state=False)
    assert not (tmp_path / "checkpoints").exists()
    assert {p.name for p in tmp_path.iterdir()} >= {"model.safetensors", "poolkit_config.json",
                                                   "log.jsonl", "result.json"}


@pytest.mark.parametrize("options,message", [
    ({"grad_accum": 0}, "grad_accum (0) must be a positive integer"),
    ({"save_total_limit": 0}, "save_total_limit (0) must be a positive integer"),
    ({"precision": "fp8"}, "precision ('fp8') must be one of ['fp32', 'bf16', 'fp16']"),
    ({"resume": True, "out_dir": "x", "resume_state": False}, "resume=True needs resume_state"),
])
def test_config_errors(options, message):
    with pytest.raises(ValueError) as error:
        TrainConfig(**options)
    assert message in str(error.value)
