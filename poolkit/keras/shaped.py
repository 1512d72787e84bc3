r"""Pools with their own output shapes: k-max, spatial pyramid, BlurPool, fractional max,
attention pooling and identity, as Keras 3 layers (twins of :mod:`poolkit.nn`'s).

Feature order: a flattened k-max or pyramid output is ``(N, C * k)`` / ``(N, C * bins)`` with
each channel's values adjacent (channel-major), exactly as :mod:`poolkit.nn` gives it, whatever
the ``data_format``. Their windowed forms put the ``k`` (or ``bins``) axis where the spatial axis
was: ``(N, k, C)`` channels-last, ``(N, C, k)`` channels-first.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from poolkit.geometry import (
    check_choice,
    check_count,
    check_dynamic_layer,
    check_fractional_sizes,
    dynamic_k,
    fractional_intervals,
    fractional_output_size,
    normalize_tuple,
    pyramid_levels,
)
from poolkit.keras import _windows as W
from poolkit.keras._base import PoolLayer, check_channels
from poolkit.keras.pooling import _register


def kmax_last_axis(x, k: int):
    """The ``k`` largest values along the last axis, in their original order (ties: the earlier
    position first, a stable sort); zeros after them when the axis is shorter than ``k``."""
    length = int(x.shape[-1])
    taken = min(k, length)
    order = ops.argsort(-ops.stop_gradient(x), axis=-1)[..., :taken]
    chosen = ops.sort(order, axis=-1)
    values = ops.take_along_axis(x, chosen, axis=-1)
    if taken < k:
        pad = [(0, 0)] * (len(x.shape) - 1) + [(0, k - taken)]
        values = ops.pad(values, pad)
    return values


class _ChannelMajorPool(PoolLayer):
    """A pool whose result is ``(N, C, m)`` per channel (k-max, pyramid bins)."""

    def channel_major(self, x, training):  # pragma: no cover - abstract
        raise NotImplementedError

    def call(self, inputs, training=None):
        x = self.input_tensor(inputs)
        pooled = self.channel_major(self.to_last(x), bool(training))  # (N, C, m)
        if not self.is_global:
            return pooled if self.channels_first else ops.moveaxis(pooled, 1, -1)
        flat = ops.reshape(pooled, (-1, int(pooled.shape[1]) * int(pooled.shape[2])))
        if self.flatten:
            return flat
        ones = (1,) * self.dims
        shape = (-1, int(flat.shape[1]), *ones) if self.channels_first else \
            (-1, *ones, int(flat.shape[1]))
        return ops.reshape(flat, shape)

    def planes(self, x):
        """Channels-last ``(N, *S, C)`` as ``(N, C, prod S)`` in row-major position order."""
        channels = int(x.shape[-1])
        return ops.moveaxis(ops.reshape(x, (-1, int(np.prod(x.shape[1:-1])), channels)), -1, 1)


@_register
class KMaxPool(_ChannelMajorPool):
    r"""k-max pooling (Kalchbrenner et al. 2014): the ``k`` largest values of each plane, in
    their original order. ``global_pool=False`` (1-D only) keeps them as a length-``k`` axis."""

    def __init__(self, k=1, global_pool=True, flatten=True, dims=2, data_format=None, **kwargs):
        super().__init__(dims, data_format, flatten, **kwargs)
        self.k = check_count(k, "k")
        self.is_global = bool(global_pool)
        if not self.is_global and self.dims != 1:
            raise ValueError(
                f"global_pool (False) is allowed only for 1-D k-max pooling, got dims={self.dims}"
            )
        self.remember(k=self.k, global_pool=self.is_global, flatten=self.flatten)

    def feat_mult(self) -> int:
        return self.k

    def size_follows_input(self, rank: int) -> bool:
        return False

    def channel_major(self, x, training):
        return kmax_last_axis(self.planes(x), self.k)


@_register
class DynamicKMaxPool(_ChannelMajorPool):
    r"""Dynamic k-max pooling over time: :math:`k = \max(k_{top}, \lceil (L - l)/L \cdot s
    \rceil)` for ``layer`` ``l`` of ``num_layers`` ``L``; without them the top layer (global,
    :math:`k = k_{top}`)."""

    def __init__(self, k_top=1, layer=None, num_layers=None, flatten=True, dims=1,
                 data_format=None, **kwargs):
        if dims != 1:
            raise ValueError(f"pool 'dynamic_kmax' supports dims (1,), got dims={dims}")
        super().__init__(dims, data_format, flatten, **kwargs)
        self.k_top = check_count(k_top, "k_top")
        self.is_global = check_dynamic_layer(self.k_top, layer, num_layers)
        self.layer_index, self.num_layers = layer, num_layers
        self.remember(k_top=self.k_top, layer=layer, num_layers=num_layers,
                          flatten=self.flatten)

    def feat_mult(self) -> int:
        return self.k_top

    def size_follows_input(self, rank: int) -> bool:
        return not self.is_global  # k grows with the length

    def channel_major(self, x, training):
        planes = self.planes(x)
        if self.is_global:
            return kmax_last_axis(planes, self.k_top)
        length = int(planes.shape[-1])
        return kmax_last_axis(planes, dynamic_k(length, self.k_top, self.layer_index,
                                                self.num_layers))


@_register
class SpatialPyramidPool(_ChannelMajorPool):
    r"""Spatial pyramid pooling (He et al. 2014): adaptive max (or avg) pooling on
    :math:`l \times l` grids for each level, bins concatenated level by level (row-major):
    ``(N, C, sum l^dims)``; ``global_pool=True`` flattens to ``(N, C * bins)``."""

    def __init__(self, levels=(1, 2, 4), mode="max", global_pool=False, flatten=True, dims=2,
                 data_format=None, **kwargs):
        super().__init__(dims, data_format, flatten, **kwargs)
        self.levels = pyramid_levels(levels)
        self.mode = check_choice(mode, "mode", ("max", "avg"))
        self.is_global = bool(global_pool)
        self.remember(levels=self.levels, mode=self.mode, global_pool=self.is_global,
                          flatten=self.flatten)

    def feat_mult(self) -> int:
        return sum(level ** self.dims for level in self.levels)

    def size_follows_input(self, rank: int) -> bool:
        return False

    def channel_major(self, x, training):
        W.spatial_shape(x, self.dims)
        if self.mode == "max":
            def reduce(part, axis):
                return ops.max(part, axis=axis)
        else:
            def reduce(part, axis):
                return ops.mean(part, axis=axis)
        pieces = []
        for level in self.levels:
            pooled = x
            for d in range(self.dims):
                pooled = W.adaptive_reduce(pooled, 1 + d, level, reduce)
            pieces.append(self.planes(pooled))
        return ops.concatenate(pieces, axis=-1)


# ---------------------------------------------------------------------------------------------
# BlurPool


def binomial_taps(size: int) -> np.ndarray:
    r"""Normalised binomial taps :math:`\binom{n-1}{k} / 2^{n-1}` (1 to 7 of them)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 7:
        raise ValueError(f"kernel_size ({size!r}) must be an int from 1 to 7 (binomial filter)")
    taps = np.array([math.comb(size - 1, k) for k in range(size)], np.float64)
    return taps / taps.sum()


_PADDING_MODES = ("reflect", "replicate", "zeros")


def _pad_axis(x, axis: int, before: int, after: int, mode: str):
    if not before and not after:
        return x
    if mode == "zeros":
        widths = [(0, 0)] * len(x.shape)
        widths[axis] = (before, after)
        return ops.pad(x, widths)
    size = int(x.shape[axis])
    index = np.arange(-before, size + after)
    if mode == "reflect":
        index = np.abs(index)
        index = np.where(index >= size, 2 * (size - 1) - index, index)
    else:
        index = np.clip(index, 0, size - 1)
    return W.take_positions(x, axis, index)


def blur(x, dims: int, kernel_size: int, stride, padding_mode: str):
    """Binomial low-pass then subsample, one separable 1-D filter per axis (channels-last)."""
    taps = binomial_taps(kernel_size)
    before, after = (kernel_size - 1) // 2, kernel_size // 2
    spatial = W.spatial_shape(x, dims)
    if padding_mode == "reflect" and min(spatial) <= after:
        raise ValueError(
            f"reflect padding ({after}) must be smaller than every spatial size "
            f"{spatial}; use padding_mode='replicate' or a smaller kernel_size"
        )
    for d in range(dims):
        axis = 1 + d
        padded = _pad_axis(x, axis, before, after, padding_mode)
        out = (int(padded.shape[axis]) - kernel_size) // stride[d] + 1
        total = None
        for j, tap in enumerate(taps):
            index = [slice(None)] * len(x.shape)
            index[axis] = slice(j, j + (out - 1) * stride[d] + 1, stride[d])
            term = padded[tuple(index)] * float(tap)
            total = term if total is None else total + term
        x = total
    return x


@_register
class BlurPool(PoolLayer):
    r"""BlurPool (Zhang 2019): a binomial low-pass filter of ``kernel_size`` taps (reflect
    padding by default), then subsample by ``stride``: output :math:`\lceil S/s \rceil`."""

    def __init__(self, kernel_size=3, stride=2, padding_mode="reflect", dims=2,
                 data_format=None, **kwargs):
        super().__init__(dims, data_format, True, **kwargs)
        binomial_taps(kernel_size)
        self.kernel_size = kernel_size
        self.stride = normalize_tuple(stride, self.dims, "stride")
        self.padding_mode = check_choice(padding_mode, "padding_mode", _PADDING_MODES)
        self.remember(kernel_size=kernel_size, stride=self.stride,
                          padding_mode=self.padding_mode)

    def pool(self, x, training):
        return blur(x, self.dims, self.kernel_size, self.stride, self.padding_mode)


@_register
class MaxBlurPool(PoolLayer):
    r"""MaxBlurPool (Zhang 2019): max pooling with stride 1, then :class:`BlurPool`."""

    def __init__(self, kernel_size=2, stride=2, blur_size=3, padding_mode="reflect", dims=2,
                 data_format=None, **kwargs):
        super().__init__(dims, data_format, True, **kwargs)
        self.kernel_size = normalize_tuple(kernel_size, self.dims, "kernel_size")
        self.stride = normalize_tuple(stride, self.dims, "stride")
        binomial_taps(blur_size)
        self.blur_size = blur_size
        self.padding_mode = check_choice(padding_mode, "padding_mode", _PADDING_MODES)
        self.remember(kernel_size=self.kernel_size, stride=self.stride, blur_size=blur_size,
                          padding_mode=self.padding_mode)

    def pool(self, x, training):
        spatial = W.spatial_shape(x, self.dims)
        for d in range(self.dims):
            if spatial[d] < self.kernel_size[d]:
                raise ValueError(
                    f"kernel_size ({self.kernel_size[d]}) is larger than the input "
                    f"({spatial[d]}) in dim {d}"
                )
        geometry = W.geometry_of(x, self.dims, self.kernel_size, 1, 0)
        dense = W.window_max(x, geometry)
        return blur(dense, self.dims, self.blur_size, self.stride, self.padding_mode)


# ---------------------------------------------------------------------------------------------
# Fractional max pooling


def _region_index(input_size, output_size, kernel, u, overlapping, random_keys):
    """``(out, width)`` positions of every window along one axis, for an offset ``u`` (a
    tensor: training draws it) and, for random region orders, uniform ``random_keys``."""
    if kernel is not None:  # PyTorch's variant: windows of `kernel` at pseudo-random starts
        if output_size > 1:
            alpha = (input_size - kernel) / (output_size - 1)
            steps = ops.arange(output_size - 1, dtype="float32")
            starts = ops.floor((steps + u) * alpha) - ops.floor(u * alpha)
            starts = ops.concatenate([ops.cast(starts, "int32"),
                                      ops.convert_to_tensor([input_size - kernel], "int32")])
        else:
            starts = ops.convert_to_tensor([input_size - kernel], "int32")
        return ops.expand_dims(starts, 1) + ops.arange(kernel, dtype="int32")[None, :]
    alpha = input_size / output_size
    if random_keys is None:
        steps = ops.arange(output_size + 1, dtype="float32")
        bounds = ops.cast(ops.floor(alpha * (steps + u)) - ops.floor(alpha * u), "int32")
        bounds = ops.concatenate([bounds[:-1], ops.convert_to_tensor([input_size], "int32")])
    else:
        small = input_size // output_size
        ranks = ops.argsort(ops.argsort(random_keys))
        increments = small + ops.cast(ranks < input_size - small * output_size, "int32")
        bounds = ops.concatenate([ops.zeros((1,), "int32"), ops.cumsum(increments)])
    starts = bounds[:-1]
    ends = bounds[1:] if overlapping else bounds[1:] - 1
    ends = ops.minimum(ends, input_size - 1)
    width = math.ceil(alpha) + (1 if overlapping else 0)
    index = ops.expand_dims(starts, 1) + ops.arange(width, dtype="int32")[None, :]
    return ops.minimum(index, ops.expand_dims(ends, 1))


def _static_region_index(input_size: int, output_size: int, overlapping: bool) -> np.ndarray:
    """The mid-point grid's regions (``u = 1/2``), computed in float64 as poolkit.nn does."""
    alpha = input_size / output_size
    steps = np.arange(output_size + 1, dtype=np.float64)
    bounds = (np.floor(alpha * (steps + 0.5)) - np.floor(alpha * 0.5)).astype(np.int64)
    bounds[-1] = input_size
    starts = bounds[:-1]
    ends = np.minimum(bounds[1:] if overlapping else bounds[1:] - 1, input_size - 1)
    width = math.ceil(alpha) + (1 if overlapping else 0)
    return np.minimum(starts[:, None] + np.arange(width)[None], ends[:, None])


@_register
class FractionalMaxPool(PoolLayer):
    r"""Fractional max pooling (Graham 2014): max over pseudo-random regions giving a
    non-integer size ratio (``output_size`` or ``output_ratio``). With ``kernel_size`` it is
    PyTorch's variant (windows at pseudo-random starts), else disjoint (or ``overlapping``)
    regions, pseudo-random or in a random order (``pseudo_random=False``).

    Eval mode uses the fixed mid-point grid (``u = 1/2``) unless ``deterministic_eval=False``,
    giving exactly :mod:`poolkit.nn`'s output. In training one offset per axis is drawn per
    call and shared by every plane (poolkit.nn and PyTorch draw one per plane).
    """

    def __init__(self, kernel_size=None, output_size=None, output_ratio=None, overlapping=False,
                 pseudo_random=True, deterministic_eval=True, seed=None, dims=2,
                 data_format=None, **kwargs):
        super().__init__(dims, data_format, True, **kwargs)
        if (output_size is None) == (output_ratio is None):
            raise ValueError(
                f"exactly one of output_size ({output_size!r}) and output_ratio "
                f"({output_ratio!r}) must be given"
            )
        self.kernel_size = None if kernel_size is None else normalize_tuple(
            kernel_size, self.dims, "kernel_size")
        self.output_size, self.output_ratio = output_size, output_ratio
        self.overlapping, self.pseudo_random = bool(overlapping), bool(pseudo_random)
        self.deterministic_eval = bool(deterministic_eval)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.remember(kernel_size=self.kernel_size, output_size=output_size,
                          output_ratio=output_ratio, overlapping=self.overlapping,
                          pseudo_random=self.pseudo_random,
                          deterministic_eval=self.deterministic_eval, seed=seed)

    def pool(self, x, training):
        spatial = W.spatial_shape(x, self.dims)
        sizes = fractional_output_size(spatial, self.output_size, self.output_ratio)
        for d, (size, length) in enumerate(zip(sizes, spatial, strict=True)):
            if not 1 <= size <= length:
                raise ValueError(f"output size ({size}) must be between 1 and the input size "
                                 f"({length}) in dim {d}")
        if self.kernel_size is not None:
            check_fractional_sizes(spatial, self.kernel_size, sizes)
        random = training or not self.deterministic_eval
        for d in range(self.dims):
            kernel = None if self.kernel_size is None else self.kernel_size[d]
            index = self._index(spatial[d], sizes[d], kernel, random, x.dtype)
            out, width = int(index.shape[0]), int(index.shape[1])
            gathered = ops.take(x, ops.reshape(index, (-1,)), axis=1 + d)
            shape = list(gathered.shape)
            shape[0] = -1
            shape[1 + d:2 + d] = [out, width]
            x = ops.max(ops.reshape(gathered, shape), axis=2 + d)
        return x

    def _index(self, length, size, kernel, random, dtype):
        if not random:  # the fixed grid, exactly poolkit.nn's (u = 1/2 in the input's precision)
            if kernel is not None:
                name = keras.backend.standardize_dtype(dtype)
                precision = name if name in ("float16", "float64") else "float32"
                starts = np.array(fractional_intervals(0.5, length, size, kernel, precision))
                return ops.convert_to_tensor(starts[:, None] + np.arange(kernel)[None], "int32")
            return ops.convert_to_tensor(_static_region_index(length, size, self.overlapping),
                                         "int32")
        u = keras.random.uniform((), seed=self.seed_generator)
        keys = None
        if kernel is None and not self.pseudo_random:
            keys = keras.random.uniform((size,), seed=self.seed_generator)
        return _region_index(length, size, kernel, u, self.overlapping, keys)


# ---------------------------------------------------------------------------------------------
# Attention pooling


_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


@_register
class AttentionPool(PoolLayer):
    r"""Attention pooling (CLIP, Radford et al. 2021): a learned query (or the mean token,
    ``query="mean"``) attends to every position, multi-head, with an optional learned positional
    embedding (``spatial_size``; linearly interpolated to other sizes). Output
    ``(N, out_features)``, ``out_features`` a multiple of ``C`` (default ``C``).
    ``channels`` is read from the input when not given.
    """

    is_global = True

    def __init__(self, channels=None, num_heads=1, out_features=None, spatial_size=None,
                 query="learned", flatten=True, seed=None, dims=2, data_format=None, **kwargs):
        super().__init__(dims, data_format, flatten, **kwargs)
        self.channels = check_channels(channels)
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads ({num_heads!r}) must be an int >= 1")
        self.num_heads = num_heads
        self.out_features = out_features
        self.spatial_size = None if spatial_size is None else normalize_tuple(
            spatial_size, self.dims, "spatial_size")
        self.query_mode = check_choice(query, "query", ("learned", "mean"))
        self.seed = seed
        self.remember(channels=self.channels, num_heads=num_heads, out_features=out_features,
                          spatial_size=self.spatial_size, query=self.query_mode,
                          flatten=self.flatten, seed=seed)
        if self.channels is not None:
            self._check_widths(self.channels)

    def _check_widths(self, channels: int) -> int:
        if channels % self.num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads "
                             f"({self.num_heads})")
        out = channels if self.out_features is None else self.out_features
        if isinstance(out, bool) or not isinstance(out, int) or out < 1 or out % channels:
            raise ValueError(
                f"out_features ({out!r}) must be a positive multiple of channels ({channels}) "
                "so that the output is (N, C * feat_mult)"
            )
        return out

    def feat_mult(self) -> int:
        if self.channels is None or self.out_features is None:
            return 1
        return self.out_features // self.channels

    def build(self, input_shape):
        channels = int(input_shape[1] if self.channels_first else input_shape[-1])
        if self.channels is not None and channels != self.channels:
            raise ValueError(f"input has {channels} channels, the layer was built for "
                             f"{self.channels}")
        out = self._check_widths(channels)
        self.channels = self._args["channels"] = channels
        scale = channels ** -0.5
        seeds = iter([None, None] if self.seed is None else [self.seed, self.seed + 1])
        if self.query_mode == "learned":
            self.query = self.add_weight(
                name="query", shape=(channels,),
                initializer=keras.initializers.RandomNormal(stddev=scale, seed=next(seeds)))
        for name, width in zip(_PROJECTIONS, (channels, channels, channels, out), strict=True):
            dense = keras.layers.Dense(width, name=name)
            dense.build((None, channels))
            setattr(self, name, dense)
        if self.spatial_size is not None:
            self.pos_embed = self.add_weight(
                name="pos_embed", shape=(*self.spatial_size, channels),
                initializer=keras.initializers.RandomNormal(stddev=scale, seed=next(seeds)))

    def _position_embedding(self, spatial):
        pos = self.pos_embed
        for d in range(self.dims):
            if int(pos.shape[d]) != spatial[d]:
                matrix = W.linear_resize_matrix(int(pos.shape[d]), spatial[d])
                moved = ops.moveaxis(pos, d, -1)
                moved = ops.matmul(moved, ops.convert_to_tensor(matrix.T, dtype=pos.dtype))
                pos = ops.moveaxis(moved, -1, d)
        return pos

    def pool(self, x, training):
        spatial = W.spatial_shape(x, self.dims)
        channels = int(x.shape[-1])
        if self.spatial_size is not None:
            x = x + ops.cast(self._position_embedding(spatial), x.dtype)
        tokens = ops.reshape(x, (-1, int(np.prod(spatial)), channels))  # (N, L, C)
        if self.query_mode == "learned":
            query = ops.zeros_like(tokens[:, :1]) + ops.cast(self.query, x.dtype)
        else:
            query = ops.mean(tokens, axis=1, keepdims=True)
            tokens = ops.concatenate([query, tokens], axis=1)
        heads, width = self.num_heads, channels // self.num_heads

        def split(t):  # (N, S, C) -> (N, h, S, d)
            return ops.transpose(ops.reshape(t, (-1, int(t.shape[1]), heads, width)),
                                 (0, 2, 1, 3))

        q, k, v = split(self.q_proj(query)), split(self.k_proj(tokens)), split(self.v_proj(tokens))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(width)
        pooled = ops.matmul(ops.softmax(scores, axis=-1), v)  # (N, h, 1, d)
        pooled = ops.reshape(ops.transpose(pooled, (0, 2, 1, 3)), (-1, channels))
        out = self.out_proj(pooled)
        return ops.reshape(out, (-1, *(1,) * self.dims, int(out.shape[-1])))

    def torch_weight_map(self):
        mapping = {}
        if self.query_mode == "learned":
            mapping["query"] = (self.query, lambda a: a)
        for name in _PROJECTIONS:
            dense = getattr(self, name)
            mapping[f"{name}.weight"] = (dense.kernel, lambda a: a.T)
            mapping[f"{name}.bias"] = (dense.bias, lambda a: a)
        if self.spatial_size is not None:
            mapping["pos_embed"] = (self.pos_embed, lambda a: np.moveaxis(a, 0, -1))
        return mapping


@_register
class Identity(PoolLayer):
    """No pooling: ``y = x`` (the factory's ``""`` and ``"identity"``)."""

    def call(self, inputs, training=None):
        return inputs
