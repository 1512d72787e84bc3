"""poolkit.geometry: output sizes, validation, window tables, adaptive bins, fractional
intervals, unpool sizes. Hand-worked tables first, then properties against brute force and
against PyTorch's own output sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolkit.geometry import (
    adaptive_bins,
    adaptive_windows,
    check_fractional_sizes,
    check_input_shape,
    fractional_intervals,
    fractional_output_size,
    normalize_output_size,
    normalize_tuple,
    pool_geometry,
    pool_output_shape,
    pool_output_size,
    unpool_output_size,
)

# (L, k, s, p, d, ceil_mode) -> output size, each worked by hand:
#   floor((L + 2p - d(k-1) - 1) / s) + 1, or ceil(...) + 1 less a window starting in the padding.
OUTPUT_SIZE_TABLE = [
    ((4, 2, 2, 0, 1, False), 2),  # the tutorial: 4x4 input, 2x2 window, stride 2
    ((112, 2, 2, 0, 1, False), 56),
    ((112, 3, 2, 1, 1, False), 56),  # floor((112 + 2 - 2 - 1) / 2) + 1 = 55 + 1
    ((5, 2, 2, 0, 1, False), 2),  # floor(3 / 2) + 1: the last element is never read
    ((5, 2, 2, 0, 1, True), 3),  # ceil(3 / 2) + 1 = 3: window [4] half outside, kept
    ((5, 2, 2, 1, 1, False), 3),  # floor(5 / 2) + 1 = 3: windows start at -1, 1, 3
    # ceil(5 / 2) + 1 = 4, but window 3 would start at 6 >= L + p = 6: dropped -> 3
    ((5, 2, 2, 1, 1, True), 3),
    ((6, 3, 2, 1, 1, True), 4),  # ceil(5 / 2) + 1 = 4; last starts at 6 < 7: kept
    ((7, 3, 1, 0, 2, False), 3),  # dilated span d(k-1)+1 = 5: floor(2 / 1) + 1
    ((10, 3, 3, 0, 1, True), 4),  # ceil(7 / 3) + 1 = 4; last starts at 9 < 10: kept
    ((1, 1, 1, 0, 1, False), 1),
    ((3, 3, 1, 1, 1, False), 3),  # "same" pooling
]


@pytest.mark.parametrize(("args", "expected"), OUTPUT_SIZE_TABLE)
def test_output_size_table(args, expected):
    assert pool_output_size(*args).size == expected


def test_dropped_last_window_is_reported_and_explained():
    size = pool_output_size(5, 2, 2, padding=1, ceil_mode=True)
    assert (size.raw, size.dropped_last, size.size) == (4, True, 3)
    text = size.explain()
    assert "ceil((5 + 2*1 - 1*(2-1) - 1) / 2) + 1" in text
    assert "dropped" in text and text.endswith(": 3")
    kept = pool_output_size(6, 3, 2, padding=1, ceil_mode=True)
    assert not kept.dropped_last and "dropped" not in kept.explain()


def test_floor_mode_explain_and_effective_kernel():
    size = pool_output_size(112, 3, 2, padding=1)
    assert size.explain() == (
        "floor((L + 2p - d(k-1) - 1) / s) + 1 = floor((112 + 2*1 - 1*(3-1) - 1) / 2) + 1 = "
        "55 + 1 = 56"
    )
    assert pool_output_size(7, 3, 1, dilation=2).effective_kernel_size == 5


def test_geometry_explain_has_one_line_per_dim():
    geometry = pool_geometry((5, 6), (2, 3), 2, (1, 0), ceil_mode=True)
    assert geometry.output_size == (3, 3)
    assert geometry.explain().count("\n") == 1
    assert pool_output_shape((112, 112), 3, 2, 1) == (56, 56)


def test_stride_defaults_to_kernel():
    assert pool_geometry((8,), 3).stride == (3,)
    assert pool_geometry((8, 8), (2, 4), stride=[]).stride == (2, 4)


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"kernel_size": 0}, ValueError, ["kernel_size (0)", "greater than zero"]),
        ({"kernel_size": -2}, ValueError, ["kernel_size (-2)"]),
        ({"kernel_size": 2, "stride": 0}, ValueError, ["stride (0)"]),
        ({"kernel_size": 2, "dilation": 0}, ValueError, ["dilation (0)"]),
        ({"kernel_size": 2, "padding": -1}, ValueError, ["padding (-1)", "non-negative"]),
        (
            {"kernel_size": 5, "padding": 3},
            ValueError,
            ["padding (3)", "half the kernel size (5 // 2 = 2)", "dim 0"],
        ),
        ({"kernel_size": 2, "padding": (0, 2)}, ValueError, ["padding (2)", "dim 1"]),
        ({"kernel_size": 9}, ValueError, ["input size (8)", "too small", "kernel_size=9"]),
        ({"kernel_size": 2.5}, TypeError, ["kernel_size", "float"]),
        ({"kernel_size": True}, TypeError, ["kernel_size", "bool"]),
        ({"kernel_size": "2"}, TypeError, ["kernel_size", "str"]),
        ({"kernel_size": (2, 2, 2)}, ValueError, ["kernel_size", "1 or 2 ints", "3"]),
        ({"kernel_size": 2, "stride": (1, 1.5)}, TypeError, ["stride", "float"]),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, exc, words):
    with pytest.raises(exc) as info:
        pool_geometry((8, 8), **kwargs)
    for word in words:
        assert word in str(info.value)


def test_padding_rule_is_half_the_kernel_not_the_dilated_span():
    # PyTorch checks pad <= k // 2 (not half the dilated span): k=3, d=2 allows only pad 1.
    assert pool_geometry((9,), 3, 1, 1, dilation=2).output_size == (7,)
    with pytest.raises(ValueError, match="padding"):
        pool_geometry((9,), 3, 1, 2, dilation=2)


def test_normalize_tuple():
    assert normalize_tuple(2, 3, "k") == (2, 2, 2)
    assert normalize_tuple((3,), 2, "k") == (3, 3)
    assert normalize_tuple([1, 2], 2, "k") == (1, 2)
    with pytest.raises(ValueError, match="sequence of 1 ints"):
        normalize_tuple((2, 2), 1, "kernel_size")


def test_check_input_shape():
    assert check_input_shape((2, 3, 4, 4), 2, "max_pool2d") is True
    assert check_input_shape((3, 4, 4), 2, "max_pool2d") is False
    assert check_input_shape((0, 3, 4, 4), 2, "max_pool2d") is True  # empty batch
    with pytest.raises(ValueError, match="3 \\(unbatched"):
        check_input_shape((4, 4), 2, "max_pool2d")
    with pytest.raises(ValueError, match="channel"):
        check_input_shape((1, 0, 4, 4), 2, "max_pool2d")
    assert check_input_shape((1, 0, 4, 4), 2, "adaptive_avg_pool2d", empty_channels_ok=True)
    with pytest.raises(ValueError, match="spatial dim 1"):
        check_input_shape((1, 2, 4, 0), 2, "max_pool2d")


# --- window tables -------------------------------------------------------------------------


def test_window_positions_hand_worked():
    # L=5, k=3, s=2, p=1: windows start at -1, 1, 3 and read [-1,0,1], [1,2,3], [3,4,5].
    windows = pool_geometry((5,), 3, 2, 1, ceil_mode=True).windows(0)
    assert windows.starts == (-1, 1, 3)
    assert [windows.positions(o) for o in range(3)] == [[-1, 0, 1], [1, 2, 3], [3, 4, 5]]
    assert [windows.valid_positions(o) for o in range(3)] == [[0, 1], [1, 2, 3], [3, 4]]
    # divisors of avg pooling: count_include_pad=True counts [-p, L+p), False counts [0, L)
    assert [windows.count(o, 1) for o in range(3)] == [3, 3, 3]
    assert [windows.count(o, 0) for o in range(3)] == [2, 3, 2]
    assert [windows.first_valid(o) for o in range(3)] == [0, 1, 3]


def test_first_valid_of_a_dilated_all_padding_window():
    # L=2, k=2, d=3, p=1: the window reads -1 and 2, both padding; PyTorch's initial argmax
    # position is -1 stepped by 3 to 2 (past the input).
    windows = pool_geometry((2,), 2, 1, 1, dilation=3).windows(0)
    assert windows.positions(0) == [-1, 2] and windows.first_valid(0) == 2


@given(
    L=st.integers(1, 30), k=st.integers(1, 6), s=st.integers(1, 4), d=st.integers(1, 3),
    p_frac=st.floats(0, 1), ceil=st.booleans(),
)
def test_offset_ranges_match_brute_force(L, k, s, d, p_frac, ceil):
    p = int(p_frac * (k // 2))
    size = pool_output_size(L, k, s, p, d, ceil).size
    if size < 1:
        return
    windows = pool_geometry((L,), k, s, p, d, ceil).windows(0)
    seen = {}
    for j, o_lo, o_hi, i_lo in windows.offset_ranges():
        for o in range(o_lo, o_hi):
            seen[(o, j)] = i_lo + (o - o_lo) * s
    expected = {
        (o, j): o * s - p + j * d
        for o in range(size) for j in range(k) if 0 <= o * s - p + j * d < L
    }
    assert seen == expected
    # ceil mode never lets a window start in the right padding
    assert windows.starts[-1] < L + p


@given(L=st.integers(1, 60), k=st.integers(1, 8), s=st.integers(1, 5), d=st.integers(1, 3),
       p_frac=st.floats(0, 1), ceil=st.booleans())
def test_output_size_matches_torch(L, k, s, d, p_frac, ceil):
    torch = pytest.importorskip("torch")
    p = int(p_frac * (k // 2))
    ours = pool_output_size(L, k, s, p, d, ceil).size
    try:
        theirs = torch.nn.functional.max_pool1d(
            torch.zeros(1, 1, L), k, s, p, d, ceil_mode=ceil
        ).shape[-1]
    except RuntimeError:
        theirs = None
    if theirs is None:
        assert ours < 1
        with pytest.raises(ValueError, match="too small"):
            pool_geometry((L,), k, s, p, d, ceil)
    else:
        assert ours == theirs


# --- adaptive ------------------------------------------------------------------------------


def test_adaptive_bins_hand_worked():
    # L=5, o=3: starts floor(0), floor(5/3)=1, floor(10/3)=3; ends ceil(5/3)=2, ceil(10/3)=4, 5
    assert adaptive_bins(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive_bins(10, 3) == [(0, 4), (3, 7), (6, 10)]
    assert adaptive_bins(4, 2) == [(0, 2), (2, 4)]
    assert adaptive_bins(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]  # more bins than inputs
    assert adaptive_bins(3, 0) == []


def test_adaptive_windows_regular_when_dividing():
    assert adaptive_windows(6, 3).stride == 2 and adaptive_windows(6, 3).lengths is None
    irregular = adaptive_windows(5, 3)
    assert irregular.stride is None and irregular.lengths == (2, 3, 2)
    assert irregular.kernel_size == 3


@given(L=st.integers(1, 50), o=st.integers(1, 50))
def test_adaptive_bins_cover_the_input(L, o):
    bins = adaptive_bins(L, o)
    assert bins[0][0] == 0 and bins[-1][1] == L
    assert all(b < e for b, e in bins)
    assert all(b2 <= e1 for (_, e1), (b2, _) in zip(bins, bins[1:], strict=False))


def test_normalize_output_size():
    assert normalize_output_size(3, 2) == (3, 3)
    assert normalize_output_size((None, 2), 2, (5, 6)) == (5, 2)
    assert normalize_output_size(0, 1) == (0,)
    with pytest.raises(ValueError, match=r"output_size \(-1\)"):
        normalize_output_size((2, -1), 2)
    with pytest.raises(TypeError, match="output_size"):
        normalize_output_size(2.0, 1)
    with pytest.raises(TypeError, match="output_size"):
        normalize_output_size(None, 1)
    with pytest.raises(ValueError, match="sequence of 2"):
        normalize_output_size((2,), 2)


# --- fractional ----------------------------------------------------------------------------


def test_fractional_intervals_hand_worked():
    # L=10, k=2, o=4: alpha = 8/3; u=0.5: int((i+0.5)*8/3) - int(0.5*8/3) = [1,4,6]-1, last 8
    assert fractional_intervals(0.5, 10, 4, 2) == [0, 3, 5, 8]
    assert fractional_intervals(0.0, 10, 4, 2) == [0, 2, 5, 8]
    assert fractional_intervals(0.3, 7, 1, 3) == [4]  # one output: the last window only
    assert fractional_intervals(0.3, 7, 0, 3) == []


def test_fractional_intervals_are_computed_in_the_input_precision():
    # alpha = 24/11; for i = 6, (6 + 0.875) * alpha is exactly 15 in real arithmetic. float64
    # rounds it just below 15 (start 14 - 1 = 13), float32 to 15.0 (start 14); PyTorch agrees
    # with each in its dtype (checked against torch in test_numpy_fractional.py).
    assert fractional_intervals(0.875, 26, 12, 2, "float32")[6] == 14
    assert fractional_intervals(0.875, 26, 12, 2, "float64")[6] == 13
    with pytest.raises(ValueError, match="precision"):
        fractional_intervals(0.5, 10, 4, 2, "float8")


def test_fractional_intervals_match_torch():
    torch = pytest.importorskip("torch")
    import random

    rng = random.Random(0)
    for _ in range(200):
        dtype = rng.choice([torch.float32, torch.float64])
        Lh, Lw = rng.randint(2, 30), rng.randint(2, 30)
        kh, kw = rng.randint(1, min(4, Lh)), rng.randint(1, min(4, Lw))
        oh, ow = rng.randint(1, Lh - kh + 1), rng.randint(1, Lw - kw + 1)
        samples = torch.rand(1, 1, 2, dtype=dtype)
        x = torch.arange(Lh * Lw, dtype=dtype).reshape(1, 1, Lh, Lw)
        _, index = torch.nn.functional.fractional_max_pool2d(
            x, (kh, kw), output_size=(oh, ow), return_indices=True, _random_samples=samples
        )
        precision = str(dtype).removeprefix("torch.")
        # sample 0 drives the width, sample 1 the height (as in PyTorch)
        starts_w = fractional_intervals(samples[0, 0, 0].item(), Lw, ow, kw, precision)
        starts_h = fractional_intervals(samples[0, 0, 1].item(), Lh, oh, kh, precision)
        expected = [[(a + kh - 1) * Lw + b + kw - 1 for b in starts_w] for a in starts_h]
        assert index[0, 0].tolist() == expected


def test_fractional_output_size_and_checks():
    assert fractional_output_size((10, 9), 4, None) == (4, 4)
    assert fractional_output_size((10, 9), None, 0.5) == (5, 4)
    assert fractional_output_size((10, 9), None, (0.5, 1.0)) == (5, 9)
    assert fractional_output_size((10, 9), (3, 2), 0.5) == (3, 2)  # output_size wins
    with pytest.raises(ValueError, match="output_size or output_ratio"):
        fractional_output_size((10, 9), None, None)
    with pytest.raises(ValueError, match=r"output_ratio \(1.5\)"):
        fractional_output_size((10, 9), None, 1.5)
    with pytest.raises(ValueError, match="output_ratio"):
        fractional_output_size((10, 9), None, (0.5, 0.5, 0.5))
    check_fractional_sizes((10, 9), (3, 3), (8, 7))
    check_fractional_sizes((6, 6, 6), (2, 2, 2), (4, 4, 4))
    with pytest.raises(ValueError, match="< input size"):  # 3-d: strict, as in PyTorch
        check_fractional_sizes((6, 6, 6), (2, 2, 2), (5, 4, 4))
    with pytest.raises(ValueError, match=r"kernel_size \(3\) is too large"):
        check_fractional_sizes((10, 9), (3, 3), (8, 8))


# --- unpool --------------------------------------------------------------------------------


def test_unpool_output_size():
    assert unpool_output_size((2, 2), 2) == (4, 4)  # (2-1)*2 + 2 - 0
    assert unpool_output_size((3,), 3, 2, 1) == (5,)  # (3-1)*2 + 3 - 2
    assert unpool_output_size((2, 2), 2, output_size=(5, 5)) == (5, 5)
    assert unpool_output_size((2, 2), 2, output_size=(1, 3, 5, 5)) == (5, 5)
    with pytest.raises(ValueError, match=r"output_size \(6\) in dim 0 must be strictly between 2"):
        unpool_output_size((2, 2), 2, output_size=(6, 5))
    with pytest.raises(ValueError, match="2 or 4 entries"):
        unpool_output_size((2, 2), 2, output_size=(5, 5, 5))
    with pytest.raises(ValueError, match=r"output size \(-2\)"):
        unpool_output_size((2, 2), 2, 2, 3)
    with pytest.raises(ValueError, match=r"stride \(0\)"):
        unpool_output_size((2, 2), 2, 0)
