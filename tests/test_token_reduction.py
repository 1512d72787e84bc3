"""Token reducers against naive per-example Python loops, for both padding sides."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from poolkit.nn.token_reduction import (
    attention_bias,
    merge_tokens,
    protected_tokens,
    prune_tokens,
    strided_reduce,
)

GARBAGE = 1e3  # state at padded positions: a reducer that reads a pad gives a visibly wrong answer


# ---------------------------------------------------------------------------------------------
# The independent reference: each row's real tokens as a Python list of (state, size) groups


def _protected(n: int, cls: bool, sep: bool) -> tuple[list[int], list[int], list[int]]:
    """(head, free, tail) indices into a row's n real tokens."""
    head = [0] if cls and n >= 1 else []
    tail = [n - 1] if sep and n - len(head) >= 1 else []
    free = [i for i in range(n) if i not in head and i not in tail]
    return head, free, tail


def _group_value(x, s, group, mode="mean"):
    if mode == "max":
        return torch.stack([x[i] for i in group]).amax(0), sum(float(s[i]) for i in group)
    total = sum(float(s[i]) for i in group)
    return sum(s[i] * x[i] for i in group) / total, total


def _naive_rows(states, mask, sizes, make_groups):
    """Apply ``make_groups(row_index, n) -> list of groups (lists of real-token indices)``."""
    rows = []
    for b in range(states.shape[0]):
        real = (mask[b] != 0).nonzero().flatten()
        x, s = states[b, real], sizes[b, real] if sizes is not None else torch.ones(len(real))
        rows.append([_group_value(x, s, g[0], g[1]) for g in make_groups(b, real, len(real))])
    return rows


def naive_strided(states, mask, sizes, ratio, mode, cls=True, sep=True):
    def groups(_b, _real, n):
        head, free, tail = _protected(n, cls, sep)
        windows = [free[i : i + ratio] for i in range(0, len(free), ratio)]
        return [([i], mode) for i in head] + [(w, mode) for w in windows] + [
            ([i], mode) for i in tail]
    return _naive_rows(states, mask, sizes, groups)


def naive_merge(states, mask, sizes, metric, r=None, cls=True, sep=True, rate=None):
    def groups(b, real, n):
        head, free, tail = _protected(n, cls, sep)
        a_set, b_set = free[0::2], free[1::2]
        unit = torch.nn.functional.normalize(metric[b, real].double(), dim=-1)
        best = []
        for a in a_set:
            sims = [float(unit[a] @ unit[j]) for j in b_set]
            if sims:
                best.append((max(sims), a, b_set[sims.index(max(sims))]))
        best.sort(key=lambda item: -item[0])  # stable: ties keep the earlier token
        wanted = r if rate is None else math.floor(rate * len(free) + 1e-9)
        merged = {a: dst for _, a, dst in best[: min(wanted, len(b_set))]}
        return [([i] + [a for a, dst in merged.items() if dst == i], "mean")
                for i in range(n) if i not in merged]
    return _naive_rows(states, mask, sizes, groups)


def naive_prune(states, mask, sizes, importance, keep, cls=True, sep=True):
    def groups(b, real, n):
        head, free, tail = _protected(n, cls, sep)
        keep_count = math.ceil(len(free) * keep)
        if len(free) - keep_count < 2:
            keep_count = len(free)
        ranked = sorted(free, key=lambda i: -float(importance[b, real[i]]))
        kept = set(ranked[:keep_count])
        fused = [i for i in free if i not in kept]
        out = [([i], "mean") for i in range(n) if i not in fused]
        return out + ([(fused, "mean")] if fused else [])
    return _naive_rows(states, mask, sizes, groups)


def assert_matches(result, rows, atol=1e-10):
    states, mask, sizes = result
    assert states.shape[1] == max([len(row) for row in rows] + [0])
    for b, row in enumerate(rows):
        assert mask[b].tolist() == [True] * len(row) + [False] * (mask.shape[1] - len(row))
        for t, (value, size) in enumerate(row):
            torch.testing.assert_close(states[b, t], value.to(states.dtype), atol=atol, rtol=0)
            assert float(sizes[b, t]) == pytest.approx(size)
        assert torch.all(states[b, len(row):] == 0) and torch.all(sizes[b, len(row):] == 0)


# ---------------------------------------------------------------------------------------------
# Inputs


def make_batch(lengths, width, hidden=3, side="right", seed=0, sized=False):
    """States with GARBAGE at pads, the mask, and sizes (None or random positive at real)."""
    generator = torch.Generator().manual_seed(seed)
    states = torch.full((len(lengths), width, hidden), GARBAGE, dtype=torch.float64)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for b, n in enumerate(lengths):
        start = 0 if side == "right" else width - n
        states[b, start : start + n] = torch.randn(n, hidden, generator=generator,
                                                   dtype=torch.float64)
        mask[b, start : start + n] = 1
    sizes = None
    if sized:
        sizes = torch.randint(1, 4, (len(lengths), width), generator=generator).double() * mask
    return states, mask, sizes


def _to_right_padding(tensor, mask):
    """The same rows with the real tokens moved to the front (right padding)."""
    out = torch.zeros_like(tensor)
    for b in range(mask.shape[0]):
        real = (mask[b] != 0).nonzero().flatten()
        out[b, : len(real)] = tensor[b, real]
    return out


LENGTHS = [[7, 5, 2, 1, 0], [9, 9], [4, 3, 12]]


def _call(kind, states, mask, sizes, extra, **kwargs):
    if kind == "strided":
        return strided_reduce(states, mask, sizes, **kwargs)
    if kind == "merge":
        return merge_tokens(states, mask, extra, sizes=sizes, **kwargs)
    return prune_tokens(states, mask, extra, sizes=sizes, **kwargs)


def _extra(kind, states, seed=1):
    generator = torch.Generator().manual_seed(seed)
    if kind == "merge":
        return torch.randn(*states.shape[:2], 4, generator=generator, dtype=torch.float64)
    if kind == "prune":
        return torch.rand(*states.shape[:2], generator=generator, dtype=torch.float64)
    return None


CASES = [
    ("strided", {"ratio": 2, "mode": "mean"}),
    ("strided", {"ratio": 3, "mode": "max"}),
    ("strided", {"ratio": 2, "mode": "mean", "cls": False, "sep": False}),
    ("merge", {"r": 2}),
    ("merge", {"r": 100}),
    ("merge", {"r": 3, "sep": False}),
    ("merge", {"rate": 0.3}),
    ("merge", {"rate": 0.5, "cls": False}),
    ("prune", {"keep": 0.5}),
    ("prune", {"keep": 0.25, "cls": False}),
    ("prune", {"keep": 1.0}),
]


def _naive(kind, states, mask, sizes, extra, **kwargs):
    if kind == "strided":
        return naive_strided(states, mask, sizes, kwargs.pop("ratio"), kwargs.pop("mode"),
                             **kwargs)
    if kind == "merge":
        return naive_merge(states, mask, sizes, extra, **kwargs)
    return naive_prune(states, mask, sizes, extra, kwargs.pop("keep"), **kwargs)


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("sized", [False, True])
@pytest.mark.parametrize(("kind", "kwargs"), CASES)
def test_matches_naive_loop(kind, kwargs, lengths, side, sized):
    states, mask, sizes = make_batch(lengths, max(lengths) + 1, side=side, sized=sized)
    extra = _extra(kind, states)
    result = _call(kind, states, mask, sizes, extra, **kwargs)
    assert_matches(result, _naive(kind, states, mask, sizes, extra, **dict(kwargs)))


@pytest.mark.parametrize(("kind", "kwargs"), CASES)
def test_left_and_right_padding_identical(kind, kwargs):
    states, mask, sizes = make_batch([6, 3, 8, 1], 10, side="left", sized=True)
    extra = _extra(kind, states)
    right = [_to_right_padding(t, mask) if t is not None else None for t in (states, mask, sizes)]
    right_extra = _to_right_padding(extra, mask) if extra is not None else None
    left_result = _call(kind, states, mask, sizes, extra, **kwargs)
    right_result = _call(kind, *right, right_extra, **kwargs)
    for got, expected in zip(left_result, right_result, strict=True):
        assert torch.equal(got, expected)


@pytest.mark.parametrize(("kind", "kwargs"), CASES)
def test_sizes_sum_to_real_tokens(kind, kwargs):
    states, mask, _ = make_batch([11, 4, 0, 7], 12, side="right")
    result = _call(kind, states, mask, None, _extra(kind, states), **kwargs)
    assert result.sizes.sum(1).tolist() == mask.sum(1).double().tolist()
    assert torch.equal(result.attention_mask, result.sizes > 0)


def test_worked_examples():
    """Hand-worked values: one row [CLS=0, a=1, b=2, c=3, SEP=4] (H=1)."""
    states = torch.arange(5.0).view(1, 5, 1)
    strided = strided_reduce(states, ratio=2)
    assert strided.states.flatten().tolist() == [0.0, 1.5, 3.0, 4.0]  # (1 + 2) / 2 = 1.5
    assert strided.sizes.flatten().tolist() == [1.0, 2.0, 1.0, 1.0]
    # sizes [1, 1, 3, 1, 1]: the window (a, b) averages to (1*1 + 3*2) / (1 + 3) = 7/4
    weighted = strided_reduce(states, sizes=torch.tensor([[1.0, 1, 3, 1, 1]]), ratio=2)
    assert weighted.states.flatten().tolist() == [0.0, 1.75, 3.0, 4.0]
    # merge: A = {a, c}, B = {b}; a and c are equally similar to b (1-d metric, cosine 1):
    # r=1 merges the earlier, a, into b: (1 + 2) / 2 = 1.5
    merged = merge_tokens(states, None, torch.ones(1, 5, 1), r=1)
    assert merged.states.flatten().tolist() == [0.0, 1.5, 3.0, 4.0]
    assert merged.sizes.flatten().tolist() == [1.0, 2.0, 1.0, 1.0]
    # prune keep=1/3 of the 3 free tokens: b is the most important; a and c fuse to 2, at the end
    pruned = prune_tokens(states, None, torch.tensor([[9.0, 0.1, 0.5, 0.2, 9.0]]), keep=1 / 3)
    assert pruned.states.flatten().tolist() == [0.0, 2.0, 4.0, 2.0]
    assert pruned.sizes.flatten().tolist() == [1.0, 1.0, 1.0, 2.0]


def test_short_rows_keep_every_token():
    states, mask, _ = make_batch([3, 2, 1], 3)
    for result in (merge_tokens(states, mask, states, r=5),
                   prune_tokens(states, mask, torch.rand(3, 3), keep=0.1)):
        assert torch.equal(result.states, states.masked_fill(mask[..., None] == 0, 0.0))
        assert torch.equal(result.sizes, mask.double())


def test_r_zero_and_ratio_one_are_identity():
    states, mask, _ = make_batch([5, 5], 5)
    for result in (merge_tokens(states, mask, states, r=0), strided_reduce(states, mask, ratio=1)):
        assert torch.equal(result.states, states)
        assert torch.equal(result.sizes, mask.double())


def test_protected_tokens_left_padded():
    first, last = protected_tokens(torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 0, 1]]))
    assert first.long().tolist() == [[0, 0, 1, 0, 0], [0, 0, 0, 0, 1]]
    assert last.long().tolist() == [[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]


def test_attention_bias_is_log_size_and_masks_pads():
    bias = attention_bias(torch.tensor([[1, 1, 0]]), torch.tensor([[1.0, 4.0, 0.0]]))
    assert bias.shape == (1, 1, 1, 3)
    assert bias[0, 0, 0, :2].tolist() == pytest.approx([0.0, math.log(4.0)])
    assert float(bias[0, 0, 0, 2]) == torch.finfo(torch.float32).min
    assert attention_bias(torch.tensor([[1, 0]]))[0, 0, 0, 0] == 0


def test_proportional_attention_counts_a_token_as_its_size():
    """Attention over [x (size 2), y] equals attention over the unmerged [x, x, y]."""
    torch.manual_seed(0)
    q, keys, values = torch.randn(1, 1, 1, 4), torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 4)
    merged = torch.nn.functional.scaled_dot_product_attention(
        q, keys, values, attn_mask=attention_bias(torch.ones(1, 2), torch.tensor([[2.0, 1.0]])))
    expanded = torch.nn.functional.scaled_dot_product_attention(
        q, keys[:, :, [0, 0, 1]], values[:, :, [0, 0, 1]])
    torch.testing.assert_close(merged, expanded)


# ---------------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize(("kind", "kwargs"), [c for c in CASES if c[1].get("mode") != "max"]
                         + [("strided", {"ratio": 2, "mode": "max"})])
def test_gradcheck(kind, kwargs):
    states, mask, sizes = make_batch([5, 3], 6, hidden=2, side="left", sized=True)
    states = states.masked_fill(mask[..., None] == 0, 0.0).requires_grad_(True)
    extra = _extra(kind, states.detach())
    assert torch.autograd.gradcheck(
        lambda x: _call(kind, x, mask, sizes, extra, **kwargs).states, (states,))


# ---------------------------------------------------------------------------------------------
# Properties and invalid arguments


@given(
    lengths=st.lists(st.integers(0, 9), min_size=1, max_size=4),
    extra_width=st.integers(0, 3),
    side=st.sampled_from(["left", "right"]),
    case=st.sampled_from(CASES),
    seed=st.integers(0, 1000),
)
def test_property_against_naive(lengths, extra_width, side, case, seed):
    kind, kwargs = case
    width = max(lengths) + extra_width
    states, mask, sizes = make_batch(lengths, width, side=side, seed=seed, sized=True)
    extra = _extra(kind, states, seed)
    result = _call(kind, states, mask, sizes, extra, **kwargs)
    assert_matches(result, _naive(kind, states, mask, sizes, extra, **dict(kwargs)))
    assert result.sizes.sum(1).tolist() == pytest.approx(sizes.sum(1).tolist())


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda x, m: strided_reduce(x, m, ratio=0), "ratio"),
        (lambda x, m: strided_reduce(x, m, ratio=2.0), "ratio"),
        (lambda x, m: strided_reduce(x, m, mode="min"), "mode"),
        (lambda x, m: strided_reduce(x[0], m), "states"),
        (lambda x, m: strided_reduce(x, m[:, :2]), "attention_mask"),
        (lambda x, m: strided_reduce(x, m, sizes=torch.ones(3)), "sizes"),
        (lambda x, m: merge_tokens(x, m, x, r=-1), "r"),
        (lambda x, m: merge_tokens(x, m, x, r=True), "r"),
        (lambda x, m: merge_tokens(x, m, x[:, :2], r=1), "metric"),
        (lambda x, m: merge_tokens(x, m, x, rate=0.6), "rate"),
        (lambda x, m: merge_tokens(x, m, x, r=1, rate=0.2), "exactly one of r"),
        (lambda x, m: merge_tokens(x, m, x), "exactly one of r"),
        (lambda x, m: prune_tokens(x, m, m.double(), keep=0.0), "keep"),
        (lambda x, m: prune_tokens(x, m, m.double(), keep=1.5), "keep"),
        (lambda x, m: prune_tokens(x, m, m[:, :1].double(), keep=0.5), "importance"),
    ],
)
def test_bad_arguments_raise_value_error(call, name):
    states, mask, _ = make_batch([4, 2], 4)
    with pytest.raises(ValueError, match=name):
        call(states, mask)
