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

    def restore(self, planes_out: np.ndarray) -> np.ndarray:
        """``(N * C, *out)`` back to ``(N, C, *out)`` / ``(C, *out)`` in the caller's dtype."""
        out = planes_out.reshape(self.lead + planes_out.shape[1:])
        return out.astype(self.dtype, copy=False)

    def restore_indices(self, planes_index: np.ndarray) -> np.ndarray:
        return planes_index.reshape(self.lead + planes_index.shape[1:]).astype(np.int64, copy=False)


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
