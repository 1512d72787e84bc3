"""MetaFormer: every token mixer against a hand computation, a naive loop or torch's own
attention; the block formula; shapes; gradients; refused names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from poolkit.models import build_model, config_to_dict
from poolkit.models.metaformer import (
    REFUSED_MIXERS,
    MetaFormer,
    MetaFormerBlock,
    MetaFormerConfig,
    PoolMixer,
    SelfAttentionMixer,
    ZooPoolMixer,
    build_mixer,
    check_mixer,
    list_mixers,
)
from poolkit.nn import create_pool, list_pools

SMALL = {"image_size": 8, "dims": (8, 16), "depths": (1, 1)}


def test_pool_mixer_equals_the_hand_computation():
    # avg over the in-image part of each 3x3 window, minus the centre: corner (0, 0) is
    # (1 + 2 + 4 + 5) / 4 - 1 = 2, edge (0, 1) is (1 + 2 + 3 + 4 + 5 + 6) / 6 - 2 = 1.5
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    expected = torch.tensor([[2.0, 1.5, 1.0], [0.5, 0.0, -0.5], [-1.0, -1.5, -2.0]])
    assert torch.equal(PoolMixer(3)(x)[0, 0], expected)


def _naive_window_mixer(x, reduce, k=3):
    """``reduce(in-image values of the k x k window) - x`` by loops over every position."""
    out = torch.empty_like(x)
    height, width = x.shape[-2:]
    for i in range(height):
        for j in range(width):
            window = x[..., max(0, i - k // 2):i + k // 2 + 1, max(0, j - k // 2):j + k // 2 + 1]
            out[..., i, j] = reduce(window.flatten(-2)) - x[..., i, j]
    return out


@pytest.mark.parametrize(
    ("name", "reduce"),
    [
        ("pool", lambda w: w.mean(-1)),
        ("avg", lambda w: w.mean(-1)),
        ("max", lambda w: w.amax(-1)),
        ("lp", lambda w: w.pow(2).sum(-1).sqrt()),  # zero padding adds nothing to the sum
        ("softpool", lambda w: (w * w.exp()).sum(-1) / w.exp().sum(-1)),
    ],
)
def test_pooling_mixers_equal_a_naive_loop(name, reduce):
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    mixer = build_mixer(name, 3, pool_size=3).double()
    torch.testing.assert_close(mixer(x), _naive_window_mixer(x, reduce))


def test_pool_mixer_with_a_5x5_window():
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(PoolMixer(5)(x), _naive_window_mixer(x, lambda w: w.mean(-1), 5))


@pytest.mark.parametrize("name", list_mixers())
def test_every_mixer_keeps_the_shape(name):
    mixer = build_mixer(name, 4, head_dim=2).eval()
    x = torch.randn(2, 4, 5, 7)
    assert mixer(x).shape == x.shape


@pytest.mark.parametrize("name", sorted(set(list_pools()) - set(list_mixers())))
def test_refused_families_really_cannot_keep_the_size(name):
    """A refusal is justified: at kernel 3, stride 1, padding 1 the family either has no such
    form or changes the shape; and the error says why and lists the valid mixers."""
    x = torch.randn(2, 4, 6, 6)
    try:
        pool = create_pool(name, dims=2, kernel_size=3, stride=1, padding=1)
        same = pool(x).shape == x.shape
    except (TypeError, ValueError):
        same = False
    assert not same
    with pytest.raises(ValueError, match=f"pool '{name}' cannot be a stride-1") as info:
        check_mixer(name)
    assert "valid mixers: ['pool', 'attention', 'identity', 'avg'" in str(info.value)
    assert REFUSED_MIXERS.get(name, "no 2-D windowed") in str(info.value)


def test_attention_mixer_equals_torch_multihead_attention():
    torch.manual_seed(0)
    mixer = SelfAttentionMixer(8, head_dim=4)  # 2 heads
    reference = nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(mixer.qkv.weight)
        reference.in_proj_bias.copy_(mixer.qkv.bias)
        reference.out_proj.weight.copy_(mixer.proj.weight)
        reference.out_proj.bias.copy_(mixer.proj.bias)
    x = torch.randn(2, 8, 3, 4)
    tokens = x.flatten(2).transpose(1, 2)  # (B, 12, 8)
    expected = reference(tokens, tokens, tokens, need_weights=False)[0]
    torch.testing.assert_close(mixer(x), expected.transpose(1, 2).reshape(2, 8, 3, 4))


def test_block_is_the_metaformer_formula():
    torch.manual_seed(0)
    block = MetaFormerBlock(4, PoolMixer(3), mlp_ratio=2.0, layer_scale_init=0.5)
    x = torch.randn(2, 4, 5, 5)
    norm = lambda t: F.group_norm(t, 1)  # noqa: E731 - affine starts at (1, 0)
    after_mixer = x + 0.5 * PoolMixer(3)(norm(x))
    expected = after_mixer + 0.5 * block.mlp(norm(after_mixer))
    torch.testing.assert_close(block(x), expected)
    assert block.mlp[0].out_channels == 8


@pytest.mark.parametrize("name", list_mixers())
def test_model_logits_and_gradients_for_every_mixer(name):
    torch.manual_seed(0)
    model = MetaFormer(MetaFormerConfig(**SMALL, mixer=name, head_dim=8, layer_scale_init=0.1))
    logits = model(torch.rand(3, 1, 8, 8))
    assert logits.shape == (3, 10)
    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["stem.weight"].abs().sum() > 0


@pytest.mark.parametrize("name", ["pool", "attention", "max", "gem"])
def test_block_gradcheck(name):
    torch.manual_seed(0)
    mixer = build_mixer(name, 4, head_dim=2)
    block = MetaFormerBlock(4, mixer, mlp_ratio=1.0, layer_scale_init=0.3).double()
    x = torch.rand(1, 4, 3, 4, dtype=torch.float64, requires_grad=True) + 0.1
    assert torch.autograd.gradcheck(block, (x,))


def test_default_model_on_mnist_shapes_and_twin_sizes():
    pool, twin = (MetaFormer(MetaFormerConfig(mixer=m)) for m in ("pool", "attention"))
    assert pool.config.stage_sizes == ((14, 14), (7, 7))
    assert pool(torch.rand(2, 1, 28, 28)).shape == twin(torch.rand(2, 1, 28, 28)).shape
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # the twin adds qkv and proj, 4 C^2 + 4 C a block: 2 blocks of 32 and 2 of 64 channels
    assert count(twin) - count(pool) == 2 * (4 * 32 * 32 + 4 * 32) + 2 * (4 * 64 * 64 + 4 * 64)
    assert isinstance(MetaFormer(MetaFormerConfig(mixer="identity")).stages[0].mixer,
                      nn.Identity)


def test_avg_zoo_mixer_is_poolformers_pool():
    x = torch.randn(2, 3, 6, 5)
    zoo = ZooPoolMixer("avg", 3)
    torch.testing.assert_close(zoo(x), PoolMixer(3)(x))


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 20),
    width=st.integers(1, 20),
    stages=st.integers(1, 3),
    stem=st.sampled_from([(3, 2), (4, 4), (1, 1), (5, 1)]),
)
def test_stage_sizes_match_the_feature_maps(height, width, stages, stem):
    fields = {"image_size": (height, width), "dims": (4,) * stages, "depths": (1,) * stages,
              "stem_kernel": stem[0], "stem_stride": stem[1]}
    config = MetaFormerConfig(**fields)
    model = MetaFormer(config)
    x = model.stem(torch.rand(1, 1, height, width))
    sizes = [tuple(x.shape[-2:])]
    for layer in model.stages:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            sizes.append(tuple(x.shape[-2:]))
    assert tuple(sizes) == config.stage_sizes
    assert model(torch.rand(2, 1, height, width)).shape == (2, 10)


def test_registry_round_trip():
    model = MetaFormer(MetaFormerConfig(**SMALL, mixer="lp_abs",
                                         mixer_kwargs={"norm_type": 3.0}))
    rebuilt = build_model("metaformer", config_to_dict(model.config))
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x))
    assert rebuilt.config.dims == (8, 16) and rebuilt.config.mixer_kwargs == {"norm_type": 3.0}


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"mixer": "nope"}, r"mixer \('nope'\) is not a token mixer; valid mixers: \['pool'"),
        ({"mixer": "catavgmax"}, "doubling the channels"),
        ({"mixer": "attention", "mixer_kwargs": {"p": 2}}, "apply to zoo families only"),
        ({"pool_size": 4}, r"pool_size \(4\) must be odd"),
        ({"depths": (2,)}, r"depths \(\(2,\)\) must give a positive block count"),
        ({"dims": ()}, "dims"),
        ({"image_size": (0, 4)}, r"image_size \(\(0, 4\)\) must be a positive side"),
        ({"stem_stride": 0}, r"stem_stride \(0\) must be a positive integer"),
        ({"dropout": 1.0}, r"dropout \(1.0\) must be in \[0, 1\)"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
        ({"mixer": "attention", "dims": (32, 48)}, r"dim \(48\) must be a multiple of head_dim"),
    ],
)
def test_config_errors(fields, match):
    with pytest.raises(ValueError, match=match):
        MetaFormerConfig(**fields)


def test_wrong_input_shape_and_bad_head_dim():
    with pytest.raises(ValueError, match=r"images must be \(B, 1, H, W\), got shape \(1, 3, 8"):
        MetaFormer(MetaFormerConfig(**SMALL))(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"dim \(12\) must be a multiple of head_dim \(8\)"):
        SelfAttentionMixer(12, head_dim=8)
    with pytest.raises(ValueError, match="'pool' is not a zoo family: use build_mixer"):
        ZooPoolMixer("pool", 4)
    with pytest.raises(TypeError, match="unexpected argument"):
        build_mixer("max", 4, bogus=1)
    with pytest.raises(ValueError, match=r"norm_type \(3\) of the lp mixer must be even"):
        build_mixer("lp", 4, norm_type=3)
