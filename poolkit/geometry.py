r"""Pooling geometry: argument handling and window arithmetic, in pure Python.

Everything poolkit knows about *where* a pooling window sits lives here, so that the NumPy
engine, the PyTorch layers, the docs, the CLI (``poolkit explain``) and the error messages all
agree. Nothing here imports NumPy or torch; every function takes and returns plain ints,
tuples and small frozen dataclasses.

Windowed pooling (max, avg, Lp) along one spatial dimension of size :math:`L`, with kernel size
:math:`k`, stride :math:`s`, padding :math:`p` and dilation :math:`d`: output position :math:`o`
reads the input positions

.. math::

    i(o, j) = o \cdot s - p + j \cdot d, \qquad j = 0, \dots, k - 1,

and the number of output positions is

.. math::

    L_{out} = \left\lfloor \frac{L + 2p - d(k - 1) - 1}{s} \right\rfloor + 1
    \quad\text{(floor mode)}, \qquad
    L_{out} = \left\lceil \frac{L + 2p - d(k - 1) - 1}{s} \right\rceil + 1
    \quad\text{(ceil mode)},

where in ceil mode PyTorch's rule applies: a last window that would *start* in the right padding
(:math:`(L_{out} - 1) s \ge L + p`) is dropped. See :func:`pool_output_size` (returns the worked
arithmetic as :class:`OutputSize`) and :func:`pool_geometry` (validates everything at once).

Adaptive pooling (:func:`adaptive_bins`) splits :math:`L` into :math:`L_{out}` bins
:math:`[\lfloor iL/L_{out} \rfloor, \lceil (i+1)L/L_{out} \rceil)`; fractional max pooling
(:func:`fractional_intervals`, Graham 2014, https://arxiv.org/abs/1412.6071) places windows at
pseudo-random starts computed from one sample :math:`u \in [0, 1)` per plane and dimension
exactly like PyTorch's ``generate_intervals``; :func:`unpool_output_size` gives
``max_unpool``'s default output size :math:`(L - 1)s + k - 2p`.

Errors: a wrong *type* raises :class:`TypeError`, a wrong *value* raises :class:`ValueError`,
and every message names the argument, the value received and what is allowed, e.g.
``padding (3) must be at most half the kernel size (5 // 2 = 2) in dim 0``.

Example::

    >>> from poolkit.geometry import pool_output_size
    >>> pool_output_size(112, kernel_size=3, stride=2, padding=1).size
    56
    >>> size = pool_output_size(5, kernel_size=2, stride=2, padding=1, ceil_mode=True)
    >>> size.raw, size.dropped_last, size.size  # the 4th window would start in the padding
    (4, True, 3)
    >>> size.explain().split("; ")[0]
    'ceil((L + 2p - d(k-1) - 1) / s) + 1 = ceil((5 + 2*1 - 1*(2-1) - 1) / 2) + 1 = 3 + 1 = 4'
"""

from __future__ import annotations

import math
import numbers
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

__all__ = [
    "OutputSize",
    "PoolGeometry",
    "DimWindows",
    "check_dims",
    "check_positive",
    "check_divisor_override",
    "check_unit",
    "check_choice",
    "dynamic_k",
    "normalize_tuple",
    "normalize_sizes",
    "normalize_window",
    "normalize_output_size",
    "check_input_shape",
    "pool_output_size",
    "pool_output_shape",
    "pool_geometry",
    "adaptive_bins",
    "adaptive_windows",
    "check_count",
    "pyramid_levels",
    "fractional_output_size",
    "fractional_intervals",
    "check_fractional_sizes",
    "unpool_output_size",
]


# --------------------------------------------------------------------------------------------
# Argument normalisation
# --------------------------------------------------------------------------------------------


def _as_int(value, name: str, where: str = "") -> int:
    """``value`` as a Python int; ints and NumPy integers pass, bools and floats do not."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int{where}, got a bool ({value!r})")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int{where}, got {value!r} ({type(value).__name__})"
        ) from None


def normalize_tuple(value, dims: int, name: str) -> tuple[int, ...]:
    """Expand an int-or-tuple argument to a tuple of ``dims`` ints, as PyTorch does.

    ``3`` becomes ``(3,) * dims``; a sequence of one int is repeated; a sequence of ``dims`` ints
    is kept. Anything else raises: :class:`TypeError` for a non-int element (floats and bools
    are refused, as in PyTorch), :class:`ValueError` for a wrong length.

    >>> normalize_tuple(2, 3, "kernel_size")
    (2, 2, 2)
    >>> normalize_tuple((2, 3), 2, "stride")
    (2, 3)
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = tuple(value)
        if len(items) not in (1, dims):
            allowed = "1" if dims == 1 else f"1 or {dims}"
            raise ValueError(
                f"{name} must be an int or a sequence of {allowed} ints, "
                f"got a sequence of {len(items)}: {value!r}"
            )
        ints = tuple(_as_int(v, name, " or a sequence of ints") for v in items)
        return ints * dims if len(ints) == 1 else ints
    if hasattr(value, "shape") and hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:
        return normalize_tuple(value.tolist(), dims, name)  # a NumPy array of ints
    return (_as_int(value, name, " or a sequence of ints"),) * dims


def check_dims(dims, allowed: Sequence[int] = (1, 2, 3), name: str = "dims") -> int:
    """The number of spatial dimensions of a pooling op, as an int in ``allowed``.

    >>> check_dims(2)
    2
    """
    value = _as_int(dims, name)
    if value not in allowed:
        raise ValueError(f"{name} ({value}) must be one of {tuple(allowed)}")
    return value


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """A finite real number ``> 0`` (or ``>= 0``), e.g. GeM's ``p``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} ({value!r}) must be a finite number {bound}")
    return float(value)


def check_divisor_override(value: object, name: str = "divisor_override") -> int | None:
    """Average pooling's ``divisor_override``: ``None`` or an int ``>= 1`` (NumPy ints too).

    One rule for ``poolkit.numpy`` and ``poolkit.nn``. Stricter than torch, which refuses 0
    (``RuntimeError: divisor must be not zero``) but divides by a negative value, negating the
    average: a divisor stands for a count of positions, so poolkit refuses ``<= 0`` too.

    >>> check_divisor_override(4)
    4
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or None, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} ({int(value)}) must be None or an int >= 1")
    return int(value)


def check_unit(value: object, name: str) -> float:
    """A number in ``[0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} ({value!r}) must be in [0, 1]")
    return float(value)


def check_choice(value: object, name: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} ({value!r}) must be one of {tuple(allowed)}")
    return value  # type: ignore[return-value]


def _bound(minimum: int) -> str:
    return {0: "non-negative", 1: "greater than zero"}.get(minimum, f">= {minimum}")


def normalize_sizes(value, dims: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """:func:`normalize_tuple`, then every entry must be ``>= minimum``.

    >>> normalize_sizes((3,), 2, "spatial_size")
    (3, 3)
    """
    values = normalize_tuple(value, dims, name)
    for d, v in enumerate(values):
        if v < minimum:
            raise ValueError(f"{name} ({v}) must be {_bound(minimum)} in dim {d}")
    return values


def _kernel_and_stride(kernel_size, stride, dims: int) -> tuple[tuple, tuple]:
    """``kernel_size`` and ``stride`` as ``dims``-tuples; no stride (``None`` or an empty
    sequence, as PyTorch allows) is the kernel size."""
    kernel = normalize_tuple(kernel_size, dims, "kernel_size")
    if stride is None or (isinstance(stride, Sequence) and len(stride) == 0):
        return kernel, kernel
    return kernel, normalize_tuple(stride, dims, "stride")


def normalize_window(
    kernel_size, stride=None, padding=0, dilation=1, *, dims: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Normalise and validate the window of a pooling op: ``(kernel, stride, padding,
    dilation)`` as tuples of ``dims`` ints, without the input size (see :func:`pool_geometry`).

    ``stride`` of ``None`` or an empty sequence means ``kernel_size``. Raises, where PyTorch
    refuses: ``kernel_size``, ``stride``, ``dilation`` must be ``>= 1``; ``padding`` must be
    ``>= 0`` and at most ``kernel_size // 2``. The PyTorch layers of :mod:`poolkit.nn` and the
    NumPy engine both validate here, so both raise the same messages.

    >>> normalize_window(3, padding=1, dims=2)
    ((3, 3), (3, 3), (1, 1), (1, 1))
    """
    kernel, stride_t = _kernel_and_stride(kernel_size, stride, dims)
    pad = normalize_tuple(padding, dims, "padding")
    dil = normalize_tuple(dilation, dims, "dilation")
    for name, values in (("kernel_size", kernel), ("stride", stride_t), ("dilation", dil)):
        normalize_sizes(values, dims, name)
    for d, (p, k) in enumerate(zip(pad, kernel, strict=True)):
        if p < 0:
            raise ValueError(f"padding ({p}) must be {_bound(0)} in dim {d}")
        if p > k // 2:
            raise ValueError(
                f"padding ({p}) must be at most half the kernel size ({k} // 2 = {k // 2}) "
                f"in dim {d}"
            )
    return kernel, stride_t, pad, dil


def normalize_output_size(
    output_size, dims: int, input_size: Sequence[int] | None = None, name: str = "output_size"
) -> tuple[int, ...]:
    """Normalise an adaptive pooling ``output_size``: int, or a sequence of ``dims`` ints/None.

    ``None`` entries keep the input size of that dimension (PyTorch's ``_list_with_default``;
    only allowed for 2-d and 3-d, and only inside a sequence). Sizes must be ``>= 0``; a size of
    0 gives an empty output, as in PyTorch.

    >>> normalize_output_size((None, 2), 2, input_size=(5, 6))
    (5, 2)
    """
    if isinstance(value := output_size, Sequence) and not isinstance(value, str):
        items = list(value)
        if len(items) != dims:
            raise ValueError(
                f"{name} must be an int or a sequence of {dims} ints, got {output_size!r}"
            )
        if dims > 1 and any(v is None for v in items):
            if input_size is None:
                raise ValueError(f"{name} has None entries but the input size is unknown")
            items = [input_size[d] if v is None else v for d, v in enumerate(items)]
        sizes = tuple(_as_int(v, name, " or a sequence of ints") for v in items)
    else:
        sizes = (_as_int(value, name, " or a sequence of ints"),) * dims
    for d, size in enumerate(sizes):
        if size < 0:
            raise ValueError(f"{name} ({size}) must be >= 0 in dim {d}")
    return sizes


def check_input_shape(
    shape: Sequence[int],
    dims: int,
    fn_name: str,
    *,
    empty_channels_ok: bool = False,
) -> bool:
    """Check an input shape for a ``dims``-d pooling op; return whether it is batched.

    Accepted: ``(C, *spatial)`` (unbatched) or ``(N, C, *spatial)`` with ``len(spatial) ==
    dims``. The batch ``N`` may be 0 (an empty batch); the channel and spatial sizes must be
    positive, as in PyTorch (``empty_channels_ok`` relaxes the channel rule for the ops where
    PyTorch allows ``C == 0``, e.g. adaptive average pooling).
    """
    shape = tuple(shape)
    if len(shape) not in (dims + 1, dims + 2):
        raise ValueError(
            f"input of {fn_name} must have {dims + 1} (unbatched: C, {_spatial_names(dims)}) or "
            f"{dims + 2} (batched: N, C, {_spatial_names(dims)}) dimensions, got shape {shape}"
        )
    batched = len(shape) == dims + 2
    non_batch = shape[1:] if batched else shape
    for axis, size in enumerate(non_batch):
        if size == 0 and not (axis == 0 and empty_channels_ok):
            what = "channel" if axis == 0 else f"spatial dim {axis - 1}"
            raise ValueError(
                f"input of {fn_name} has size 0 in its {what} dimension (shape {shape}); only "
                "the batch dimension may be empty"
            )
    return batched


def _spatial_names(dims: int) -> str:
    return {1: "L", 2: "H, W", 3: "D, H, W"}.get(dims, ", ".join(f"S{i}" for i in range(dims)))


# --------------------------------------------------------------------------------------------
# Output sizes of windowed pooling
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputSize:
    """The output size of windowed pooling along one dimension, with its worked arithmetic.

    ``numerator`` is :math:`L + 2p - d(k-1) - 1` (plus :math:`s - 1` in ceil mode), ``raw`` is
    ``numerator // s + 1`` and ``size`` is ``raw`` less one when ceil mode drops a last window
    that would start in the right padding (``dropped_last``). :meth:`explain` writes the
    computation out, for docs and ``poolkit explain``.
    """

    input_size: int
    kernel_size: int
    stride: int
    padding: int
    dilation: int
    ceil_mode: bool
    numerator: int
    raw: int
    dropped_last: bool
    size: int

    @property
    def effective_kernel_size(self) -> int:
        """:math:`d(k - 1) + 1`, the span of one dilated window."""
        return self.dilation * (self.kernel_size - 1) + 1

    def explain(self) -> str:
        """The formula, the numbers put in, and the result, on one line."""
        L, k, s, p, d = (self.input_size, self.kernel_size, self.stride, self.padding,
                         self.dilation)
        rounding = "ceil" if self.ceil_mode else "floor"
        text = (
            f"{rounding}((L + 2p - d(k-1) - 1) / s) + 1 = "
            f"{rounding}(({L} + 2*{p} - {d}*({k}-1) - 1) / {s}) + 1 = "
            f"{self.raw - 1} + 1 = {self.raw}"
        )
        if self.dropped_last:
            text += (
                f"; the last window would start at input position {(self.raw - 1) * s - p}, in "
                f"the right padding ((L_out - 1) * s = {(self.raw - 1) * s} >= L + p = {L + p}), "
                f"so it is dropped: {self.size}"
            )
        return text


def pool_output_size(
    input_size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> OutputSize:
    r"""Output size of windowed pooling along one dimension, as :class:`OutputSize`.

    .. math::

        L_{out} = \left\lfloor \frac{L + 2p - d(k-1) - 1 + [\text{ceil}](s - 1)}{s}
        \right\rfloor + 1,

    then, in ceil mode only, minus one if :math:`(L_{out} - 1)s \ge L + p` (PyTorch drops a
    last window that would start in the right padding). The division rounds toward negative
    infinity, so too-small inputs give sizes ``<= 0``; this function does not validate (see
    :func:`pool_geometry`), it only computes.

    >>> pool_output_size(4, 2, 2).size
    2
    >>> pool_output_size(5, 2, 2, ceil_mode=True).size  # windows [0,1], [2,3], [4]
    3
    """
    stride = kernel_size if stride is None else stride
    numerator = input_size + 2 * padding - dilation * (kernel_size - 1) - 1
    if ceil_mode:
        numerator += stride - 1
    raw = numerator // stride + 1
    dropped = bool(ceil_mode) and (raw - 1) * stride >= input_size + padding
    return OutputSize(
        input_size=input_size, kernel_size=kernel_size, stride=stride, padding=padding,
        dilation=dilation, ceil_mode=bool(ceil_mode), numerator=numerator, raw=raw,
        dropped_last=dropped, size=raw - 1 if dropped else raw,
    )


def pool_output_shape(
    input_size: Sequence[int],
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
) -> tuple[int, ...]:
    """The spatial output shape of windowed pooling, validated (see :func:`pool_geometry`).

    >>> pool_output_shape((112, 112), 3, 2, 1)
    (56, 56)
    """
    return pool_geometry(input_size, kernel_size, stride, padding, dilation, ceil_mode).output_size


# --------------------------------------------------------------------------------------------
# Window tables: where each window reads, per dimension
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DimWindows:
    r"""The windows of one spatial dimension: output ``o`` reads ``starts[o] + j * dilation``.

    ``lengths[o]`` is the number of elements window ``o`` has (``kernel_size`` for windowed
    pooling, where some may fall outside ``[0, input_size)`` and are padding; the bin length for
    adaptive pooling, where all are inside). The NumPy engine builds every window it needs from
    these tables: :meth:`offset_ranges` turns the regular ones into strided slices, one per
    kernel offset ``j``, which is what makes the engine fast.
    """

    input_size: int
    starts: tuple[int, ...]
    kernel_size: int
    dilation: int = 1
    lengths: tuple[int, ...] | None = None
    stride: int | None = None  # set when starts are o * stride - padding (regular windows)

    @property
    def output_size(self) -> int:
        return len(self.starts)

    def length(self, o: int) -> int:
        return self.kernel_size if self.lengths is None else self.lengths[o]

    def positions(self, o: int) -> list[int]:
        """Input positions read by window ``o`` (padding positions included)."""
        return [self.starts[o] + j * self.dilation for j in range(self.length(o))]

    def valid_positions(self, o: int) -> list[int]:
        """Input positions of window ``o`` that are inside the input."""
        return [i for i in self.positions(o) if 0 <= i < self.input_size]

    def first_valid(self, o: int) -> int:
        """PyTorch's initial argmax position of window ``o``: the first position that is not in
        the left padding (``start`` stepped by ``dilation`` until ``>= 0``; it can lie past the
        input when a dilated window reads only padding)."""
        start = self.starts[o]
        if start >= 0:
            return start
        return start + (-start + self.dilation - 1) // self.dilation * self.dilation

    def count(self, o: int, include_padding_up_to: int = 0) -> int:
        """Elements of window ``o`` within ``[-pad, input_size + pad)`` (``pad`` =
        ``include_padding_up_to``): the average-pooling divisor. ``0`` counts only real input
        elements (``count_include_pad=False``); the padding gives PyTorch's
        ``count_include_pad=True`` divisor, which still excludes what lies past the padding in
        ceil mode. Dilation is 1 wherever this is used (average pooling has none)."""
        lo, hi = -include_padding_up_to, self.input_size + include_padding_up_to
        return sum(1 for i in self.positions(o) if lo <= i < hi)

    def offset_ranges(self) -> list[tuple[int, int, int, int]]:
        """For each kernel offset ``j`` of a regular table: ``(j, o_lo, o_hi, i_lo)``.

        Outputs ``o_lo <= o < o_hi`` read a real input element at offset ``j``, namely
        ``i_lo + (o - o_lo) * stride``; the other outputs read padding there. Offsets no output
        reads are left out. The engine turns each into ``out[o_lo:o_hi]`` and
        ``x[i_lo : i_lo + (o_hi - o_lo - 1) * stride + 1 : stride]``.
        """
        if self.stride is None:
            raise ValueError("offset_ranges needs regular windows (stride set)")
        s, d, L = self.stride, self.dilation, self.input_size
        out = []
        first = self.starts[0] if self.starts else 0
        for j in range(self.kernel_size):
            shift = first + j * d  # offset j of output o reads i = o * s + shift
            o_lo = max(0, _ceil_div(-shift, s))
            o_hi = min(self.output_size, (L - 1 - shift) // s + 1)
            if o_hi > o_lo:
                out.append((j, o_lo, o_hi, o_lo * s + shift))
        return out


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


@dataclass(frozen=True)
class PoolGeometry:
    r"""Validated geometry of one windowed pooling call (all tuples have one entry per dim).

    Built by :func:`pool_geometry`. ``output_sizes`` keeps the worked arithmetic per dimension;
    :meth:`windows` gives the per-dimension window tables the engine reduces over.
    """

    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool
    output_sizes: tuple[OutputSize, ...]

    @property
    def dims(self) -> int:
        return len(self.input_size)

    @property
    def output_size(self) -> tuple[int, ...]:
        return tuple(o.size for o in self.output_sizes)

    def windows(self, dim: int) -> DimWindows:
        """The window table of spatial dimension ``dim``."""
        s, p = self.stride[dim], self.padding[dim]
        return DimWindows(
            input_size=self.input_size[dim],
            starts=tuple(o * s - p for o in range(self.output_size[dim])),
            kernel_size=self.kernel_size[dim],
            dilation=self.dilation[dim],
            stride=s,
        )

    def window_positions(self, out_index: Sequence[int]) -> list[tuple[int, ...]]:
        """All input positions (padding included) read by the window at ``out_index``, in
        PyTorch's scan order (last dimension fastest)."""
        per_dim = [self.windows(d).positions(o) for d, o in enumerate(out_index)]
        return list(product(*per_dim))

    def explain(self) -> str:
        """One line per dimension with the output-size computation."""
        return "\n".join(f"dim {d}: {o.explain()}" for d, o in enumerate(self.output_sizes))


def pool_geometry(
    input_size: Sequence[int],
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    *,
    fn_name: str = "pooling",
) -> PoolGeometry:
    """Normalise and validate windowed-pooling arguments; compute the output size.

    ``input_size`` is the spatial size (its length fixes the number of dims). ``stride`` of
    ``None`` or an empty sequence means ``kernel_size``. Raises, where PyTorch refuses:

    - ``kernel_size``, ``stride``, ``dilation`` must be ``>= 1``;
    - ``padding`` must be ``>= 0`` and at most ``kernel_size // 2``;
    - the output size must be ``>= 1`` in every dimension.

    >>> pool_geometry((4, 4), 2).output_size
    (2, 2)
    """
    input_size = tuple(int(v) for v in input_size)
    kernel, stride_t, pad, dil = normalize_window(
        kernel_size, stride, padding, dilation, dims=len(input_size)
    )
    sizes = tuple(
        pool_output_size(L, k, s, p, d, bool(ceil_mode))
        for L, k, s, p, d in zip(input_size, kernel, stride_t, pad, dil, strict=True)
    )
    for d, size in enumerate(sizes):
        if size.size < 1:
            raise ValueError(
                f"input size ({size.input_size}) in spatial dim {d} is too small for {fn_name} "
                f"with kernel_size={size.kernel_size}, stride={size.stride}, "
                f"padding={size.padding}, dilation={size.dilation}: output size "
                f"{size.explain()} must be >= 1"
            )
    return PoolGeometry(
        input_size=input_size, kernel_size=kernel, stride=stride_t, padding=pad,
        dilation=dil, ceil_mode=bool(ceil_mode), output_sizes=sizes,
    )


# --------------------------------------------------------------------------------------------
# Adaptive pooling
# --------------------------------------------------------------------------------------------


def adaptive_bins(input_size: int, output_size: int) -> list[tuple[int, int]]:
    r"""Adaptive pooling bins ``[start, end)`` along one dimension (PyTorch's rule).

    .. math:: \text{start}_i = \lfloor iL/L_{out} \rfloor, \quad
              \text{end}_i = \lceil (i+1)L/L_{out} \rceil

    Bins cover the input; neighbours overlap by one element when :math:`L_{out}` does not
    divide :math:`L`, and repeat elements when :math:`L_{out} > L`.

    >>> adaptive_bins(5, 3)
    [(0, 2), (1, 4), (3, 5)]
    """
    return [
        (i * input_size // output_size, -((-(i + 1) * input_size) // output_size))
        for i in range(output_size)
    ]


def adaptive_windows(input_size: int, output_size: int) -> DimWindows:
    """The adaptive bins as a window table (``lengths`` vary, all positions are inside)."""
    bins = adaptive_bins(input_size, output_size)
    starts = tuple(b for b, _ in bins)
    lengths = tuple(e - b for b, e in bins)
    regular = output_size > 0 and input_size % output_size == 0
    return DimWindows(
        input_size=input_size,
        starts=starts,
        kernel_size=max(lengths, default=0),
        lengths=None if regular else lengths,
        stride=input_size // output_size if regular else None,
    )


def check_count(value, name: str, minimum: int = 1) -> int:
    """A count such as k-max's ``k``: an int (NumPy ints too) ``>= minimum``.

    >>> check_count(2, "k")
    2
    """
    count = _as_int(value, name)
    if count < minimum:
        raise ValueError(f"{name} ({count}) must be >= {minimum}")
    return count


def check_global_form(stride, padding) -> None:
    """The global form (``kernel_size=None``, one window over all positions) takes no
    ``stride`` and no ``padding``."""
    if stride is not None or padding not in (0, None):
        raise ValueError(
            f"stride ({stride!r}) and padding ({padding!r}) need kernel_size; the global "
            "form (kernel_size=None) has one window over all positions"
        )


def check_dynamic_layer(k_top: int, layer, num_layers) -> bool:
    """Dynamic k-max's ``layer``/``num_layers``: both or neither (validated through
    :func:`dynamic_k`); returns whether the pool is global (neither given: plain k-max)."""
    if (layer is None) != (num_layers is None):
        raise ValueError(
            f"layer ({layer!r}) and num_layers ({num_layers!r}) must be given together"
        )
    if layer is not None:
        dynamic_k(k_top, k_top, layer, num_layers)
    return layer is None


def dynamic_k(length: int, k_top: int, layer: int, num_layers: int) -> int:
    r"""Kalchbrenner et al.'s :math:`k_l = \max(k_{top}, \lceil \frac{L - l}{L} s \rceil)`.

    ``length`` is the sentence length :math:`s`, ``layer`` the 1-based index :math:`l` of the
    convolutional layer, ``num_layers`` the total :math:`L`.

    Example::

        >>> dynamic_k(18, 3, 1, 3)   # ceil(2/3 * 18) = 12
        12
    """
    k_top = check_count(k_top, "k_top")
    num_layers = check_count(num_layers, "num_layers")
    layer = check_count(layer, "layer")
    if layer > num_layers:
        raise ValueError(f"layer ({layer}) must be at most num_layers ({num_layers})")
    return max(k_top, math.ceil((num_layers - layer) / num_layers * length))


def pyramid_levels(levels) -> tuple[int, ...]:
    r"""Spatial pyramid levels: an int or a non-empty sequence of ints ``>= 1``; level
    :math:`l` pools an :math:`l \times \dots \times l` grid of adaptive bins.

    >>> pyramid_levels(2), pyramid_levels((1, 2, 4))
    ((2,), (1, 2, 4))
    """
    if not isinstance(levels, Sequence):
        levels = (levels,)
    ints = tuple(
        operator.index(v) if not isinstance(v, bool) and hasattr(v, "__index__") else None
        for v in (() if isinstance(levels, str) else levels)
    )
    if not ints or any(v is None or v < 1 for v in ints):
        raise ValueError(f"levels ({levels!r}) must be a non-empty sequence of ints >= 1")
    return ints


# --------------------------------------------------------------------------------------------
# Fractional max pooling
# --------------------------------------------------------------------------------------------


def fractional_output_size(input_size: Sequence[int], output_size, output_ratio) -> tuple:
    """Resolve fractional max pooling's ``output_size`` / ``output_ratio`` (one is required).

    ``output_size`` wins when both are given (as in PyTorch). A ratio gives
    ``int(L * ratio)`` per dimension; it must be a number or a sequence of numbers in
    ``(0, 1]``. A scalar ratio is accepted for every dims (PyTorch's functional form only takes a
    tuple there; its module classes take both).
    """
    dims = len(input_size)
    if output_size is None and output_ratio is None:
        raise ValueError(
            "fractional max pooling requires either output_size or output_ratio, got neither"
        )
    if output_size is not None:
        return normalize_output_size(output_size, dims, input_size)
    if isinstance(output_ratio, Sequence) and not isinstance(output_ratio, str):
        ratios = list(output_ratio)
        if len(ratios) not in (1, dims):
            raise ValueError(
                f"output_ratio must be a number or a sequence of {dims} numbers, "
                f"got {output_ratio!r}"
            )
        ratios = ratios * dims if len(ratios) == 1 else ratios
    else:
        ratios = [output_ratio] * dims
    sizes = []
    for d, r in enumerate(ratios):
        if isinstance(r, bool) or not isinstance(r, (int, float)) and not hasattr(r, "__float__"):
            raise TypeError(f"output_ratio must be a number, got {r!r} ({type(r).__name__})")
        r = float(r)
        if not 0.0 < r <= 1.0:
            raise ValueError(f"output_ratio ({r}) must be in (0, 1] in dim {d}")
        sizes.append(int(input_size[d] * r))
    return tuple(sizes)


def check_fractional_sizes(
    input_size: Sequence[int], kernel_size: Sequence[int], output_size: Sequence[int]
) -> None:
    """PyTorch's rule: ``output_size + kernel_size - 1 <= input_size`` in every dimension for
    2-d, and strictly ``<`` for 3-d (``fractional_max_pool3d`` checks it that way)."""
    strict = len(input_size) == 3
    for d, (L, k, o) in enumerate(zip(input_size, kernel_size, output_size, strict=True)):
        if k <= 0:
            raise ValueError(f"kernel_size ({k}) must be greater than zero in dim {d}")
        span = o + k - 1
        if span > L or (strict and span == L):
            rule = "<" if strict else "<="
            raise ValueError(
                f"kernel_size ({k}) is too large for output_size ({o}) and input size ({L}) "
                f"in dim {d}: fractional max pooling needs output_size + kernel_size - 1 "
                f"{rule} input size ({o} + {k} - 1 = {span})"
            )


def _round_to(value: float, precision: str) -> float:
    if precision == "float64":
        return value
    if precision == "float32":
        return struct.unpack("f", struct.pack("f", value))[0]
    if precision == "float16":
        return struct.unpack("e", struct.pack("e", value))[0]
    raise ValueError(f"precision must be 'float16', 'float32' or 'float64', got {precision!r}")


def fractional_intervals(
    sample: float, input_size: int, output_size: int, pool_size: int,
    precision: str = "float64",
) -> list[int]:
    r"""Window starts of fractional max pooling along one dimension (PyTorch's
    ``generate_intervals``, Graham 2014).

    .. math::

        \alpha = \frac{L - k}{L_{out} - 1}, \qquad
        \text{start}_i = \lfloor (i + u)\alpha \rfloor - \lfloor u\alpha \rfloor
        \;(i < L_{out} - 1), \qquad \text{start}_{L_{out}-1} = L - k,

    computed in the floating-point ``precision`` of the input (PyTorch does the arithmetic in
    the input's dtype, and a float32 rounding can move a start by one), truncating toward zero.

    >>> fractional_intervals(0.5, 10, 4, 2)
    [0, 3, 5, 8]
    """
    if output_size <= 0:
        return []
    starts = [0] * output_size
    if output_size > 1:
        r = lambda v: _round_to(v, precision)  # noqa: E731  one rounding per operation
        alpha = r(r(float(input_size - pool_size)) / r(float(output_size - 1)))
        u = r(float(sample))
        base = math.trunc(r(u * alpha))
        for i in range(output_size - 1):
            starts[i] = math.trunc(r(r(i + u) * alpha)) - base
    starts[-1] = input_size - pool_size
    return starts


# --------------------------------------------------------------------------------------------
# Max unpooling
# --------------------------------------------------------------------------------------------


def unpool_output_size(
    input_size: Sequence[int],
    kernel_size,
    stride=None,
    padding=0,
    output_size=None,
) -> tuple[int, ...]:
    r"""Spatial output size of ``max_unpool`` (PyTorch's ``_unpool_output_size``).

    The default inverts the pooling size formula: :math:`(L - 1)s + k - 2p`. An explicit
    ``output_size`` (``dims`` or ``dims + 2`` entries; the first two are then dropped) must lie
    strictly between ``default - stride`` and ``default + stride``, since those are the input
    sizes max pooling maps to ``L``. Sizes must be ``>= 0``.

    >>> unpool_output_size((2, 2), 2)
    (4, 4)
    """
    input_size = tuple(input_size)
    dims = len(input_size)
    kernel, stride_t = _kernel_and_stride(kernel_size, stride, dims)
    pad = normalize_tuple(padding, dims, "padding")
    for name, values in (("kernel_size", kernel), ("stride", stride_t)):
        for d, v in enumerate(values):
            if v <= 0:
                raise ValueError(f"{name} ({v}) must be greater than zero in dim {d}")
    for d, p in enumerate(pad):
        if p < 0:
            raise ValueError(f"padding ({p}) must be non-negative in dim {d}")
    default = tuple(
        (L - 1) * s + k - 2 * p
        for L, s, k, p in zip(input_size, stride_t, kernel, pad, strict=True)
    )
    if output_size is None:
        sizes = default
    else:
        if not isinstance(output_size, Sequence) or isinstance(output_size, str):
            output_size = normalize_tuple(output_size, dims, "output_size")
        sizes = tuple(_as_int(v, "output_size") for v in output_size)
        if len(sizes) == dims + 2:
            sizes = sizes[2:]
        if len(sizes) != dims:
            raise ValueError(
                f"output_size must have {dims} or {dims + 2} entries, got {len(sizes)}: "
                f"{tuple(output_size)}"
            )
        for d, (size, dflt, s) in enumerate(zip(sizes, default, stride_t, strict=True)):
            if not dflt - s < size < dflt + s:
                raise ValueError(
                    f"output_size ({size}) in dim {d} must be strictly between "
                    f"{dflt - s} and {dflt + s} (the default {dflt} minus/plus the stride {s})"
                )
    for d, size in enumerate(sizes):
        if size < 0:
            raise ValueError(
                f"output size ({size}) of max_unpool must be >= 0 in dim {d} "
                f"(from kernel_size={kernel[d]}, stride={stride_t[d]}, padding={pad[d]})"
            )
    return sizes


# --------------------------------------------------------------------------------------------
# Region-of-interest pooling (RoI pool, RoI Align, position-sensitive RoI Align)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoIArgs:
    """The validated scalar arguments of an RoI op (torchvision.ops' names)."""

    output_size: tuple[int, int]  # (pooled height, pooled width)
    spatial_scale: float
    sampling_ratio: int  # > 0: that many samples per bin and axis; <= 0: adaptive


def roi_args(output_size, spatial_scale=1.0, sampling_ratio=-1) -> RoIArgs:
    """Normalise ``output_size`` (int or pair), check ``spatial_scale`` and ``sampling_ratio``.

    >>> roi_args(7)
    RoIArgs(output_size=(7, 7), spatial_scale=1.0, sampling_ratio=-1)
    >>> roi_args((0, 2))
    Traceback (most recent call last):
    ...
    ValueError: output_size ((0, 2)) must be positive in both dims (pooled height, width)
    """
    size = normalize_tuple(output_size, 2, "output_size")
    if min(size) <= 0:
        raise ValueError(
            f"output_size ({size}) must be positive in both dims (pooled height, width)"
        )
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, (int, float)) and not (
        hasattr(spatial_scale, "dtype") and getattr(spatial_scale, "ndim", 1) == 0
    ):
        raise TypeError(f"spatial_scale must be a number, got {spatial_scale!r}")
    scale = float(spatial_scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"spatial_scale ({spatial_scale!r}) must be a positive finite number")
    ratio = _as_int(sampling_ratio, "sampling_ratio")
    return RoIArgs(size, scale, ratio)
