"""Input handling shared by the NumPy pooling ops: dtype, batching, planes.

Every op reshapes its input ``(N, C, *spatial)`` (or unbatched ``(C, *spatial)``) into
``planes``: a C-contiguous ``(N * C, *spatial)`` array in the compute dtype, pools each plane
independently, and reshapes back. float32 and float64 are computed in place of their own
dtype; float16 is computed in float32 (as PyTorch's CPU kernels accumulate half in float) and
cast back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poolkit.geometry import check_input_shape

FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def as_float_array(value, name: str = "input") -> np.ndarray:
    """``value`` as a NumPy array of a floating dtype (float16/32/64), else ``TypeError``."""
    array = np.asarray(value)
    if array.dtype.type not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point array (float16, float32 or float64), "
            f"got dtype {array.dtype}"
        )
    return array


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the engine computes in: float32 for float16, else the dtype itself."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


@dataclass(frozen=True)
class Planes:
    """An input viewed as independent planes: ``array`` is ``(N * C, *spatial)``."""

    array: np.ndarray
    batched: bool
    lead: tuple[int, ...]  # (N, C) or (C,)
    dtype: np.dtype  # the caller's dtype, restored on the way out

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.array.shape[1:]

    def restore(self, planes_out: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
        """``(N * C, *out)`` back to ``(N, C, *out)`` / ``(C, *out)`` in the caller's dtype;
        copied into ``into`` (the caller's ``out=``) unless it is already its view."""
        out = planes_out.reshape(self.lead + planes_out.shape[1:])
        if into is None:
            return out.astype(self.dtype, copy=False)
        if not np.may_share_memory(into, planes_out):  # else: computed in place
            np.copyto(into, out, casting="unsafe")
        return into

    def restore_indices(self, planes_index: np.ndarray, into: np.ndarray | None = None):
        if into is not None:
            return self.restore(planes_index, into)
        return planes_index.reshape(self.lead + planes_index.shape[1:]).astype(np.int64, copy=False)

    def out_buffer(self, out, spatial, fn_name: str, name: str = "out", dtype=None,
                   inputs=()) -> np.ndarray:
        """Where to compute a result of shape ``lead + spatial`` as planes: a view of the
        caller's ``out`` (checked: an ndarray of that shape, of ``dtype`` -- the input's by
        default --, C-contiguous, writeable, not overlapping ``inputs``), or a new array when
        ``out`` is None or its dtype is not computed in place (float16)."""
        dtype = np.dtype(self.dtype if dtype is None else dtype)
        compute = dtype if dtype == np.int64 else compute_dtype(dtype)
        shape = (self.array.shape[0],) + tuple(spatial)
        if out is None:
            return np.empty(shape, compute)
        check_out(out, self.lead + tuple(spatial), dtype, fn_name, name, inputs)
        return out.reshape(shape) if compute == dtype else np.empty(shape, compute)


def check_out(out, shape, dtype, fn_name: str, name: str = "out", inputs=()) -> None:
    """``out=`` of ``fn_name`` must be a C-contiguous, writeable ndarray of exactly ``shape``
    and ``dtype`` that shares no memory with ``inputs``."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} of {fn_name} must be a numpy.ndarray or None, got "
                        f"{type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} of {fn_name} must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"{name} of {fn_name} must have dtype {np.dtype(dtype)}, got "
                         f"{out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} of {fn_name} must be C-contiguous (np.ascontiguousarray)")
    if not out.flags.writeable:
        raise ValueError(f"{name} of {fn_name} must be writeable")
    for array in inputs:
        if isinstance(array, np.ndarray) and np.may_share_memory(out, array):
            raise ValueError(f"{name} of {fn_name} must not share memory with its inputs")


def to_planes(
    value, dims: int, fn_name: str, *, name: str = "input", empty_channels_ok: bool = False
) -> Planes:
    """Validate an input for a ``dims``-d op and view it as contiguous planes."""
    array = as_float_array(value, name)
    batched = check_input_shape(array.shape, dims, fn_name, empty_channels_ok=empty_channels_ok)
    lead = array.shape[: array.ndim - dims]
    planes = np.ascontiguousarray(
        array.reshape((-1,) + array.shape[array.ndim - dims:]), dtype=compute_dtype(array.dtype)
    )
    return Planes(planes, batched, lead, array.dtype)


def grad_planes(grad_output, planes: Planes, expected_spatial: tuple[int, ...], fn_name: str):
    """``grad_output`` checked against the forward output shape, as planes in compute dtype."""
    grad = as_float_array(grad_output, "grad_output")
    expected = planes.lead + tuple(expected_spatial)
    if grad.shape != expected:
        raise ValueError(
            f"grad_output of {fn_name} must have the forward output's shape {expected}, "
            f"got {grad.shape}"
        )
    return np.ascontiguousarray(
        grad.reshape((planes.array.shape[0],) + tuple(expected_spatial)),
        dtype=planes.array.dtype,
    )
