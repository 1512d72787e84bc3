"""TextCNN and ConvNet: shapes, every registered pool, the Conv2d reference, Kim's constraint,
the registry round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from poolkit.models import (
    ConvNet,
    ConvNetConfig,
    TextCNN,
    TextCNNConfig,
    build_model,
    config_from_dict,
    config_to_dict,
    list_models,
    model_type_of,
)
from poolkit.nn import list_pools, pool_info


def _small_textcnn(**overrides) -> TextCNN:
    torch.manual_seed(0)
    fields = {"vocab_size": 40, "embed_dim": 12, "num_filters": 5, **overrides}
    return TextCNN(TextCNNConfig(**fields))


def test_textcnn_equals_the_tutorial_conv2d_formulation():
    """Conv1d over (B, E, T) computes what Conv2d with a (w, E) kernel over (B, 1, T, E) does
    (without Kim's edge padding, which the tutorial does not have)."""
    model = _small_textcnn(dropout=0.0, edge_padding=False).eval()
    ids = torch.randint(1, 40, (3, 9))
    embedded = model.embedding(ids).unsqueeze(1)  # (B, 1, T, E)
    features = []
    for conv in model.convs:
        width = conv.kernel_size[0]
        kernel = conv.weight.transpose(1, 2).unsqueeze(1)  # (F, 1, w, E)
        maps = F.relu(F.conv2d(embedded, kernel, conv.bias)).squeeze(3)  # (B, F, T - w + 1)
        features.append(F.max_pool1d(maps, 9 - width + 1).squeeze(2))
    expected = model.classifier(torch.cat(features, dim=1))
    torch.testing.assert_close(model(ids), expected)


def test_textcnn_short_sequences_are_padded_to_the_widest_filter():
    for edge_padding in (True, False):
        model = _small_textcnn(dropout=0.0, edge_padding=edge_padding).eval()
        one_token = torch.tensor([[7]])
        padded = torch.tensor([[7, 0, 0, 0, 0]])
        torch.testing.assert_close(model(one_token), model(padded))
    with pytest.raises(ValueError, match="input_ids"):
        model(torch.tensor([7, 8]))


def test_textcnn_logits_do_not_depend_on_batch_padding():
    """Padding-only windows would give ReLU(bias) > 0 and could win the max; they are zeroed."""
    model = _small_textcnn(dropout=0.0).eval()
    with torch.no_grad():
        for conv in model.convs:
            conv.bias.fill_(5.0)  # a large positive bias: a padding-only window would win
    text = torch.tensor([[3, 9, 4, 12, 7, 5]])
    padded = torch.cat([text, torch.zeros(1, 14, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(padded), model(text))
    batch = torch.stack([padded[0], torch.randint(1, 40, (20,))])  # beside a longer text
    torch.testing.assert_close(model(batch)[:1], model(text))


def test_padding_embedding_is_zero_and_gets_no_gradient():
    model = _small_textcnn()
    assert model.embedding.weight[0].abs().sum() == 0
    model(torch.tensor([[3, 4, 0, 0, 0]])).sum().backward()
    assert model.embedding.weight.grad[0].abs().sum() == 0


@pytest.mark.parametrize("pool", list_pools())
def test_textcnn_every_pool_over_time(pool):
    """Every pool with a global form pools over time; the head width follows feat_mult; a
    windowed-only pool is refused with a ValueError naming the missing form."""
    if not pool_info(pool).global_:
        with pytest.raises(ValueError, match="global form"):
            _small_textcnn(pool=pool)
        return
    model = _small_textcnn(pool=pool)
    assert model.classifier.in_features == 3 * 5 * model.pools[0].feat_mult()
    logits = model(torch.randint(1, 40, (4, 11)))
    assert logits.shape == (4, 2) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert model.convs[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("pool", list_pools())
def test_convnet_every_downsampling_pool(pool):
    """Every pool with a 2-d window downsamples; the others are refused with a clear error."""
    info = pool_info(pool)
    if "kernel_size" not in info.size_args or 2 not in info.windowed_dims:
        with pytest.raises(ValueError, match=f"pool \\('{pool}'\\) has no 2-D windowed form"):
            ConvNet(ConvNetConfig(image_size=8, channels=(4, 8), pool=pool))
        return
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(image_size=8, channels=(4, 8), pool=pool))
    logits = model(torch.rand(3, 1, 8, 8))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    model.eval()
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_windowed_pool_over_time_is_refused():
    model = _small_textcnn(pool="avg", pool_kwargs={"kernel_size": 2})
    with pytest.raises(ValueError, match="windowed"):
        model(torch.randint(1, 40, (2, 6)))


@pytest.mark.parametrize(("global_pool", "mult"), [("avg", 1), ("max", 1), ("catavgmax", 2)])
def test_convnet_head_width_follows_feat_mult(global_pool, mult):
    model = ConvNet(ConvNetConfig(image_size=(8, 12), channels=(4, 6), global_pool=global_pool))
    assert model.classifier.in_features == 6 * mult
    assert model(torch.rand(2, 1, 8, 12)).shape == (2, 10)


def test_max_norm_constraint_rescales_only_long_rows():
    model = _small_textcnn(max_norm=3.0)
    with torch.no_grad():
        model.classifier.weight[0].fill_(10.0)  # norm far above 3
        model.classifier.weight[1].zero_()
        model.classifier.weight[1, 0] = 0.5  # norm 0.5: left alone
    model.apply_constraints()
    norms = model.classifier.weight.norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([3.0, 0.5]))


def test_load_embeddings_keeps_padding_zero_and_can_freeze():
    model = _small_textcnn()
    model.load_embeddings(torch.ones(40, 12), freeze=True)
    assert model.embedding.weight[0].abs().sum() == 0 and model.embedding.weight[5, 0] == 1
    assert not model.embedding.weight.requires_grad
    with pytest.raises(ValueError, match="vectors shape"):
        model.load_embeddings(torch.ones(3, 12))


def test_registry_round_trip_and_errors():
    assert {"textcnn", "convnet", "transformer"} <= set(list_models())
    model = _small_textcnn(filter_widths=(2, 3))
    payload = config_to_dict(model.config)
    assert payload["filter_widths"] == [2, 3]  # JSON-ready
    rebuilt = build_model(model_type_of(model), payload)
    assert isinstance(rebuilt, TextCNN) and rebuilt.config == model.config
    assert config_from_dict(ConvNetConfig, {"channels": [4, 8]}).channels == (4, 8)
    with pytest.raises(ValueError, match="unknown TextCNNConfig field"):
        build_model("textcnn", {"vocab_size": 10, "filters": 3})
    with pytest.raises(ValueError, match="must be one of"):
        build_model("resnet", {})


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"vocab_size": 0}, "vocab_size"),
        ({"vocab_size": 10, "filter_widths": (0, 3)}, "filter_widths"),
        ({"vocab_size": 10, "dropout": 1.0}, "dropout"),
        ({"vocab_size": 10, "max_norm": -1.0}, "max_norm"),
        ({"vocab_size": 10, "pool": "nope"}, "unknown pool name"),
    ],
)
def test_textcnn_config_errors(fields, match):
    with pytest.raises(ValueError, match=match):
        TextCNN(TextCNNConfig(**fields))


def test_convnet_config_errors():
    with pytest.raises(ValueError, match="too small"):
        ConvNetConfig(image_size=4, channels=(4, 8, 16))
    with pytest.raises(ValueError, match="in_channels"):
        ConvNetConfig(in_channels=0)
    with pytest.raises(ValueError, match=r"global_pool \('blur'\) has no global 2-D form"):
        ConvNetConfig(global_pool="blur")
    with pytest.raises(ValueError, match=r"images must be \(B, 1, H, W\)"):
        ConvNet(ConvNetConfig(image_size=8, channels=(4,)))(torch.rand(2, 3, 8, 8))
