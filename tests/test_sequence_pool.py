"""SequencePool against a naive per-example loop, over every mode and every padding layout."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from poolkit.nn.sequence import (
    LEARNED_MODES,
    POOLING_MODES,
    SequencePool,
    masked_kmax,
    prompt_exclude_mask,
)

FIXED_MODES = tuple(mode for mode in POOLING_MODES if mode not in LEARNED_MODES)
LEARNED_KWARGS = {
    "attention": {"num_heads": 2, "num_queries": 2},
    "latent_attention": {"num_heads": 2, "num_latents": 3, "mlp_dim": 8},
}
GARBAGE = 1e3  # value at padded positions: a mode that reads a pad gets a visibly wrong answer


def make_pool(mode: str, hidden: int, dtype=torch.float64) -> SequencePool:
    torch.manual_seed(0)
    kwargs = {"k": 3} if mode == "kmax" else LEARNED_KWARGS.get(mode, {})
    return SequencePool(mode, hidden_size=hidden, **kwargs).to(dtype)


# ---------------------------------------------------------------------------------------------
# The independent reference: slice each example's real tokens in Python, pool them unpadded.


def _mha_reference(attention, queries, keys_values):
    """The same weights run through torch.nn.MultiheadAttention (unbatched, no mask)."""
    hidden = queries.shape[-1]
    mha = torch.nn.MultiheadAttention(hidden, attention.num_heads, batch_first=True)
    mha = mha.to(queries.dtype)
    with torch.no_grad():
        mha.in_proj_weight.copy_(
            torch.cat([attention.query.weight, attention.key.weight, attention.value.weight])
        )
        mha.in_proj_bias.copy_(
            torch.cat([attention.query.bias, attention.key.bias, attention.value.bias])
        )
        mha.out_proj.weight.copy_(attention.out.weight)
        mha.out_proj.bias.copy_(attention.out.bias)
        return mha(queries[None], keys_values[None], keys_values[None], need_weights=False)[0][0]


def naive_pool(pool: SequencePool, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    batch, _, hidden = states.shape
    rows = []
    for b in range(batch):
        real = states[b][mask[b] != 0]  # (n, H), in token order
        n = real.shape[0]
        pieces = []
        for mode in pool.modes:
            width = hidden * pool._part_mult(mode)
            if n == 0:
                pieces.append(torch.zeros(width, dtype=states.dtype))
            elif mode == "mean":
                pieces.append(real.mean(0))
            elif mode == "max":
                pieces.append(real.max(0).values)
            elif mode == "min":
                pieces.append(real.min(0).values)
            elif mode in ("cls", "first"):
                pieces.append(real[0])
            elif mode == "last":
                pieces.append(real[-1])
            elif mode == "weighted_mean":
                weights = torch.arange(1, n + 1, dtype=states.dtype)
                pieces.append((weights[:, None] * real).sum(0) / weights.sum())
            elif mode == "mean_sqrt_len":
                pieces.append(real.sum(0) / math.sqrt(n))
            elif mode == "kmax":
                k = pool.options["k"]
                kept = torch.zeros(k, hidden, dtype=states.dtype)
                for h in range(hidden):
                    picks = real[:, h].topk(min(k, n)).indices.sort().values
                    kept[: len(picks), h] = real[picks, h]
                pieces.append(kept.reshape(-1))
            elif mode == "attention":
                pma = pool.learned["attention"]
                seeds = pma.seeds[0]
                out = pma.attention.query(seeds) + _mha_reference(pma.attention, seeds, real)
                out = out + torch.relu(pma.feed_forward(out))
                pieces.append(out.reshape(-1))
            elif mode == "latent_attention":
                latent = pool.learned["latent_attention"]
                out = real + _mha_reference(latent.attention, real, latent.latents[0])
                out = out + latent.mlp(out)
                pieces.append(out.mean(0))
        rows.append(torch.cat(pieces))
    return torch.stack(rows)


def padded_batch(lengths, length, hidden, side, dtype=torch.float64, seed=0):
    """Real tokens of each row placed left, right, or at random positions; pads = GARBAGE."""
    gen = torch.Generator().manual_seed(seed)
    states = torch.full((len(lengths), length, hidden), GARBAGE, dtype=dtype)
    mask = torch.zeros(len(lengths), length, dtype=torch.long)
    tokens = []
    for b, n in enumerate(lengths):
        real = torch.randn(n, hidden, generator=gen, dtype=dtype)
        tokens.append(real)
        if side == "right":
            positions = torch.arange(n)
        elif side == "left":
            positions = torch.arange(length - n, length)
        else:  # "random": any non-contiguous placement
            positions = torch.randperm(length, generator=gen)[:n].sort().values
        states[b, positions] = real
        mask[b, positions] = 1
    return states, mask, tokens


ALL_MODES = POOLING_MODES + ("mean+max", "cls+last+kmax", "attention+mean")


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("side", ["left", "right", "random"])
def test_matches_naive_loop_for_every_padding(mode, side):
    lengths = [5, 1, 3, 0, 7]  # includes an empty row and a full one
    states, mask, _ = padded_batch(lengths, 7, 4, side)
    pool = make_pool(mode, 4)
    got = pool(states, mask)
    assert got.shape == (5, 4 * pool.feat_mult()) == (5, pool.output_dim)
    torch.testing.assert_close(got, naive_pool(pool, states, mask), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ALL_MODES)
def test_left_right_and_no_padding_agree(mode):
    pool = make_pool(mode, 4, torch.float32)
    lengths = [6, 2, 4]
    left, left_mask, _ = padded_batch(lengths, 6, 4, "left", torch.float32)
    right, right_mask, _ = padded_batch(lengths, 6, 4, "right", torch.float32)
    expected = pool(right, right_mask)
    torch.testing.assert_close(pool(left, left_mask), expected, rtol=1e-5, atol=1e-5)
    for b, n in enumerate(lengths):  # each row alone, without any padding
        alone = pool(right[b : b + 1, :n], None)
        torch.testing.assert_close(alone[0], expected[b], rtol=1e-5, atol=1e-5)


@given(
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=4),
    extra=st.integers(0, 3),
    hidden=st.integers(1, 5),
    mode=st.sampled_from(FIXED_MODES + ("mean+min", "last+weighted_mean")),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_random_masks_match_naive_loop(lengths, extra, hidden, mode, k, seed):
    length = max(lengths) + extra
    states, mask, _ = padded_batch(lengths, length, hidden, "random", seed=seed)
    pool = SequencePool(mode, **({"k": k} if "kmax" in mode else {}))
    torch.testing.assert_close(pool(states, mask), naive_pool(pool, states, mask))


# ---------------------------------------------------------------------------------------------
# Hand-worked values


def test_hand_worked_values():
    # Left padding by two; real tokens 1 and 3.
    states = torch.tensor([[[9.0], [9.0], [1.0], [3.0]]])
    mask = torch.tensor([[0, 0, 1, 1]])
    value = {m: SequencePool(m)(states, mask).item() for m in FIXED_MODES if m != "kmax"}
    assert value["mean"] == 2.0  # (1 + 3) / 2
    assert value["weighted_mean"] == pytest.approx(7 / 3)  # (1*1 + 2*3) / (1 + 2)
    assert value["mean_sqrt_len"] == pytest.approx(4 / math.sqrt(2))
    assert value["cls"] == value["first"] == 1.0  # not the pad at position 0
    assert value["last"] == 3.0
    assert (value["max"], value["min"]) == (3.0, 1.0)
    assert SequencePool("kmax", k=2)(states, mask).tolist() == [[1.0, 3.0]]  # not the 9s
    # kmax keeps token order: [3, 1, 4, 1, 5], k = 2 -> the 4 and the 5, in that order.
    row = torch.tensor([[[3.0], [1.0], [4.0], [1.0], [5.0]]])
    assert masked_kmax(row, torch.ones(1, 5, dtype=torch.bool), 2).tolist() == [[4.0, 5.0]]
    # One real token (left-padded) and k = 3: the token, then zeros.
    one = torch.tensor([[[8.0], [7.0]]])
    assert SequencePool("kmax", k=3)(one, torch.tensor([[0, 1]])).tolist() == [[7.0, 0.0, 0.0]]


def test_docstring_example():
    pool = SequencePool("mean+last", hidden_size=4)
    x = torch.arange(12.0).view(1, 3, 4)
    assert pool(x, torch.tensor([[0, 1, 1]])).tolist() == [[6, 7, 8, 9, 8, 9, 10, 11]]


# ---------------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_gradcheck(mode):
    states, mask, _ = padded_batch([3, 1, 0], 4, 4, "left", seed=3)
    states = (states * (mask[..., None] != 0)).requires_grad_(True)  # finite pads for gradcheck
    pool = make_pool(mode, 4)
    assert torch.autograd.gradcheck(lambda x: pool(x, mask), (states,))
    if mode in LEARNED_MODES:  # and through the learned weights
        names = [name for name, _ in pool.named_parameters()]

        def with_weights(*weights):
            return torch.func.functional_call(
                pool, dict(zip(names, weights, strict=True)), (states.detach(), mask)
            )

        weights = tuple(p.detach().clone().requires_grad_(True) for p in pool.parameters())
        assert torch.autograd.gradcheck(with_weights, weights)


def test_pad_positions_get_no_gradient():
    states, mask, _ = padded_batch([2, 3], 5, 3, "left", seed=1)
    states.requires_grad_(True)
    SequencePool("mean+max+min+cls+last+weighted_mean+kmax")(states, mask).sum().backward()
    assert states.grad[mask == 0].abs().sum() == 0


# ---------------------------------------------------------------------------------------------
# Inputs never modified; empty rows; half precision


@pytest.mark.parametrize("mode", POOLING_MODES)
@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.long, torch.float32])
def test_inputs_are_not_modified(mode, mask_dtype):
    states, mask, _ = padded_batch([3, 0, 5], 5, 4, "left", torch.float32)
    mask = mask.to(mask_dtype)
    exclude = torch.zeros_like(mask)
    exclude[0, 2] = 1
    before = (states.clone(), mask.clone(), exclude.clone())
    states.requires_grad_(True)
    make_pool(mode, 4, torch.float32)(states, mask, exclude).sum().backward()
    assert torch.equal(states.detach(), before[0])
    assert torch.equal(mask, before[1]) and mask.dtype == mask_dtype
    assert torch.equal(exclude, before[2])


@pytest.mark.parametrize("mode", ALL_MODES)
def test_fully_masked_rows_give_zeros(mode):
    pool = make_pool(mode, 4, torch.float32)
    states = torch.randn(2, 3, 4)
    out = pool(states, torch.tensor([[0, 0, 0], [1, 1, 0]]))
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    empty = pool(torch.randn(2, 0, 4), torch.zeros(2, 0))  # T = 0
    assert torch.equal(empty, torch.zeros(2, pool.output_dim))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ALL_MODES)
def test_half_precision_is_finite_and_close(mode, dtype):
    pool = make_pool(mode, 8, torch.float32)
    states, mask, _ = padded_batch([6, 2, 0, 4], 6, 8, "left", torch.float32, seed=5)
    reference = pool(states, mask)
    got = pool(states.to(dtype), mask)
    assert got.dtype == dtype
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), reference, rtol=2e-2, atol=3e-2)
    pool.to(dtype)  # weights in half precision too
    assert torch.isfinite(pool(states.to(dtype), mask)).all()


@pytest.mark.parametrize("mode", ["mean", "weighted_mean", "max", "min", "kmax"])
def test_float16_sums_accumulate_in_float32(mode):
    # 64 tokens of 60000 (float16 max is 65504): a float16 running sum would overflow to inf.
    states = torch.full((1, 64, 2), 6.0e4, dtype=torch.float16)
    out = SequencePool(mode)(states, torch.ones(1, 64))
    assert out.float().unique().tolist() == [6.0e4]


# ---------------------------------------------------------------------------------------------
# Excluding prompt tokens


def test_prompt_exclude_mask_counts_real_tokens():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]])
    got = prompt_exclude_mask(mask, [2, 1])
    assert got.tolist() == [[False, False, True, True, False], [True, False, False, False, False]]
    with pytest.raises(ValueError, match="prompt_lengths"):
        prompt_exclude_mask(mask, [1, 2, 3])


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_exclude_mask_pools_only_the_rest(mode, side):
    lengths = [5, 3, 2]
    prompt = [2, 1, 2]  # the last row is all prompt: pools to zeros
    states, mask, _ = padded_batch(lengths, 6, 4, side, seed=9)
    pool = make_pool(mode, 4)
    exclude = prompt_exclude_mask(mask, prompt)
    kept = mask.bool() & ~exclude
    torch.testing.assert_close(pool(states, mask, exclude), naive_pool(pool, states, kept))
    assert torch.equal(pool(states, mask, exclude)[2], torch.zeros(pool.output_dim).double())


# ---------------------------------------------------------------------------------------------
# Concatenation, sizes, config


def test_concatenation_is_blocks_in_order():
    states, mask, _ = padded_batch([3, 2], 4, 5, "left")
    both = SequencePool("mean+max+kmax", k=2)(states, mask)
    parts = [SequencePool(m, k=2) if m == "kmax" else SequencePool(m) for m in ("mean", "max")]
    parts.append(SequencePool("kmax", k=2))
    torch.testing.assert_close(both, torch.cat([p(states, mask) for p in parts], 1))
    assert SequencePool("mean+max+kmax", hidden_size=5, k=2).output_dim == 5 * 4
    assert SequencePool("attention", hidden_size=6, num_queries=3).feat_mult() == 3
    assert SequencePool("mean").output_dim is None


@pytest.mark.parametrize("mode", ALL_MODES)
def test_config_round_trip(mode):
    pool = make_pool(mode, 4, torch.float32)
    config = json.loads(json.dumps(pool.get_config()))
    rebuilt = SequencePool.from_config(config)
    assert rebuilt.get_config() == pool.get_config()
    assert rebuilt.get_pooling_mode_str() == pool.mode
    rebuilt.load_state_dict(pool.state_dict())
    states, mask, _ = padded_batch([2, 4], 4, 4, "right", torch.float32)
    torch.testing.assert_close(rebuilt(states, mask), pool(states, mask))


# ---------------------------------------------------------------------------------------------
# Invalid arguments


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: SequencePool("avg"), ValueError, "mode 'avg'.*valid modes are mean, max"),
        (lambda: SequencePool("mean+mean"), ValueError, "repeats"),
        (lambda: SequencePool(3), TypeError, "mode must be a string"),
        (lambda: SequencePool("attention"), ValueError, "needs hidden_size"),
        (
            lambda: SequencePool("attention", hidden_size=6, num_heads=4),
            ValueError,
            r"num_heads \(4\) must divide hidden_size \(6\)",
        ),
        (lambda: SequencePool("mean", k=3), ValueError, "k=3 applies to mode kmax"),
        (lambda: SequencePool("kmax", k=0), ValueError, r"k \(0\) must be at least 1"),
        (lambda: SequencePool("kmax", k=2.5), TypeError, "k must be an int"),
        (lambda: SequencePool("mean", window=3), TypeError, "unknown argument 'window'"),
        (lambda: SequencePool("mean", hidden_size=0), ValueError, "hidden_size"),
        (lambda: SequencePool.from_config({"hidden_size": 3}), ValueError, "no 'mode'"),
    ],
)
def test_invalid_construction(build, error, message):
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize(
    ("states", "mask", "exclude", "error", "message"),
    [
        (torch.zeros(2, 3), None, None, ValueError, r"hidden_states must have shape \(B, T, H\)"),
        (torch.zeros(2, 3, 4, dtype=torch.long), None, None, TypeError, "floating-point"),
        ([[[1.0]]], None, None, TypeError, "hidden_states must be a torch.Tensor"),
        (torch.zeros(2, 3, 4), torch.ones(2, 4), None, ValueError, r"attention_mask shape \(2, 4"),
        (torch.zeros(2, 3, 4), torch.ones(3), None, ValueError, "attention_mask shape"),
        (torch.zeros(2, 3, 4), [[1, 1, 1]], None, TypeError, "attention_mask must be"),
        (torch.zeros(2, 3, 4), None, torch.ones(1, 3), ValueError, "exclude_mask shape"),
        (torch.zeros(2, 3, 5), None, None, ValueError, r"last dim \(5\) must equal hidden_size"),
    ],
)
def test_invalid_inputs(states, mask, exclude, error, message):
    pool = SequencePool("mean+max", hidden_size=4)
    with pytest.raises(error, match=message):
        pool(states, mask, exclude)


@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=5),
    mask_shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
)
def test_any_shape_gives_a_result_or_a_named_error(shape, mask_shape):
    pool = SequencePool("mean+last+kmax")
    try:
        out = pool(torch.zeros(shape), torch.ones(mask_shape))
    except (ValueError, TypeError) as exc:
        assert "hidden_states" in str(exc) or "attention_mask" in str(exc)
    else:
        assert out.shape == (shape[0], shape[2] * pool.feat_mult())
