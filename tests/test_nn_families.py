"""Every pooling family against an independent naive reference (explicit loops over windows),
gradients by gradcheck in float64, sampling frequencies, determinism, dtype safety, bad args."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import poolkit.nn.functional as PF
from poolkit.nn import create_pool, list_pools, pool_info
from poolkit.nn.exponential import LIPLogit

C = 3
EXTRA = {"lip": {"channels": C}, "attention": {"channels": C}, "ppm": {"channels": C},
         "aspp_pooling": {"channels": C}, "aspp": {"channels": C}}
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
    "lp": {"kernel_size": 3, "stride": 2},  # PyTorch's LPPool has no padding
}
GLOBAL = {"kmax": {"k": 2}, "dynamic_kmax": {"k_top": 2}, "spp": {"levels": (1, 2)}}


def forms(name: str):
    """(form, dims, kwargs) of every form of ``name`` the registry says it has."""
    info = pool_info(name)
    for dims in info.windowed_dims:
        yield "local", dims, {**LOCAL.get(name, {"kernel_size": 3, "stride": 2, "padding": 1}),
                              **EXTRA.get(name, {})}
    if info.global_:
        for dims in info.dims:
            kwargs = {**GLOBAL.get(name, {}), **EXTRA.get(name, {})}
            if name == "spp":
                kwargs["global_pool"] = True
            yield "global", dims, kwargs


ALL_FORMS = [(name, *form) for name in list_pools() for form in forms(name)]
FORM_IDS = [f"{n}-{f}-{d}d" for n, f, d, _ in ALL_FORMS]


def sample_input(dims: int, dtype=torch.float64, seed: int = 0, positive=False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = {1: (2, C, 9), 2: (2, C, 7, 6), 3: (1, C, 5, 4, 5)}[dims]
    x = torch.randn(shape, generator=gen, dtype=dtype)
    return x.abs() + 0.1 if positive else x


# --- a naive reference: explicit loops over windows -------------------------------------------


def naive_pool(x, kernel, stride, padding, reduce):
    """``reduce(values, positions)`` over every window; padding positions are left out."""
    dims = len(kernel)
    spatial = x.shape[2:]
    outs = [(spatial[d] + 2 * padding[d] - kernel[d]) // stride[d] + 1 for d in range(dims)]
    out = torch.empty(*x.shape[:2], *outs, dtype=x.dtype)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for o in itertools.product(*(range(s) for s in outs)):
            positions = []
            for offset in itertools.product(*(range(k) for k in kernel)):
                p = tuple(o[d] * stride[d] - padding[d] + offset[d] for d in range(dims))
                if all(0 <= p[d] < spatial[d] for d in range(dims)):
                    positions.append(p)
            values = torch.stack([x[(n, c, *p)] for p in positions])
            out[(n, c, *o)] = reduce(values, positions, n, c)
    return out


def softpool_ref(v, *_):
    w = torch.exp(v - v.max())
    return (v * w).sum() / w.sum()


def lse_ref(r):
    return lambda v, *_: torch.logsumexp(r * v, 0) / r - math.log(len(v)) / r


def gem_ref(p, eps=1e-6):
    return lambda v, *_: v.clamp_min(eps).pow(p).mean().pow(1 / p)


def lp_abs_ref(p):
    return lambda v, *_: v.abs().pow(p).sum().pow(1 / p)


def stochastic_eval_ref(v, *_):
    a = v.clamp_min(0)
    return (a * a).sum() / a.sum() if a.sum() > 0 else torch.zeros((), dtype=v.dtype)


def mixed_ref(alpha):
    return lambda v, *_: alpha * v.max() + (1 - alpha) * v.mean()


WINDOW_CASES = [  # (dims, kernel, stride, padding)
    (1, (3,), (2,), (1,)),
    (2, (3, 2), (2, 1), (1, 0)),
    (2, (2, 2), (2, 2), (0, 0)),
    (3, (2, 3, 2), (1, 2, 2), (1, 1, 0)),
]


@pytest.mark.parametrize("dims,kernel,stride,padding", WINDOW_CASES)
def test_window_families_match_naive_loops(dims, kernel, stride, padding):
    x = sample_input(dims)
    pos = sample_input(dims, positive=True)
    args = (kernel, stride, padding)
    cases = [
        (PF.soft_pool(x, *args, dims=dims), naive_pool(x, *args, softpool_ref)),
        (PF.lse_pool(x, *args, r=2.5, dims=dims), naive_pool(x, *args, lse_ref(2.5))),
        (PF.gem_pool(pos, *args, p=2.7, dims=dims), naive_pool(pos, *args, gem_ref(2.7))),
        (PF.lp_abs_pool(x, 1.5, *args, dims=dims), naive_pool(x, *args, lp_abs_ref(1.5))),
        (PF.stochastic_pool(x, *args, training=False, dims=dims),
         naive_pool(x, *args, stochastic_eval_ref)),
        (PF.mixed_pool(x, *args, alpha=0.3, dims=dims), naive_pool(x, *args, mixed_ref(0.3))),
        (PF.avgmax_pool(x, *args, dims=dims), naive_pool(x, *args, mixed_ref(0.5))),
    ]
    for got, want in cases:
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("dims,kernel,stride,padding", WINDOW_CASES[:2])
def test_lip_and_stochastic_training_match_naive_loops(dims, kernel, stride, padding):
    x, logits = sample_input(dims), sample_input(dims, seed=1) * 3
    args = (kernel, stride, padding)

    def lip_ref(v, positions, n, c):
        w = torch.exp(torch.stack([logits[(n, c, *p)] for p in positions]))
        return (v * w).sum() / w.sum()

    torch.testing.assert_close(PF.lip_pool(x, logits, *args, dims=dims),
                               naive_pool(x, *args, lip_ref))
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)

    def gumbel_ref(v, positions, n, c):  # argmax of a / (-log u), a = relu(v)
        keys = [max(float(v[i]), 0.0) / -math.log(float(noise[(n, c, *p)]))
                for i, p in enumerate(positions)]
        best = max(range(len(keys)), key=lambda i: (keys[i], -i))
        return v[best].clamp_min(0)

    got = PF.stochastic_pool(x, *args, training=True, noise=noise, dims=dims)
    torch.testing.assert_close(got, naive_pool(x, *args, gumbel_ref))


def test_gated_and_tree_match_unfold_reference():
    x = sample_input(2)
    gen = torch.Generator().manual_seed(5)
    gate = torch.randn(1, 3, 3, generator=gen, dtype=x.dtype)
    leaves = torch.randn(2, 3, 3, generator=gen, dtype=x.dtype)
    windows = F.unfold(x, 3, padding=1, stride=2).view(2, C, 9, -1)  # zeros at padding
    real = F.unfold(torch.ones_like(x), 3, padding=1, stride=2).view(2, C, 9, -1)
    maximum = windows.masked_fill(real == 0, -math.inf).amax(2)
    mean = windows.sum(2) / real.sum(2)
    g = torch.sigmoid(torch.einsum("ncki,k->nci", windows, gate.flatten()))
    want = (g * maximum + (1 - g) * mean).view(2, C, 4, 3)
    torch.testing.assert_close(PF.gated_pool2d(x, gate, 3, 2, 1), want)
    f = torch.einsum("ncki,mk->ncmi", windows, leaves.flatten(1))
    want = (g * f[:, :, 0] + (1 - g) * f[:, :, 1]).view(2, C, 4, 3)
    torch.testing.assert_close(PF.tree_pool2d(x, leaves, gate, 3, 2, 1), want)


def test_global_forms_equal_one_window_over_the_plane():
    x = sample_input(2)
    flat = x.flatten(2)
    torch.testing.assert_close(PF.soft_pool2d(x).flatten(1),
                               (flat * flat.softmax(-1)).sum(-1))
    torch.testing.assert_close(PF.lse_pool2d(x, r=3.0).flatten(1),
                               (torch.logsumexp(3 * flat, -1) - math.log(42)) / 3)
    pos = x.abs() + 0.1
    torch.testing.assert_close(create_pool("gem", p=3.0)(pos),
                               pos.flatten(2).pow(3).mean(-1).pow(1 / 3))
    torch.testing.assert_close(create_pool("lp_abs", norm_type=2.0)(x), flat.norm(dim=-1))
    torch.testing.assert_close(create_pool("avg")(x), flat.mean(-1))
    torch.testing.assert_close(create_pool("max")(x), flat.amax(-1))
    torch.testing.assert_close(create_pool("lp", norm_type=2.0)(pos),
                               pos.flatten(2).norm(dim=-1))


def test_blur_matches_explicit_binomial_convolution():
    x = sample_input(2)
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=x.dtype) / 8
    padded = F.pad(x, (1, 2, 1, 2), mode="reflect")
    want = torch.zeros(2, C, 4, 3, dtype=x.dtype)
    for i, j in itertools.product(range(4), range(3)):
        patch = padded[:, :, 2 * i:2 * i + 4, 2 * j:2 * j + 4]
        want[:, :, i, j] = (patch * taps[:, None] * taps[None, :]).sum((-1, -2))
    torch.testing.assert_close(PF.blur_pool2d(x, 4, 2), want)
    dense = F.max_pool2d(x, 2, 1)
    torch.testing.assert_close(PF.max_blur_pool2d(x, 2, 2, 3),
                               PF.blur_pool2d(dense, 3, 2))
    assert PF.binomial_filter(3, 1).tolist() == [0.25, 0.5, 0.25]


def test_spp_matches_bin_loops():
    x = sample_input(2)  # 7 x 6
    got = PF.spatial_pyramid_pool2d(x, (1, 2, 3))
    bins = []
    for level in (1, 2, 3):
        for i, j in itertools.product(range(level), range(level)):
            h0, h1 = (i * 7) // level, -(-(i + 1) * 7 // level)
            w0, w1 = (j * 6) // level, -(-(j + 1) * 6 // level)
            bins.append(x[:, :, h0:h1, w0:w1].amax((-1, -2)))
    torch.testing.assert_close(got, torch.stack(bins, -1))
    assert create_pool("spp", levels=(1, 2, 3), global_pool=True)(x).shape == (2, C * 14)


def test_kmax_keeps_order_and_dynamic_k():
    x = torch.tensor([[[3.0, 9.0, 1.0, 7.0, 5.0, 8.0]]])
    assert PF.kmax_pool1d(x, 3).tolist() == [[[9.0, 7.0, 8.0]]]
    assert PF.kmax_pool1d(x, 8).tolist() == [[[3.0, 9.0, 1.0, 7.0, 5.0, 8.0, 0.0, 0.0]]]
    assert PF.dynamic_k(18, 3, 1, 3) == 12 and PF.dynamic_k(18, 3, 3, 3) == 3
    ties = torch.tensor([[[1.0, 2.0, 2.0, 2.0]]])
    assert PF.kmax_pool1d(ties, 2).tolist() == [[[2.0, 2.0]]]
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(4, 5, 11, generator=gen)
    got = PF.kmax_pool1d(rows, 4)
    for n, c in itertools.product(range(4), range(5)):
        values = rows[n, c].tolist()
        top = sorted(sorted(range(11), key=lambda i: -values[i])[:4])
        assert got[n, c].tolist() == [values[i] for i in top]


def test_fractional_regions_match_loops():
    x = sample_input(2)  # 7 x 6 -> 4 x 4
    samples = torch.rand(2, C, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for overlapping in (False, True):
        got = PF.fractional_max_pool2d(x, output_size=4, samples=samples, overlapping=overlapping)
        for n, c in itertools.product(range(2), range(C)):
            rows = PF.fractional_sequence(7, 4, samples[n, c, 0:1])[0].tolist()
            cols = PF.fractional_sequence(6, 4, samples[n, c, 1:2])[0].tolist()
            for i, j in itertools.product(range(4), range(4)):
                extra = 1 if overlapping else 0
                region = x[n, c, rows[i]:min(rows[i + 1] + extra, 7),
                           cols[j]:min(cols[j + 1] + extra, 6)]
                assert got[n, c, i, j] == region.max()
    # with kernel_size it is PyTorch's own fractional max pooling
    want = F.fractional_max_pool2d(x, 2, output_size=3, _random_samples=samples.flip(-1))
    torch.testing.assert_close(PF.fractional_max_pool2d(x, 2, output_size=3, samples=samples),
                               want)


def test_fractional_sequences_hand_worked():
    assert PF.fractional_sequence(5, 3, torch.tensor([0.5])).tolist() == [[0, 2, 4, 5]]
    keys = torch.tensor([[0.9, 0.1, 0.5]])  # 7 -> 3: increments 2,2,2 + one 3 at smallest key
    assert PF.random_fractional_sequence(7, 3, keys).tolist() == [[0, 2, 5, 7]]


def test_attention_pool_matches_manual_attention():
    torch.manual_seed(0)
    pool = create_pool("attention", channels=4, num_heads=2).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    tokens = x.flatten(2).transpose(1, 2)
    q = pool.q_proj(pool.query).view(2, 2)  # (heads, d)
    k = pool.k_proj(tokens).view(2, 9, 2, 2)
    v = pool.v_proj(tokens).view(2, 9, 2, 2)
    weights = torch.einsum("hd,nlhd->nhl", q, k).div(math.sqrt(2)).softmax(-1)
    heads = torch.einsum("nhl,nlhd->nhd", weights, v).reshape(2, 4)
    torch.testing.assert_close(pool(x), pool.out_proj(heads))
    with_pos = create_pool("attention", channels=4, spatial_size=(3, 3), query="mean")
    assert with_pos(x.float()).shape == (2, 4)
    assert with_pos(torch.randn(2, 4, 5, 4)).shape == (2, 4)  # interpolated embedding


# --- gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("name,form,dims,kwargs", ALL_FORMS, ids=FORM_IDS)
def test_gradcheck_every_form(name, form, dims, kwargs):
    torch.manual_seed(0)
    pool = create_pool(name, dims=dims, **kwargs).double().eval()
    shape = {1: (1, C, 8), 2: (1, C, 6, 5), 3: (1, C, 4, 4, 3)}[dims]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if name in ("gem", "lp"):
        x = x.abs() + 0.1
    # fast mode: random projections of the Jacobian (PyTorch's own suggestion for large inputs)
    assert torch.autograd.gradcheck(pool, (x.requires_grad_(),), eps=1e-6, atol=1e-5,
                                    fast_mode=True)


def test_gradcheck_parameters_and_training_samples():
    x = sample_input(2)[:1].requires_grad_()
    pos = sample_input(2, positive=True)[:1].requires_grad_()
    p = torch.tensor([1.5, 2.5, 4.0], dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    logits = (sample_input(2, seed=1)[:1] * 3).requires_grad_()
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    checks = [
        (lambda x, p: PF.gem_pool2d(x, 3, 2, 1, p=p), (pos, p)),
        (lambda x, a: PF.mixed_pool2d(x, 3, 2, 1, alpha=a), (x, alpha)),
        (lambda x, l: PF.lip_pool2d(x, l, 3, 2, 1), (x, logits)),
        (lambda x: PF.stochastic_pool2d(x, 3, 2, 1, noise=noise), (x,)),
        (lambda x: PF.lse_pool2d(x, 3, 2, 1, r=0.5), (x,)),
    ]
    gate = torch.randn(C, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    leaves = torch.randn(C, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    gates = torch.randn(C, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    checks += [
        (lambda x, g: PF.gated_pool2d(x, g, 3, 2, 1), (x, gate)),
        (lambda x, l, g: PF.tree_pool2d(x, l, g, 3, 2, 1), (x, leaves, gates)),
    ]
    for function, inputs in checks:
        assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-5, fast_mode=True)


def test_chunked_backward_passes_equal_one_chunk(monkeypatch):
    # large inputs are processed in groups of planes; force groups of one plane on a small one
    import poolkit.nn._utils as utils

    x = sample_input(2)
    pos = x.abs() + 0.1
    logits = sample_input(2, seed=4)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    p = torch.tensor([1.5, 2.5, 4.0], dtype=torch.float64)
    calls = [
        (lambda x: PF.soft_pool2d(x, 3, 2, 1), x),
        (lambda x: PF.lip_pool2d(x, logits * x, 3, 2, 1), x),
        (lambda x: PF.lse_pool2d(x, 3, 2, 1, r=2.0), x),
        (lambda x: PF.gem_pool2d(x, 3, 2, 1, p=p), pos),
        (lambda x: PF.lp_abs_pool2d(x, 1.5, 3, 2, 1), x),
        (lambda x: PF.stochastic_pool2d(x, 3, 2, 1, noise=noise), x),
    ]

    def run(function, value):
        value = value.clone().requires_grad_()
        out = function(value)
        (grad,) = torch.autograd.grad(out, value, torch.cos(out))
        return out, grad

    whole = [run(f, v) for f, v in calls]
    monkeypatch.setattr(utils, "_CHUNK_BYTES", 1)
    assert len(utils.plane_chunks(utils.as_planes(x))) == 6
    for (function, value), (out, grad) in zip(calls, whole, strict=True):
        chunked_out, chunked_grad = run(function, value)
        torch.testing.assert_close(chunked_out, out)
        torch.testing.assert_close(chunked_grad, grad)
    assert torch.autograd.gradcheck(lambda v: PF.soft_pool2d(v, 3, 2, 1),
                                    (x[:1].clone().requires_grad_(),), fast_mode=True)


def test_learned_parameters_receive_gradients():
    x = torch.randn(2, C, 8, 8)
    for name, kwargs in [
        ("gem", {}), ("gem", {"channels": C, "kernel_size": 2}), ("mixed", {"kernel_size": 2}),
        ("gated", {"kernel_size": 2, "channels": C}), ("tree", {"kernel_size": 2, "depth": 3}),
        ("lip", {"channels": C, "kernel_size": 3, "stride": 2, "padding": 1}),
        ("attention", {"channels": C, "spatial_size": 8}),
    ]:
        pool = create_pool(name, **kwargs)
        pool(x.abs() + 0.1).sum().backward()
        params = dict(pool.named_parameters())
        assert params, name
        for pname, param in params.items():
            if pname.startswith("logit.") or pname.endswith("gate_weight"):
                continue  # behind a zero-initialised layer: gradients after the first update
            assert param.grad is not None and param.grad.abs().sum() > 0, (name, pname)


# --- sampling ---------------------------------------------------------------------------------


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_stochastic_sampling_frequencies_chi_square():
    # 20 000 windows of [1, 2, 3, 4] (2x2) in one call: P = 0.1, 0.2, 0.3, 0.4
    windows = 20_000
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).repeat(1, windows).view(1, 1, 2, 2 * windows)
    pool = create_pool("stochastic", kernel_size=2, generator=torch.Generator().manual_seed(7))
    values = pool.train()(x).flatten()
    counts = torch.stack([(values == v).sum() for v in (1.0, 2.0, 3.0, 4.0)]).double()
    # chi-square with 3 degrees of freedom: P(stat > 16.27) = 0.001
    assert chi_square(counts, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)) < 16.27
    # zero activations are never chosen; an all-zero window pools to 0
    z = torch.tensor([[[[0.0, 0.0], [0.0, 5.0]], [[0.0, 0.0], [0.0, 0.0]]]]).transpose(0, 1)
    assert pool(z).flatten().tolist() == [5.0, 0.0]


def test_stochastic_global_frequencies_and_seed():
    x = torch.tensor([0.5, 0.0, 1.5, 2.0]).view(1, 1, 4).repeat(4000, 1, 1)  # P = 1/8, 0, 3/8, 4/8
    gen = torch.Generator().manual_seed(3)
    values = create_pool("stochastic", dims=1, generator=gen).train()(x).flatten()
    counts = torch.stack([(values == v).sum() for v in (0.5, 1.5, 2.0)]).double()
    assert (values != 0.0).all()
    assert chi_square(counts, torch.tensor([1 / 8, 3 / 8, 4 / 8], dtype=torch.float64)) < 13.82
    again = create_pool("stochastic", dims=1, generator=torch.Generator().manual_seed(3)).train()
    assert torch.equal(again(x).flatten(), values)  # same seed, same draws


def test_mixed_random_lambda_frequency_and_expectation():
    gen = torch.Generator().manual_seed(11)
    pool = create_pool("mixed", dims=1, kernel_size=2, mode="random", alpha=0.3, generator=gen)
    x = torch.tensor([0.0, 4.0]).repeat(5000, 1, 1)  # max 4, avg 2
    values = pool.train()(x).flatten()
    assert set(values.tolist()) <= {2.0, 4.0}
    share = float((values == 4.0).double().mean())
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 5000)  # binomial bound
    assert torch.allclose(pool.eval()(x), torch.full_like(values.view(-1, 1, 1), 0.3 * 4 + 1.4))


def test_random_fractional_sequence_increment_counts():
    gen = torch.Generator().manual_seed(0)
    keys = torch.rand(500, 7, generator=gen)
    bounds = PF.random_fractional_sequence(12, 7, keys)  # alpha = 12/7: five 2s, two 1s
    increments = bounds.diff(dim=-1)
    assert (bounds[:, 0] == 0).all() and (bounds[:, -1] == 12).all()
    assert ((increments == 2).sum(-1) == 5).all()
    position_share = (increments == 2).double().mean(0)  # each position: 5/7 on average
    assert (position_share - 5 / 7).abs().max() < 4 * math.sqrt(5 / 7 * 2 / 7 / 500)


@pytest.mark.parametrize("name,form,dims,kwargs", ALL_FORMS, ids=FORM_IDS)
def test_eval_mode_is_deterministic(name, form, dims, kwargs):
    pool = create_pool(name, dims=dims, **kwargs).eval()
    x = sample_input(dims, dtype=torch.float32)
    assert torch.equal(pool(x), pool(x))


# --- dtypes and large inputs ------------------------------------------------------------------

SAFE_FAMILIES = ["softpool", "lse", "gem", "lp_abs", "stochastic", "mixed", "avgmax", "lip"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("name", SAFE_FAMILIES)
def test_large_inputs_stay_finite_in_low_precision(name, dtype):
    x = torch.full((1, 2, 4, 4), 100.0)
    x[0, 1] = torch.linspace(-120.0, 100.0, 16).view(4, 4)
    kwargs = {"channels": 2} if name == "lip" else {}
    for pool in (create_pool(name, kernel_size=2, **kwargs), create_pool(name, **kwargs)):
        pool = pool.to(dtype).eval()
        y = pool(x.to(dtype))
        assert y.dtype == dtype and torch.isfinite(y).all(), (name, y)
        if name in ("softpool", "lse", "gem", "stochastic", "mixed", "avgmax"):
            assert torch.allclose(y.float().flatten()[:1], torch.tensor([100.0]), rtol=1e-2)


def test_windows_far_below_the_plane_max_keep_their_precision():
    # float32 weights of the second window would be e^-100 (denormal): recomputed in float64
    x = torch.tensor([[[0.0, 0.5, -100.0, -100.5]]])
    want = naive_pool(x.double(), (2,), (2,), (0,), softpool_ref).float()
    torch.testing.assert_close(PF.soft_pool1d(x, 2), want)
    torch.testing.assert_close(PF.lse_pool1d(x, 2), naive_pool(x.double(), (2,), (2,), (0,),
                                                                lse_ref(1.0)).float())


def test_extreme_ranges_fall_back_to_window_max():
    x = torch.tensor([[[0.0, 0.5, -2000.0, -2000.5]]], dtype=torch.float64, requires_grad=True)
    soft = PF.soft_pool1d(x, 2)
    assert torch.isfinite(soft).all() and soft[0, 0, 1] == -2000.0
    lse = PF.lse_pool1d(x, 2)
    assert torch.isfinite(lse).all()
    (soft.sum() + lse.sum()).backward()
    assert torch.isfinite(x.grad).all()


# --- hypothesis: shapes and arguments ---------------------------------------------------------


@given(
    size=st.integers(3, 9), kernel=st.integers(1, 3), stride=st.integers(1, 3),
    pad=st.integers(0, 1), name=st.sampled_from(["softpool", "gem", "lse", "lp_abs", "mixed",
                                                 "stochastic", "avgmax", "max", "avg"]),
)
def test_windowed_output_shape_matches_formula(size, kernel, stride, pad, name):
    pad = min(pad, kernel // 2)
    x = torch.rand(1, 2, size, size + 1) + 0.1
    pool = create_pool(name, kernel_size=kernel, stride=stride, padding=pad).eval()
    expected = [(s + 2 * pad - kernel) // stride + 1 for s in (size, size + 1)]
    y = pool(x)
    assert list(y.shape[2:]) == expected and torch.isfinite(y).all()


BAD_ARGUMENTS = [  # (name, kwargs, the argument the message must name)
    ("softpool", {"kernel_size": 0}, "kernel_size"), ("gem", {"p": -1.0}, "p"),
    ("gem", {"p": 0.0}, "p"), ("lse", {"r": 0.0}, "r"),
    ("lp_abs", {"norm_type": -2.0}, "norm_type"),
    ("mixed", {"alpha": 1.5}, "alpha"), ("mixed", {"mode": "sometimes"}, "mode"),
    ("tree", {"kernel_size": 2, "depth": 4}, "depth"), ("blur", {"kernel_size": 8}, "kernel_size"),
    ("spp", {"levels": ()}, "levels"), ("spp", {"levels": (1, 0)}, "levels"),
    ("spp", {"levels": (1,), "mode": "median"}, "mode"), ("kmax", {"k": 0}, "k"),
    ("fractional_max", {"output_ratio": 1.5}, "output_ratio"),
    ("avg", {"kernel_size": 3, "padding": 2}, "padding"),
    ("attention", {"channels": 6, "num_heads": 4}, "num_heads"),
    ("lip", {"channels": 0}, "channels"),
    ("dynamic_kmax", {"k_top": 2, "layer": 3, "num_layers": 2}, "layer"),
    ("gated", {"kernel_size": (2, 2, 2)}, "kernel_size"),
    ("stochastic", {"kernel_size": 2, "stride": 0}, "stride"),
]


@given(bad=st.sampled_from(BAD_ARGUMENTS))
def test_invalid_arguments_raise_value_error_naming_them(bad):
    name, kwargs, argument = bad
    dims = 2 if 2 in pool_info(name).dims else 1
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        pool = create_pool(name, dims=dims, **kwargs)
        pool(torch.rand(1, 6, *([8] * dims)))


def test_invalid_inputs():
    with pytest.raises(ValueError, match="input must have shape"):
        create_pool("softpool", kernel_size=2)(torch.rand(2, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        PF.soft_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="noise"):
        PF.stochastic_pool2d(torch.rand(1, 1, 4, 4), 2, noise=torch.rand(4, 4))
    with pytest.raises(ValueError, match="logits"):
        PF.lip_pool2d(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 2, 2), 2)
    with pytest.raises(ValueError, match="samples"):
        PF.fractional_max_pool2d(torch.rand(1, 1, 6, 6), output_size=3, samples=torch.rand(1, 2))
    with pytest.raises(ValueError, match="kernel_size .* larger than the padded input"):
        PF.gem_pool2d(torch.rand(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match="reflect padding"):
        PF.blur_pool2d(torch.rand(1, 1, 1, 1), 3)
    with pytest.raises(ValueError, match="channels"):
        create_pool("attention", channels=4)(torch.rand(1, 3, 2, 2))
    with pytest.raises(ValueError, match="gate_weight|mask weight"):
        PF.gated_pool2d(torch.rand(1, 1, 4, 4), torch.rand(2, 2), 2)


def test_lip_logit_starts_as_average_pooling():
    x = torch.randn(2, C, 6, 6)
    lip = create_pool("lip", channels=C, kernel_size=2)
    torch.testing.assert_close(lip(x), F.avg_pool2d(x, 2))
    logit = LIPLogit(C, norm="batch")
    assert logit(x).shape == x.shape and (logit(x) >= 0).all() and (logit(x) <= 12).all()


# Where each registered name's values are checked against an independent reference (a new
# family must add its own before this test passes).
REFERENCE_TESTS = {
    "max": "test_global_forms_equal_one_window_over_the_plane (windowed: PyTorch's own kernel)",
    "avg": "test_global_forms_equal_one_window_over_the_plane (windowed: PyTorch's own kernel)",
    "lp": "test_global_forms_equal_one_window_over_the_plane (windowed: PyTorch's own kernel)",
    "lp_abs": "test_window_families_match_naive_loops",
    "avgmax": "test_window_families_match_naive_loops",
    "catavgmax": "test_nn_factory.py::test_hand_worked_values",
    "stochastic": "test_window_families_match_naive_loops, test_lip_and_stochastic_training_...",
    "fractional_max": "test_fractional_regions_match_loops",
    "mixed": "test_window_families_match_naive_loops",
    "gated": "test_gated_and_tree_match_unfold_reference",
    "tree": "test_gated_and_tree_match_unfold_reference",
    "softpool": "test_window_families_match_naive_loops",
    "lip": "test_lip_and_stochastic_training_match_naive_loops",
    "gem": "test_window_families_match_naive_loops",
    "lse": "test_window_families_match_naive_loops",
    "blur": "test_blur_matches_explicit_binomial_convolution",
    "maxblur": "test_blur_matches_explicit_binomial_convolution",
    "spp": "test_spp_matches_bin_loops",
    "kmax": "test_kmax_keeps_order_and_dynamic_k",
    "dynamic_kmax": "test_kmax_keeps_order_and_dynamic_k",
    "attention": "test_attention_pool_matches_manual_attention",
    "ppm": "test_nn_context.py::test_pyramid_pooling_matches_naive_recomputation",
    "aspp_pooling": "test_nn_context.py::test_aspp_matches_naive_recomputation",
    "aspp": "test_nn_context.py::test_aspp_matches_naive_recomputation",
}


def test_every_registered_name_has_a_reference_test():
    assert sorted(REFERENCE_TESTS) == list_pools()
