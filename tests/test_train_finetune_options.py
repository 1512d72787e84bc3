"""Fine-tuning options of the trainer: layer-wise learning-rate decay and a moving average of
the weights, checked against hand-computed groups and a naive per-step average."""

from __future__ import annotations

import pytest
import torch
from test_train_trainer import _same_run, _tiny_text_task

from poolkit.data.dataset import TextCollator
from poolkit.models import TextCNN, TextCNNConfig
from poolkit.train import TrainConfig, Trainer, set_seed
from poolkit.train.optim import WeightAverage, build_optimizer, layer_decay_groups


def test_layer_decay_groups_scales_and_errors():
    layers = [[torch.nn.Parameter(torch.zeros(2))] for _ in range(4)]
    groups = layer_decay_groups(layers, 0.8)
    assert [g["lr_scale"] for g in groups] == pytest.approx([0.8**3, 0.8**2, 0.8, 1.0])
    assert [g["params"] for g in groups] == layers
    assert [g["lr_scale"] for g in layer_decay_groups(layers, 1.0)] == [1.0] * 4
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=rf"layer_lr_decay \({bad}\) must be in \(0, 1\]"):
            layer_decay_groups(layers, bad)
    with pytest.raises(ValueError, match="two layers"):
        layer_decay_groups([layers[0], layers[0]], 0.5)


def test_build_optimizer_takes_groups_and_drops_frozen_parameters():
    trainable, frozen = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    frozen.requires_grad_(False)
    optimizer = build_optimizer([{"params": [frozen], "lr_scale": 0.5},
                                 {"params": [trainable, frozen], "lr_scale": 1.0}], "adamw", 1e-3)
    assert len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["params"] == [trainable]
    assert optimizer.param_groups[0]["lr_scale"] == 1.0


def _naive_average(trajectory: list[dict], decay: float) -> dict:
    """sum_s (1 - d) d^(t - s) theta_s / (1 - d^t), term by term."""
    t = len(trajectory)
    total = 1.0 - decay**t
    return {name: sum((1 - decay) * decay ** (t - s) * weights[name]
                      for s, weights in enumerate(trajectory, start=1)) / total
            for name in trajectory[0]}


def test_weight_average_matches_a_naive_average_and_swaps_back():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    model[1].requires_grad_(False)
    average = WeightAverage(model, 0.7)
    assert set(average.shadow) == {"0.weight", "0.bias"}  # frozen layers are not copied
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    with average.swapped():  # no update yet: the model keeps its weights
        assert torch.equal(model[0].weight, initial["0.weight"])
    trajectory = []
    for _ in range(5):
        with torch.no_grad():
            model[0].weight.add_(torch.randn(2, 3))
            model[0].bias.mul_(-2.0)
        average.update()
        trajectory.append({n: p.detach().clone() for n, p in model[0].named_parameters()})
    expected = _naive_average(trajectory, 0.7)
    live = {n: p.detach().clone() for n, p in model.named_parameters()}
    with average.swapped():
        torch.testing.assert_close(model[0].weight, expected["weight"])
        torch.testing.assert_close(model[0].bias, expected["bias"])
    for name, param in model.named_parameters():
        assert torch.equal(param, live[name]), name  # the training weights are back exactly
    restored = WeightAverage(model, 0.7)
    restored.load_state_dict(average.state_dict())
    restored.copy_to()
    torch.testing.assert_close(model[0].weight, expected["weight"])
    with pytest.raises(ValueError, match="ema"):
        WeightAverage(model, 1.0)
    with pytest.raises(ValueError, match="lacks"):
        restored.load_state_dict({"updates": 1, "shadow": {}})


class RecordingTextCNN(TextCNN):
    """A TextCNN that records its weights after every optimizer step (the trainer calls
    ``apply_constraints`` right after each step) and names its layers for lr decay."""

    def __init__(self, config):
        super().__init__(config)
        self.trajectory: list[dict] = []

    def apply_constraints(self) -> None:
        self.trajectory.append({n: p.detach().clone() for n, p in self.named_parameters()})

    def lr_layers(self):
        embedding = [self.embedding.weight]
        rest = [p for p in self.parameters() if p is not self.embedding.weight]
        return [embedding, rest]


def _fit(out_dir=None, *, ema=None, decay=1.0, epochs=3, dev=True, resume=False, callbacks=()):
    encoder, train, dev_data = _tiny_text_task()
    set_seed(0)
    model = RecordingTextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=8,
                                           num_filters=4))
    config = TrainConfig(epochs=epochs, batch_size=6, lr=1e-2, schedule="linear", warmup=0.1,
                         seed=3, progress=False, ema=ema, layer_lr_decay=decay,
                         restore_best=dev, out_dir=str(out_dir) if out_dir else None,
                         resume=resume)
    trainer = Trainer(model, config, train, dev_data if dev else None,
                      TextCollator(min_length=5), callbacks=callbacks)
    return model, trainer, trainer.fit()


def test_trainer_ema_is_the_naive_average_of_the_step_weights():
    model, _, result = _fit(ema=0.8, dev=False)
    assert len(model.trajectory) == result.history[-1]["steps"]
    expected = _naive_average(model.trajectory, 0.8)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param, expected[name], rtol=1e-5, atol=1e-6)
        assert not torch.equal(param, model.trajectory[-1][name])  # not the last step's weights


def test_trainer_ema_evaluates_the_average():
    seen = []

    def dev_of_both(trainer, record):
        live = trainer.evaluate(trainer.dev_data)["loss"]  # between epochs: training weights
        with trainer.average.swapped():
            averaged = trainer.evaluate(trainer.dev_data)["loss"]
        seen.append((record["dev"]["loss"], averaged, live))

    _fit(ema=0.5, callbacks=[dev_of_both])
    for recorded, averaged, live in seen:
        assert recorded == pytest.approx(averaged, rel=1e-6)
        assert recorded != pytest.approx(live, rel=1e-6)


def test_layer_lr_decay_sets_each_group_lr():
    lrs = []

    def record_lrs(trainer, record):
        lrs.append([g["lr"] for g in trainer.optimizer.param_groups])

    model, _, result = _fit(decay=0.25, callbacks=[record_lrs])
    for (bottom, top), record in zip(lrs, result.history, strict=True):
        assert top == pytest.approx(record["lr"])
        assert bottom == pytest.approx(0.25 * top)
    with pytest.raises(ValueError, match="layer_lr_decay=0.5 needs a model with lr_layers"):
        encoder, train, dev = _tiny_text_task()
        plain = TextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=8, num_filters=4))
        Trainer(plain, TrainConfig(epochs=1, batch_size=6, progress=False, layer_lr_decay=0.5),
                train, None, TextCollator(min_length=5)).fit()


def test_lr_layers_must_cover_every_trainable_parameter():
    class Partial(RecordingTextCNN):
        def lr_layers(self):
            return [[self.embedding.weight]]

    encoder, train, _ = _tiny_text_task()
    model = Partial(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=8, num_filters=4))
    with pytest.raises(ValueError, match="leaves out trainable parameters"):
        Trainer(model, TrainConfig(epochs=1, batch_size=6, progress=False, layer_lr_decay=0.5),
                train, None, TextCollator(min_length=5)).fit()


class Interrupted(Exception):
    pass


def test_resume_with_ema_and_layer_decay_gives_the_same_result(tmp_path):
    model_a, _, result_a = _fit(tmp_path / "a", ema=0.7, decay=0.5, epochs=4)

    def stop_after_two(trainer, record):
        if record["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        _fit(tmp_path / "b", ema=0.7, decay=0.5, epochs=4, callbacks=[stop_after_two])
    model_b, _, result_b = _fit(tmp_path / "b", ema=0.7, decay=0.5, epochs=4, resume=True)
    assert result_b.resumed_from == 2
    _same_run(model_a, result_a, tmp_path / "a", model_b, result_b, tmp_path / "b")
    with pytest.raises(RuntimeError, match="differs from it in ema 0.7 -> 0.9"):
        _fit(tmp_path / "b", ema=0.9, decay=0.5, epochs=5, resume=True)


def test_config_errors_for_the_new_options():
    with pytest.raises(ValueError, match=r"layer_lr_decay \(0\) must be in \(0, 1\]"):
        TrainConfig(layer_lr_decay=0)
    with pytest.raises(ValueError, match=r"ema \(1.0\) must be in \(0, 1\) or None"):
        TrainConfig(ema=1.0)
