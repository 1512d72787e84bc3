"""Worked examples of pooling, as data: small inputs with results a reader can check by hand.

Used by the docs (``docs/numpy-engine.md``), the tests, and the CLI (``poolkit explain`` /
``poolkit demo``), which print them. Each :class:`WorkedExample` names a ``poolkit.numpy``
function and its arguments, the expected output, and how to get it by hand;
:func:`run_example` computes it with the engine, :func:`format_example` renders it as text.

The first two are the tutorial's 4x4 example. Note that the tutorial poolkit started from
printed ``3 5 / 11 13`` for average pooling: it stored the input as integers and truncated the
means. The means of the windows ``{1, 2, 5, 6}``, ``{3, 4, 7, 8}``, ... are
``3.5, 5.5, 11.5, 13.5``.

>>> [e.name for e in worked_examples()][:2]
['tutorial_max', 'tutorial_avg']
>>> run_example(get_example("tutorial_avg")).tolist()
[[[3.5, 5.5], [11.5, 13.5]]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["WorkedExample", "worked_examples", "get_example", "run_example", "format_example"]

_TUTORIAL = [[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0],
              [13.0, 14.0, 15.0, 16.0]]]


@dataclass(frozen=True)
class WorkedExample:
    """One worked example: ``op(input, **kwargs) == expected``.

    ``input`` is a nested list shaped ``(C, *spatial)`` (unbatched, one channel), ``op`` the
    name of a ``poolkit.numpy`` function; ``expected`` is its output (and ``expected_indices``
    the indices, for ops called with ``return_indices=True``). ``by_hand`` says how to get the
    numbers without a computer.
    """

    name: str
    title: str
    op: str
    input: list
    kwargs: dict[str, Any]
    expected: list
    by_hand: str
    expected_indices: list | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_EXAMPLES = (
    WorkedExample(
        name="tutorial_max",
        title="Max pooling, 2x2 window, stride 2, on the 4x4 input 1..16",
        op="max_pool2d",
        input=_TUTORIAL,
        kwargs={"kernel_size": 2, "stride": 2, "return_indices": True},
        expected=[[[6.0, 8.0], [14.0, 16.0]]],
        expected_indices=[[[5, 7], [13, 15]]],
        by_hand="windows {1,2,5,6} {3,4,7,8} / {9,10,13,14} {11,12,15,16}: the maxima are "
                "6 8 / 14 16, at flat positions 5 7 / 13 15 of the 4x4 plane",
    ),
    WorkedExample(
        name="tutorial_avg",
        title="Average pooling, 2x2 window, stride 2, on the 4x4 input 1..16",
        op="avg_pool2d",
        input=_TUTORIAL,
        kwargs={"kernel_size": 2, "stride": 2},
        expected=[[[3.5, 5.5], [11.5, 13.5]]],
        by_hand="(1+2+5+6)/4 = 3.5, (3+4+7+8)/4 = 5.5, (9+10+13+14)/4 = 11.5, "
                "(11+12+15+16)/4 = 13.5",
        note="The tutorial printed 3 5 / 11 13: it kept integers and truncated the means.",
    ),
    WorkedExample(
        name="lp_p2",
        title="Lp pooling with p = 2, 2x2 window, stride 2",
        op="lp_pool2d",
        input=[[[3.0, 0.0, 1.0, 2.0], [0.0, 4.0, 2.0, 4.0]]],
        kwargs={"norm_type": 2, "kernel_size": 2, "stride": 2},
        expected=[[[5.0, 5.0]]],
        by_hand="sqrt(3^2 + 0^2 + 0^2 + 4^2) = sqrt(25) = 5, "
                "sqrt(1^2 + 2^2 + 2^2 + 4^2) = sqrt(25) = 5",
    ),
    WorkedExample(
        name="ceil_mode_padding_max",
        title="Max pooling with padding 1 and ceil_mode: the window starting in the padding "
              "is dropped",
        op="max_pool1d",
        input=[[1.0, 2.0, 3.0, 4.0, 5.0]],
        kwargs={"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True,
                "return_indices": True},
        expected=[[1.0, 3.0, 5.0]],
        expected_indices=[[0, 2, 4]],
        by_hand="ceil((5 + 2*1 - 1*(2-1) - 1) / 2) + 1 = 3 + 1 = 4 windows would start at "
                "-1, 1, 3, 5; the last starts at 5, in the right padding (the input is "
                "positions 0..4), so PyTorch drops it: 3 windows [pad,1] [2,3] [4,5], maxima "
                "1 3 5 at positions 0 2 4",
        extra={"output_size": 3},
    ),
    WorkedExample(
        name="ceil_mode_padding_avg",
        title="Average pooling with padding 1 and ceil_mode (count_include_pad=True)",
        op="avg_pool1d",
        input=[[1.0, 2.0, 3.0, 4.0, 5.0]],
        kwargs={"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True},
        expected=[[0.5, 2.5, 4.5]],
        by_hand="the same 3 windows [pad,1] [2,3] [4,5]; padding counts in the divisor: "
                "(0+1)/2 = 0.5, (2+3)/2 = 2.5, (4+5)/2 = 4.5",
    ),
    WorkedExample(
        name="adaptive_avg_uneven",
        title="Adaptive average pooling of 5 values into 3 bins (3 does not divide 5)",
        op="adaptive_avg_pool1d",
        input=[[1.0, 2.0, 3.0, 4.0, 5.0]],
        kwargs={"output_size": 3},
        expected=[[1.5, 3.0, 4.5]],
        by_hand="bins [floor(i*5/3), ceil((i+1)*5/3)) = [0,2) [1,4) [3,5): neighbours share an "
                "element; means (1+2)/2 = 1.5, (2+3+4)/3 = 3, (4+5)/2 = 4.5",
    ),
    WorkedExample(
        name="max_unpool",
        title="Max unpooling puts each maximum back where it came from",
        op="max_unpool1d",
        input=[[3.0, 2.0, 5.0]],
        kwargs={"indices": [[1, 2, 4]], "kernel_size": 2},
        expected=[[0.0, 3.0, 2.0, 0.0, 5.0, 0.0]],
        by_hand="max_pool1d([1, 3, 2, 0, 5, 4], 2) gives 3 2 5 at positions 1 2 4; unpooling "
                "writes them back there into (3-1)*2 + 2 = 6 zeros",
    ),
)


def worked_examples() -> list[WorkedExample]:
    """All worked examples, in teaching order."""
    return list(_EXAMPLES)


def get_example(name: str) -> WorkedExample:
    """The example called ``name`` (``ValueError`` listing the names otherwise)."""
    for example in _EXAMPLES:
        if example.name == name:
            return example
    names = ", ".join(e.name for e in _EXAMPLES)
    raise ValueError(f"unknown worked example {name!r}; choose one of: {names}")


def run_example(example: WorkedExample):
    """Compute the example with ``poolkit.numpy``: the output array, or ``(output, indices)``
    when the example asks for indices."""
    import poolkit.numpy as pnp

    kwargs = dict(example.kwargs)
    x = np.asarray(example.input, dtype=np.float64)
    if "indices" in kwargs:
        kwargs["indices"] = np.asarray(kwargs["indices"], dtype=np.int64)
        return getattr(pnp, example.op)(x, kwargs.pop("indices"), **kwargs)
    return getattr(pnp, example.op)(x, **kwargs)


def _grid(values) -> str:
    array = np.asarray(values)
    array = array.reshape(array.shape[-2:]) if array.ndim > 2 else array.reshape(1, -1)
    return "\n".join("  " + " ".join(f"{v:g}" for v in row) for row in array)


def format_example(example: WorkedExample) -> str:
    """The example as plain text: title, input, call, output, and how to check it by hand."""
    args = ", ".join(f"{k}={v!r}" for k, v in example.kwargs.items() if k != "indices")
    lines = [example.title, "input:", _grid(example.input),
             f"poolkit.numpy.{example.op}(input, {args})", "output:", _grid(example.expected)]
    if example.expected_indices is not None:
        lines += ["indices:", _grid(example.expected_indices)]
    lines.append(f"by hand: {example.by_hand}")
    if example.note:
        lines.append(f"note: {example.note}")
    return "\n".join(lines)
