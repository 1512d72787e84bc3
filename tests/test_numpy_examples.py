"""The worked examples: each one's stated output is what poolkit.numpy computes, and what
torch computes (the examples are hand-checked; this keeps them honest)."""

from __future__ import annotations

import numpy as np
import pytest

from poolkit.geometry import pool_output_size
from poolkit.numpy.examples import format_example, get_example, run_example, worked_examples

EXAMPLES = worked_examples()


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_output_is_what_the_engine_computes(example):
    result = run_example(example)
    if example.expected_indices is not None:
        values, indices = result
        np.testing.assert_array_equal(indices, example.expected_indices)
    else:
        values = result
    np.testing.assert_allclose(values, example.expected, rtol=1e-12)
    text = format_example(example)
    assert example.title in text and "by hand" in text


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_output_is_what_torch_computes(example):
    torch = pytest.importorskip("torch")
    kwargs = dict(example.kwargs)
    x = torch.tensor(example.input, dtype=torch.float64)
    fn = getattr(torch.nn.functional, example.op)
    if "indices" in kwargs:
        out = fn(x, torch.tensor(kwargs.pop("indices")), **kwargs)
    else:
        out = fn(x, **kwargs)
    values = out[0] if isinstance(out, tuple) else out
    np.testing.assert_allclose(values.numpy(), example.expected, rtol=1e-12)


def test_tutorial_values_and_its_truncation_mistake():
    avg = get_example("tutorial_avg")
    assert avg.expected == [[[3.5, 5.5], [11.5, 13.5]]]
    # the tutorial's printed 3 5 / 11 13 is what integer truncation of the true means gives
    assert np.trunc(np.asarray(avg.expected)).tolist() == [[[3, 5], [11, 13]]]
    assert "truncated" in avg.note
    assert get_example("tutorial_max").expected == [[[6.0, 8.0], [14.0, 16.0]]]


def test_ceil_mode_example_drops_the_window_starting_in_the_padding():
    size = pool_output_size(5, 2, 2, padding=1, ceil_mode=True)
    assert size.dropped_last and size.size == get_example("ceil_mode_padding_max").extra[
        "output_size"]


def test_unknown_example_lists_the_names():
    with pytest.raises(ValueError, match="tutorial_max"):
        get_example("nope")
