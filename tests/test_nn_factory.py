"""The pool factory contract, parametrised over every registered name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from poolkit.nn import create_pool, list_pools, pool_info

C = 4
# Arguments a family needs beyond its size argument (learned per-channel modules).
EXTRA = {"lip": {"channels": C}, "attention": {"channels": C}, "ppm": {"channels": C},
         "aspp_pooling": {"channels": C}, "aspp": {"channels": C}}
# The windowed form's arguments per family (None: the family has no windowed form).
LOCAL = {
    "fractional_max": {"output_size": 3},
    "spp": {"levels": (1, 2)},
    "ppm": {"bins": (1, 2), "branch_channels": C},  # context modules: same size, C * 3 out
    "aspp_pooling": {},
    "aspp": {"atrous_rates": (1, 2)},
    "kmax": {"k": 2, "global_pool": False},
    "dynamic_kmax": {"k_top": 2, "layer": 1, "num_layers": 2},
    "blur": {"kernel_size": 3, "stride": 2},
    "maxblur": {"kernel_size": 2, "stride": 2},
}
GLOBAL = {"kmax": {"k": 2}, "dynamic_kmax": {"k_top": 2}, "spp": {"levels": (1, 2)}}


# Windowed forms whose output is (N, C, m) rather than (N, C * feat_mult, *out).
SEQUENCE_OUT = {
    "kmax": lambda pool, x: pool.feat_mult(),
    "spp": lambda pool, x: pool.feat_mult(),
    "dynamic_kmax": lambda pool, x: 6,  # max(2, ceil((2 - 1) / 2 * 11))
}


def local_kwargs(name: str) -> dict:
    return {**LOCAL.get(name, {"kernel_size": 3, "stride": 2}), **EXTRA.get(name, {})}


def global_kwargs(name: str) -> dict:
    kwargs = {**GLOBAL.get(name, {}), **EXTRA.get(name, {})}
    if name == "spp":
        kwargs["global_pool"] = True
    return kwargs


def spatial_shape(dims: int) -> tuple[int, ...]:
    return (9, 8, 7)[:dims] if dims > 1 else (11,)


def test_names_include_contract():
    required = (
        "max avg lp lp_abs stochastic fractional_max mixed gated tree softpool lip gem lse blur "
        "maxblur spp kmax dynamic_kmax attention avgmax catavgmax"
    ).split()
    missing = sorted(set(required) - set(list_pools()))
    assert not missing, missing
    assert list_pools(include_identity=True)[:2] == ["", "identity"]


@pytest.mark.parametrize("name", list_pools())
def test_global_form_shape_and_feat_mult(name):
    info = pool_info(name)
    if not info.global_:
        with pytest.raises(ValueError, match="no global form"):
            create_pool(name, dims=info.dims[-1] if 2 not in info.dims else 2)
        return
    for dims in info.dims:
        if name in ("attention",) and dims == 3:
            continue
        x = torch.randn(2, C, *spatial_shape(dims))
        pool = create_pool(name, dims=dims, **global_kwargs(name)).eval()
        assert isinstance(pool, nn.Module)
        y = pool(x)
        assert y.shape == (2, C * pool.feat_mult()), (name, dims, y.shape)
        flat_false = create_pool(name, dims=dims, flatten=False, **global_kwargs(name)).eval()
        assert flat_false(x).shape == (2, C * pool.feat_mult(), *([1] * dims))


@pytest.mark.parametrize("name", list_pools())
def test_local_form_shape(name):
    info = pool_info(name)
    if not info.local:
        with pytest.raises(ValueError, match="only a global form"):
            create_pool(name, dims=info.dims[0], global_pool=False, **EXTRA.get(name, {}))
        return
    for dims in info.windowed_dims:
        x = torch.randn(2, C, *spatial_shape(dims))
        pool = create_pool(name, dims=dims, **local_kwargs(name)).eval()
        y = pool(x)
        if name in SEQUENCE_OUT:  # (N, C, k) / (N, C, bins)
            assert y.shape == (2, C, SEQUENCE_OUT[name](pool, x)), (name, dims, y.shape)
        else:
            assert y.shape[:2] == (2, C * pool.feat_mult()), (name, dims, y.shape)
            assert y.dim() == dims + 2, (name, y.shape)
        assert torch.isfinite(y).all()


def test_local_sizes_match_torch_formula():
    x = torch.randn(2, C, 56, 56)
    for name in ("max", "avg", "softpool", "gem", "lse", "lp_abs", "mixed", "stochastic"):
        if name not in list_pools():
            continue
        assert create_pool(name, kernel_size=3, stride=2).eval()(x).shape == (2, C, 27, 27), name


def test_identity_and_passthrough():
    x = torch.randn(2, 3, 4, 4)
    for name in ("", "identity"):
        pool = create_pool(name)
        assert pool(x) is x and pool.feat_mult() == 1
    module = nn.ReLU()
    assert create_pool(module) is module


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown pool name 'nope'.*'max'"):
        create_pool("nope")


def test_bad_arguments():
    with pytest.raises(TypeError, match="name must be"):
        create_pool(3)
    with pytest.raises(ValueError, match="dims"):
        create_pool("max", dims=4)
    with pytest.raises(TypeError, match="unexpected argument.*'bogus'"):
        create_pool("max", kernel_size=2, bogus=1)
    with pytest.raises(ValueError, match="kernel_size"):
        create_pool("max", kernel_size=0)
    with pytest.raises(ValueError, match=r"padding \(2\) must be at most half"):
        create_pool("avg", kernel_size=3, padding=2)
    with pytest.raises(ValueError, match="windowed form for dims"):
        create_pool("kmax", dims=2, k=2, global_pool=False)
    with pytest.raises(ValueError, match="supports dims"):
        create_pool("dynamic_kmax", dims=2)


@pytest.mark.parametrize("name", list_pools(include_identity=True))
def test_pool_info_fields(name):
    info = pool_info(name)
    assert info.name == name and info.title and info.summary
    assert info.local or info.global_
    assert set(info.dims) <= {1, 2, 3}


def test_textcnn_and_convnet_usage():
    # TextCNN pools over time; ConvNet downsamples then heads.
    tokens = torch.randn(3, 5, 12)
    assert create_pool("kmax", dims=1, k=2)(tokens).shape == (3, 10)
    assert create_pool("max", dims=1)(tokens).shape == (3, 5)
    images = torch.randn(3, 5, 8, 8)
    assert create_pool("max", dims=2, kernel_size=2, stride=2)(images).shape == (3, 5, 4, 4)
    assert create_pool("catavgmax", dims=2)(images).shape == (3, 10)


def test_hand_worked_values():
    x = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]]]])
    assert create_pool("avgmax")(x).tolist() == [[4.5]]  # (6 + 3) / 2
    assert create_pool("catavgmax")(x).tolist() == [[3.0, 6.0]]
    seq = torch.tensor([[[1.0, 5.0, 2.0, 4.0, 3.0]]])
    assert create_pool("kmax", dims=1, k=3)(seq).tolist() == [[5.0, 4.0, 3.0]]
    assert create_pool("dynamic_kmax", dims=1, k_top=1, layer=1, num_layers=2)(seq).tolist() == [
        [[5.0, 4.0, 3.0]]  # k = max(1, ceil(1/2 * 5)) = 3
    ]
