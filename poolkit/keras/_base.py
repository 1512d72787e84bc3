"""The base layer of :mod:`poolkit.keras`: data format, the global form, config, torch weights.

Every pooling layer computes in channels-last ``(N, *spatial, C)``; with
``data_format="channels_first"`` the input is moved to that layout and the output moved back,
so both formats run one implementation. A windowed family with ``kernel_size=None`` is its
**global** form, ``(N, C * feat_mult)`` (``flatten=False`` keeps the spatial axes as ones), as
in :mod:`poolkit.nn`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from poolkit.geometry import (
    check_choice,
    check_dims,
    check_global_form,
    normalize_tuple,
    pool_geometry,
)
from poolkit.keras import _windows as W

_FORMATS = ("channels_last", "channels_first")


def check_channels(channels: object, name: str = "channels") -> int | None:
    if channels is None:
        return None
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"{name} ({channels!r}) must be None or an int >= 1")
    return channels


def _plain(value: Any) -> Any:
    """Tuples as lists for a JSON config."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class PoolLayer(keras.layers.Layer):
    """Base of every pooling layer: ``dims``, ``data_format``, ``flatten`` and the config.

    Subclasses implement ``pool(x, training)`` on channels-last ``x`` and return
    ``(N, *out, C')``; the global form returns ones for ``out`` (flattened here when asked).
    ``_args`` holds the constructor arguments that ``get_config`` returns.
    """

    is_global = False

    def __init__(self, dims: int = 2, data_format: str | None = None, flatten: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.dims = check_dims(dims)
        data_format = keras.config.image_data_format() if data_format is None else data_format
        self.data_format = check_choice(data_format, "data_format", _FORMATS)
        self.flatten = bool(flatten)
        self._args: dict[str, Any] = {}

    # -- Keras plumbing -------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(dims=self.dims, data_format=self.data_format)
        config.update({key: _plain(value) for key, value in self._args.items()})
        return config

    def remember(self, **arguments: Any) -> None:
        """Record constructor arguments for :meth:`get_config`."""
        for key, value in arguments.items():
            self._args[key] = value

    def feat_mult(self) -> int:
        """How many features per input channel the pool emits (``C_out = C * feat_mult``)."""
        return 1

    @property
    def channels_first(self) -> bool:
        return self.data_format == "channels_first"

    def to_last(self, x):
        return ops.moveaxis(x, 1, -1) if self.channels_first else x

    def from_last(self, y):
        return ops.moveaxis(y, -1, 1) if self.channels_first else y

    def input_tensor(self, inputs):
        """``inputs`` as a tensor of rank ``dims + 2`` (a ValueError naming the layout
        otherwise)."""
        x = ops.convert_to_tensor(inputs)
        if len(x.shape) != self.dims + 2:
            raise ValueError(
                f"{type(self).__name__} (dims={self.dims}) expects input of rank {self.dims + 2} "
                f"(N, {'C, *spatial' if self.channels_first else '*spatial, C'}), "
                f"got shape {tuple(x.shape)}"
            )
        return x

    def call(self, inputs, training=None):
        x = self.input_tensor(inputs)
        y = self.pool(self.to_last(x), bool(training))
        if self.is_global and self.flatten:
            return ops.reshape(y, (-1, int(y.shape[-1])))
        return self.from_last(y)

    def pool(self, x, training: bool):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_output_spec(self, inputs, training=None):
        """Unknown spatial sizes (``Input((None, None, 3))``): the output spec of a stand-in
        size, with the axes that follow the input's size left unknown."""
        shape = tuple(inputs.shape)
        spatial = range(2, self.dims + 2) if self.channels_first else range(1, self.dims + 1)
        if all(shape[i] is not None for i in spatial):
            return super().compute_output_spec(inputs, training=training)
        stand_in = tuple(128 if i in spatial and shape[i] is None else size
                         for i, size in enumerate(shape))
        spec = super().compute_output_spec(
            keras.KerasTensor(stand_in, dtype=inputs.dtype), training=training)
        out = list(spec.shape)
        if self.size_follows_input(len(out)):
            out_spatial = range(2, len(out)) if self.channels_first else range(1, len(out) - 1)
            for i in out_spatial:
                out[i] = None
        return keras.KerasTensor(tuple(out), dtype=spec.dtype)

    def size_follows_input(self, rank: int) -> bool:
        """Whether the output's non-channel axes follow the input's spatial size."""
        return not self.is_global and rank == self.dims + 2

    # -- weights from poolkit.nn -----------------------------------------------------------------

    def torch_weight_map(self) -> dict[str, tuple[Any, Any]]:
        """``{poolkit.nn state_dict key: (keras variable, array -> array)}`` for learned pools."""
        return {}

    def load_torch_weights(self, module_or_state: Any) -> None:
        """Copy the weights of the :mod:`poolkit.nn` twin (a module or its ``state_dict``).

        Arrays may be torch tensors or NumPy arrays; layouts are converted (e.g. a torch
        ``Linear`` weight ``(out, in)`` becomes a Keras kernel ``(in, out)``). The layer must
        be built (call it once). Raises ``KeyError`` naming a missing key.
        """
        copy_torch_weights(self.torch_weight_map(), module_or_state)


def copy_torch_weights(mapping: dict[str, tuple[Any, Any]], module_or_state: Any) -> None:
    """Assign ``{key: (variable, convert)}`` from a torch module or state dict."""
    state = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else \
        module_or_state
    for key, (variable, convert) in mapping.items():
        if key not in state:
            raise KeyError(f"{key!r} missing from the torch state (keys: {sorted(state)})")
        value = state[key]
        value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        variable.assign(np.asarray(convert(value), dtype=variable.dtype))


class WindowPool(PoolLayer):
    """A family with ``kernel_size``/``stride``/``padding``; ``kernel_size=None`` is global."""

    def __init__(self, kernel_size=None, stride=None, padding=0, flatten: bool = True,
                 dims: int = 2, data_format: str | None = None, **kwargs):
        super().__init__(dims, data_format, flatten, **kwargs)
        self.is_global = kernel_size is None
        if self.is_global:
            check_global_form(stride, padding)
            self.kernel_size = self.stride = None
            self.padding = (0,) * self.dims
        else:
            self.kernel_size = normalize_tuple(kernel_size, self.dims, "kernel_size")
            self.stride = self.kernel_size if stride is None else normalize_tuple(
                stride, self.dims, "stride")
            self.padding = normalize_tuple(padding, self.dims, "padding")
            # the rules that need no input size, checked now as poolkit.nn does (a huge input
            # passes the output-size rule)
            pool_geometry((1 << 30,) * self.dims, self.kernel_size, self.stride, self.padding)
        self.remember(kernel_size=self.kernel_size, stride=self.stride,
                      padding=0 if self.is_global else self.padding, flatten=self.flatten)

    # The two primitives every family reduces with, global or windowed.

    def windows(self, x, dilation=1, ceil_mode=False):
        """The call's geometry (``None`` for the global form)."""
        if self.is_global:
            W.spatial_shape(x, self.dims)
            return None
        return W.geometry_of(x, self.dims, self.kernel_size, self.stride, self.padding,
                             dilation, ceil_mode, fn_name=type(self).__name__)

    @property
    def axes(self) -> tuple[int, ...]:
        return tuple(range(1, self.dims + 1))

    def reduce_max(self, x, geometry):
        if geometry is None:
            return ops.max(x, axis=self.axes, keepdims=True)
        return W.window_max(x, geometry)

    def reduce_sum(self, x, geometry):
        if geometry is None:
            return ops.sum(x, axis=self.axes, keepdims=True)
        return W.window_sum(x, geometry)

    def counts(self, x, geometry, include_padding: bool = False):
        """Window sizes: real positions (or with padding), as a constant of ``x``'s dtype."""
        if geometry is None:
            size = np.prod([int(s) for s in x.shape[1:1 + self.dims]], dtype=np.float64)
            return W.constant(np.full((1,) * (self.dims + 2), size), x)
        return W.constant(W.window_counts(geometry, include_padding), x)

    def plane_max(self, x):
        """Per-(sample, channel) maximum of the finite values (0 for a plane without one), a
        constant for autodiff: a numerically safe shift, as ``poolkit.nn``'s ``plane_max``."""
        finite = ops.isfinite(x)
        m = ops.max(ops.where(finite, x, ops.full_like(x, -np.inf)), axis=self.axes, keepdims=True)
        return ops.stop_gradient(ops.where(ops.isfinite(m), m, ops.zeros_like(m)))

    def mean_excluding_padding(self, x, geometry):
        return self.reduce_sum(x, geometry) / self.counts(x, geometry, include_padding=False)
