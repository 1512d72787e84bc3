"""Metrics against scikit-learn, schedules, the row-lazy Adadelta against torch's, checkpoints
and trainer state round trips (no pickle)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from poolkit.errors import DataFormatError
from poolkit.models import ConvNet, ConvNetConfig, TextCNN, TextCNNConfig
from poolkit.train import load_checkpoint, save_checkpoint
from poolkit.train.checkpoint import load_state, save_state
from poolkit.train.metrics import accuracy, classification_metrics, confusion_matrix, macro_f1
from poolkit.train.optim import Adadelta, build_optimizer, lr_factor

# --------------------------------------------------------------------------------------------
# Metrics


def test_metrics_hand_worked():
    labels, predictions = [0, 0, 1, 1], [0, 1, 1, 1]
    assert confusion_matrix(labels, predictions).tolist() == [[1, 1], [0, 2]]
    assert accuracy(labels, predictions) == 0.75
    # F1(0) = 2*1/(2+1) = 2/3, F1(1) = 2*2/(2+3) = 4/5, macro = 11/15
    assert macro_f1(labels, predictions) == pytest.approx(11 / 15)
    metrics = classification_metrics(labels, predictions)
    # precision: predicted 0 once, right once; predicted 1 three times, right twice
    assert metrics["precision_per_class"] == pytest.approx([1.0, 2 / 3])
    assert metrics["recall_per_class"] == pytest.approx([1 / 2, 1.0])
    assert metrics["support_per_class"] == [2, 2]


pairs = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
    )
)


@given(pairs)
def test_metrics_match_sklearn(pair):
    from sklearn import metrics as sk

    labels, predictions = pair
    ours = classification_metrics(labels, predictions, num_classes=5)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(labels, predictions))
    assert ours["macro_f1"] == pytest.approx(
        sk.f1_score(labels, predictions, average="macro", zero_division=0)
    )
    assert ours["confusion_matrix"] == sk.confusion_matrix(
        labels, predictions, labels=list(range(5))
    ).tolist()
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        labels, predictions, labels=list(range(5)), zero_division=0
    )
    assert ours["precision_per_class"] == pytest.approx(precision.tolist())
    assert ours["recall_per_class"] == pytest.approx(recall.tolist())
    assert ours["f1_per_class"] == pytest.approx(f1.tolist())
    assert ours["support_per_class"] == support.tolist()


def test_metric_errors():
    with pytest.raises(ValueError, match="differ in length"):
        accuracy([0, 1], [0])
    with pytest.raises(TypeError, match="integer"):
        accuracy([0.5], [0])
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix([0, 3], [0, 1], num_classes=2)


# --------------------------------------------------------------------------------------------
# Optimisers and schedules


def test_lr_schedules_hand_values():
    assert [lr_factor(s, 10, "constant", 0) for s in (0, 9)] == [1.0, 1.0]
    assert [lr_factor(s, 10, "linear", 0) for s in (0, 5)] == [1.0, 0.5]
    assert lr_factor(5, 10, "cosine", 0) == pytest.approx(0.5)
    assert [lr_factor(s, 10, "cosine", 4) for s in (0, 3)] == [0.25, 1.0]  # warmup (s+1)/4
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(0, 10, "step")


def test_lazy_adadelta_matches_torch_adadelta():
    """Rows skipped by a step catch up with rho^k: same parameters as torch's dense update."""
    torch.manual_seed(0)
    weight = torch.randn(300, 6)
    bias = torch.randn(6)
    ours = [weight.clone().requires_grad_(), bias.clone().requires_grad_()]
    reference = [weight.clone().requires_grad_(), bias.clone().requires_grad_()]
    opt_ours = Adadelta(ours, lr=1.0, rho=0.95, eps=1e-6)
    opt_ref = torch.optim.Adadelta(reference, lr=1.0, rho=0.95, eps=1e-6)
    scale = torch.arange(1.0, 7.0)
    for step in range(40):
        # mostly a few rows (lazy path), every 9th step most rows (dense path with catch-up)
        rows = torch.randint(0, 300, (250 if step % 9 == 0 else 7,))
        for (w, b), opt in ((ours, opt_ours), (reference, opt_ref)):
            opt.zero_grad()
            ((w[rows] * scale).sin().sum() + (b * b).sum()).backward()
            opt.step()
    torch.testing.assert_close(ours[0], reference[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours[1], reference[1], rtol=1e-5, atol=1e-6)
    # the lazily stored moments, brought up to date, are torch's
    state = opt_ours.state[ours[0]]
    pending = 0.95 ** (state["step"].item() - state["last_step"]).double()
    torch.testing.assert_close(
        (state["square_avg"].double() * pending[:, None]).float(),
        opt_ref.state[reference[0]]["square_avg"], rtol=1e-5, atol=1e-7,
    )


def test_build_optimizer_errors_and_defaults():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert build_optimizer(params, "adadelta").param_groups[0]["rho"] == 0.95
    assert build_optimizer(params, "adamw").param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="optimizer"):
        build_optimizer(params, "adam")
    with pytest.raises(ValueError, match="lr"):
        build_optimizer(params, "sgd", lr=-1.0)


# --------------------------------------------------------------------------------------------
# Checkpoints and state


@pytest.mark.parametrize(
    "make",
    [
        lambda: TextCNN(TextCNNConfig(vocab_size=30, embed_dim=6, num_filters=3, pool="catavgmax",
                                      filter_widths=(2, 3))),
        lambda: ConvNet(ConvNetConfig(image_size=8, channels=(4, 6), pool="gem",
                                      global_pool="catavgmax")),
    ],
)
def test_checkpoint_round_trip_same_logits(tmp_path, make):
    torch.manual_seed(0)
    model = make().eval()
    is_text = isinstance(model, TextCNN)
    inputs = {"input_ids": torch.randint(1, 30, (4, 7))} if is_text else {
        "images": torch.rand(4, 1, 8, 8)}
    if not is_text:  # make batch-norm running stats non-trivial
        model.train()(**inputs)
        model.eval()
    folder = save_checkpoint(tmp_path / "ckpt", model, metadata={"label_names": ["a", "b"]})
    config = json.loads((folder / "poolkit_config.json").read_text())
    assert config["model_type"] == ("textcnn" if is_text else "convnet")
    assert config["label_names"] == ["a", "b"]
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "poolkit_config.json"]
    loaded = load_checkpoint(folder)
    assert not loaded.model.training
    torch.testing.assert_close(loaded.model(**inputs), model(**inputs), rtol=0, atol=0)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    model = TextCNN(TextCNNConfig(vocab_size=10, embed_dim=4, num_filters=2))
    folder = save_checkpoint(tmp_path, model)
    (folder / "poolkit_config.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="poolkit_config.json"):
        load_checkpoint(folder)
    (folder / "poolkit_config.json").write_text('{"format": "other"}')
    with pytest.raises(DataFormatError, match="not a poolkit checkpoint"):
        load_checkpoint(folder)


def test_state_round_trip_keeps_types(tmp_path):
    state = {
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "m": torch.arange(4.0)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0]}]},
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),  # noqa: NPY002
                "ints": torch.tensor([1, 2], dtype=torch.int64)},
        "history": [{"epoch": 1, "best": True, "dev": None}],
    }
    save_state(tmp_path / "state", state)
    assert not any(p.suffix in (".pt", ".pkl", ".pth") for p in tmp_path.iterdir())
    loaded = load_state(tmp_path / "state")
    assert set(loaded["optimizer"]["state"]) == {0}  # int keys come back as ints
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert torch.equal(loaded["optimizer"]["state"][0]["m"], torch.arange(4.0))
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    assert loaded["rng"]["ints"].dtype == torch.int64
    numpy_state = loaded["rng"]["numpy"]
    assert numpy_state[0] == "MT19937" and np.array_equal(numpy_state[1], state["rng"]["numpy"][1])
    assert loaded["history"] == state["history"]
