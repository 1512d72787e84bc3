"""Base classes of the pooling modules: window arguments, the global form, ``feat_mult``.

A windowed family's module takes ``kernel_size``; with ``kernel_size=None`` the same module is
the family's **global** pool: one window covering all spatial positions, and the output
``(N, C, 1, ...)`` is flattened to ``(N, C * feat_mult)`` unless ``flatten=False``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from poolkit.geometry import check_dims, check_global_form, normalize_sizes, normalize_window


class PoolModule(nn.Module):
    """Every module :func:`poolkit.nn.create_pool` returns has :meth:`feat_mult`."""

    dims: int = 2

    def feat_mult(self) -> int:
        """How many features per input channel the pool emits (``C_out = C * feat_mult``)."""
        return 1

    def is_identity(self) -> bool:
        """timm's global-pool contract: true only for the no-op pool (``''``/``"identity"``)."""
        return False

    def _place(self, device=None, dtype=None) -> None:
        """torch's ``device=``/``dtype=`` factory arguments: move what ``__init__`` built."""
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)


class WindowPoolNd(PoolModule):
    """Holds ``kernel_size``/``stride``/``padding`` (and ``dilation`` where the family has
    one); ``kernel_size=None`` is the global form."""

    def __init__(
        self, kernel_size=None, stride=None, padding=0, flatten: bool = True, *, dilation=None
    ) -> None:
        super().__init__()
        check_dims(self.dims)
        self.is_global = kernel_size is None
        if self.is_global:
            check_global_form(stride, padding)
            self.kernel_size = self.stride = None
            self.padding = 0
            if dilation is not None:
                self.dilation = normalize_sizes(dilation, self.dims, "dilation")
        else:
            self.kernel_size, self.stride, self.padding, dilations = normalize_window(
                kernel_size, stride, padding, 1 if dilation is None else dilation, dims=self.dims
            )
            if dilation is not None:
                self.dilation = dilations
        self.flatten = bool(flatten)

    def _finish(self, output: Tensor, unbatched: bool = False) -> Tensor:
        """Flatten the global form's ``(N, C', 1, ...)`` to ``(N, C')`` when asked (an unbatched
        ``(C', 1, ...)`` to ``(C',)``)."""
        if self.is_global and self.flatten:
            return output.flatten(0 if unbatched else 1)
        return output

    def extra_repr(self) -> str:
        if self.is_global:
            return f"global, flatten={self.flatten}"
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def keep_memory_format(output, input):
    """``output`` (a tensor or a tuple of them) channels-last where ``input`` is, like torch's
    pools (the composed pools would otherwise return NCHW for channels-last input)."""
    layout = _CHANNELS_LAST.get(input.dim()) if isinstance(input, Tensor) else None
    if layout is None or input.is_contiguous() or not input.is_contiguous(memory_format=layout):
        return output
    if isinstance(output, tuple):
        return tuple(keep_memory_format(t, input) for t in output)
    if isinstance(output, Tensor) and output.dim() == input.dim():
        return output.contiguous(memory_format=layout)
    return output


def finish_bins(pooled: Tensor, is_global: bool, flatten: bool, dims: int) -> Tensor:
    """The output of a pool that emits bins ``(N, C, bins)`` (k-max, spatial pyramid): as is for
    the windowed form; the global form flattened to ``(N, C * bins)``, or ``(N, C * bins, 1,
    ...)`` with ``flatten=False``."""
    if not is_global:
        return pooled
    if flatten:
        return pooled.flatten(1)
    return pooled.reshape(pooled.shape[0], -1, *([1] * dims))


def bind_dims(nd_function, name: str, dims: int):
    """``name`` = ``nd_function`` with ``dims`` fixed (the public 1d/2d/3d functional forms)."""

    def function(input: Tensor, *args, **kwargs):
        return keep_memory_format(nd_function(input, *args, dims=dims, **kwargs), input)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = (
        f"{dims}-D form of :func:`{nd_function.__name__}` (input ``(N, C, *{dims} spatial)``).\n\n"
        + (nd_function.__doc__ or "")
    )
    function.__module__ = nd_function.__module__
    return function


__all__ = ["PoolModule", "WindowPoolNd", "bind_dims", "finish_bins", "keep_memory_format"]
