r"""The windowed pooling families as Keras 3 layers (``keras.ops`` only: any backend).

Each class is the twin of the :mod:`poolkit.nn` module of the same name, with the same
arguments (``kernel_size``, ``stride``, ``padding``, family options), the same geometry (from
:mod:`poolkit.geometry`) and the same numbers; ``dims`` picks 1-, 2- or 3-D input and
``data_format`` is ``"channels_last"`` (Keras' default, ``(N, *spatial, C)``) or
``"channels_first"`` (``(N, C, *spatial)``, poolkit.nn's layout). The classes ``MaxPool1D``,
``MaxPool2D``, ... fix ``dims``. ``kernel_size=None`` gives the family's global form.

Formulas (``w`` a window, :math:`|w|` its real positions unless said):

- max: :math:`\max_w x`; avg: :math:`\frac{1}{n}\sum_w x` with PyTorch's divisor ``n``;
- lp: PyTorch's :math:`(\sum_w x^p)^{1/p}`; lp_abs: :math:`(\sum_w |x|^p)^{1/p}`;
- avgmax: :math:`(\max + \mathrm{mean})/2`; catavgmax: :math:`[\mathrm{mean}; \max]`;
- gem: :math:`(\frac{1}{|w|}\sum_w \max(x,\epsilon)^p)^{1/p}`, learnable ``p``;
- softpool: :math:`\sum_w x e^x / \sum_w e^x`; lse: :math:`\frac1r\log\frac{1}{|w|}\sum_w e^{rx}`;
- lip: :math:`\sum_w x e^{\ell} / \sum_w e^{\ell}`, :math:`\ell = 12\sigma(\mathrm{IN}(W*x))`;
- stochastic: train samples :math:`a_i` with :math:`p_i = a_i/\sum a` (:math:`a = \max(x, 0)`),
  eval :math:`\sum a^2 / \sum a`;
- mixed: :math:`\alpha\max + (1-\alpha)\mathrm{mean}`; gated: :math:`\alpha = \sigma(\omega^\top
  x_w)` per window; tree: learned filters mixed by learned gates.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from poolkit.geometry import check_choice, check_positive, check_unit, normalize_tuple
from poolkit.keras import _windows as W
from poolkit.keras._base import WindowPool, check_channels

_PACKAGE = "poolkit"


def _register(cls):
    return keras.saving.register_keras_serializable(package=_PACKAGE)(cls)


# ---------------------------------------------------------------------------------------------
# Max, average, Lp and their mixes


@_register
class MaxPool(WindowPool):
    """Max pooling (PyTorch's ``max_pool``: dilation, ceil mode, NaN propagates)."""

    def __init__(self, kernel_size=None, stride=None, padding=0, dilation=1, ceil_mode=False,
                 flatten=True, dims=2, data_format=None, **kwargs):
        super().__init__(kernel_size, stride, padding, flatten, dims, data_format, **kwargs)
        self.dilation = normalize_tuple(dilation, self.dims, "dilation")
        self.ceil_mode = bool(ceil_mode)
        self.remember(dilation=self.dilation, ceil_mode=self.ceil_mode)

    def pool(self, x, training):
        return self.reduce_max(x, self.windows(x, self.dilation, self.ceil_mode))


@_register
class AvgPool(WindowPool):
    """Average pooling with PyTorch's divisor (``count_include_pad``, ceil-mode clipping)."""

    def __init__(self, kernel_size=None, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, flatten=True, dims=2, data_format=None, **kwargs):
        super().__init__(kernel_size, stride, padding, flatten, dims, data_format, **kwargs)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.remember(ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)

    def pool(self, x, training):
        geometry = self.windows(x, 1, self.ceil_mode)
        return self.reduce_sum(x, geometry) / self.counts(x, geometry, self.count_include_pad)


@_register
class LPPool(WindowPool):
    r"""PyTorch's power-average pooling :math:`(\sum_w x^p)^{1/p}` (NaN for negative ``x``
    with a fractional ``p``, as torch; use :class:`LpAbsPool` for signed input)."""

    def __init__(self, norm_type=2.0, kernel_size=None, stride=None, ceil_mode=False,
                 flatten=True, dims=2, data_format=None, **kwargs):
        super().__init__(kernel_size, stride, 0, flatten, dims, data_format, **kwargs)
        self.norm_type = check_positive(norm_type, "norm_type")
        self.ceil_mode = bool(ceil_mode)
        del self._args["padding"]
        self.remember(norm_type=self.norm_type, ceil_mode=self.ceil_mode)

    def pool(self, x, training):
        geometry = self.windows(x, 1, self.ceil_mode)
        powered = ops.power(x, self.norm_type)
        if geometry is None:
            total = self.reduce_sum(powered, None)
        else:  # torch: avg_pool(x^p) * prod(kernel); a clipped ceil window is scaled up too
            kernel = float(np.prod(geometry.kernel_size))
            total = self.reduce_sum(powered, geometry) / self.counts(x, geometry, True) * kernel
        return ops.power(total, 1.0 / self.norm_type)


@_register
class AvgMaxPool(WindowPool):
    """``(max + mean) / 2``, padding in neither term (timm's ``avgmax``)."""

    def pool(self, x, training):
        geometry = self.windows(x)
        return 0.5 * (self.reduce_max(x, geometry) + self.mean_excluding_padding(x, geometry))


@_register
class CatAvgMaxPool(WindowPool):
    """``[mean; max]`` along channels: ``C_out = 2C`` (timm's ``catavgmax``)."""

    def feat_mult(self) -> int:
        return 2

    def pool(self, x, training):
        geometry = self.windows(x)
        mean = self.mean_excluding_padding(x, geometry)
        return ops.concatenate([mean, self.reduce_max(x, geometry)], axis=-1)


# ---------------------------------------------------------------------------------------------
# Power means


def _power_mean(layer: WindowPool, base, p, geometry, divide: bool):
    r""":math:`s\,(\sum_w (a/s)^p / K)^{1/p}` with ``s`` the plane maximum of ``a`` (no overflow);
    an all-zero window gives 0 with a zero gradient."""
    scale = layer.plane_max(base)
    scale = ops.where(scale > 0, scale, ops.ones_like(scale))
    total = layer.reduce_sum(ops.power(base / scale, p), geometry)
    if divide:
        total = total / layer.counts(base, geometry)
    positive = total > 0
    safe = ops.where(positive, total, ops.ones_like(total))
    return ops.where(positive, scale * ops.power(safe, 1.0 / p), ops.zeros_like(total))


@_register
class LpAbsPool(WindowPool):
    r"""Lp pooling of the magnitudes, :math:`(\sum_w |x|^p)^{1/p}`: safe on signed input."""

    def __init__(self, norm_type=2.0, kernel_size=None, stride=None, padding=0, flatten=True,
                 dims=2, data_format=None, **kwargs):
        super().__init__(kernel_size, stride, padding, flatten, dims, data_format, **kwargs)
        self.norm_type = check_positive(norm_type, "norm_type")
        self.remember(norm_type=self.norm_type)

    def pool(self, x, training):
        return _power_mean(self, ops.abs(x), self.norm_type, self.windows(x), divide=False)


@_register
class GeMPool(WindowPool):
    r"""Generalised-mean pooling :math:`(\frac{1}{|w|}\sum_w \max(x,\epsilon)^p)^{1/p}`.

    ``p`` is one learnable scalar, or one per channel with ``channels=C``; ``learnable=False``
    keeps it fixed. Padding takes no part.
    """

    def __init__(self, kernel_size=None, stride=None, padding=0, p=3.0, eps=1e-6,
                 learnable=True, channels=None, flatten=True, dims=2, data_format=None,
                 **kwargs):
        super().__init__(kernel_size, stride, padding, flatten, dims, data_format, **kwargs)
        self.initial_p = check_positive(p, "p")
        self.eps = check_positive(eps, "eps")
        self.learnable = bool(learnable)
        self.channels = check_channels(channels)
        self.remember(p=self.initial_p, eps=self.eps, learnable=self.learnable,
                          channels=self.channels)

    def build(self, input_shape):
        shape = () if self.channels is None else (self.channels,)
        self.p = self.add_weight(
            name="p", shape=shape, trainable=self.learnable,
            initializer=keras.initializers.Constant(self.initial_p),
        )

    def pool(self, x, training):
        p = ops.cast(self.p, x.dtype)
        return _power_mean(self, ops.maximum(x, self.eps), p, self.windows(x), divide=True)

    def torch_weight_map(self):
        return {"p": (self.p, lambda a: a)}


# ---------------------------------------------------------------------------------------------
# Exponentially weighted


def _weighted_average(layer: WindowPool, values, logits, geometry):
    r""":math:`\sum_w v e^{\ell} / \sum_w e^{\ell}`, shifted by the plane maximum of ``logits``;
    a window whose weights all underflow falls back to its maximum value. A weight of 0 (a
    ``-inf`` logit: SoftPool's ``-inf`` value) adds nothing, not ``0 * -inf = NaN``."""
    weights = ops.exp(logits - layer.plane_max(logits))
    numerator = layer.reduce_sum(ops.where(weights > 0, values * weights, 0.0), geometry)
    denominator = layer.reduce_sum(weights, geometry)
    positive = denominator > 0
    safe = ops.where(positive, denominator, ops.ones_like(denominator))
    return ops.where(positive, numerator / safe, layer.reduce_max(values, geometry))


@_register
class SoftPool(WindowPool):
    r"""SoftPool (Stergiou et al. 2021): :math:`\sum_w x e^x / \sum_w e^x`."""

    def pool(self, x, training):
        return _weighted_average(self, x, x, self.windows(x))


@_register
class LSEPool(WindowPool):
    r"""Log-sum-exp pooling (Pinheiro & Collobert 2015):
    :math:`\frac1r \log \frac{1}{|w|}\sum_w e^{r x}`, computed from the plane maximum."""

    def __init__(self, kernel_size=None, stride=None, padding=0, r=1.0, flatten=True, dims=2,
                 data_format=None, **kwargs):
        super().__init__(kernel_size, stride, padding, flatten, dims, data_format, **kwargs)
        self.r = check_positive(r, "r")
        self.remember(r=self.r)

    def pool(self, x, training):
        geometry = self.windows(x)
        shift = self.plane_max(x)
        total = self.reduce_sum(ops.exp(self.r * (x - shift)), geometry)
        count = self.counts(x, geometry)
        positive = total > 0
        safe = ops.where(positive, total, ops.ones_like(total))
        smooth = shift + ops.log(safe / count) / self.r
        return ops.where(positive, smooth, self.reduce_max(x, geometry) - ops.log(count) / self.r)


def _conv_kernel(weight: np.ndarray) -> np.ndarray:
    """A torch convolution weight ``(out, in, *k)`` as a Keras kernel ``(*k, in, out)``."""
    return np.moveaxis(weight, (0, 1), (-1, -2))


@_register
class LIPPool(WindowPool):
    r"""Local importance-based pooling (Gao et al. 2019): :math:`\sum_w x e^{\ell}/\sum_w e^{\ell}`
    with :math:`\ell = c\,\sigma(\mathrm{norm}(W * x))` (conv without bias, zero-initialised, so
    a fresh layer is an average pool; ``norm`` ``"instance"`` (affine) or ``"batch"``).
    ``channels`` is read from the input when not given.
    """

    def __init__(self, channels=None, kernel_size=None, stride=None, padding=0, flatten=True,
                 logit_kernel_size=3, norm="instance", coeff=12.0, dims=2, data_format=None,
                 **kwargs):
        super().__init__(kernel_size, stride, padding, flatten, dims, data_format, **kwargs)
        self.channels = check_channels(channels)
        if (isinstance(logit_kernel_size, bool) or not isinstance(logit_kernel_size, int)
                or logit_kernel_size < 1 or logit_kernel_size % 2 == 0):
            raise ValueError(
                f"logit kernel_size ({logit_kernel_size!r}) must be an odd int >= 1")
        self.logit_kernel_size = logit_kernel_size
        self.norm = check_choice(norm, "norm", ("instance", "batch"))
        self.coeff = check_positive(coeff, "coeff")
        self.remember(channels=self.channels, logit_kernel_size=logit_kernel_size,
                          norm=self.norm, coeff=self.coeff)

    def build(self, input_shape):
        channels = int(input_shape[1] if self.channels_first else input_shape[-1])
        if self.channels is not None and channels != self.channels:
            raise ValueError(f"input has {channels} channels, the layer was built for "
                             f"{self.channels}")
        self.channels = self._args["channels"] = channels
        k = self.logit_kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(*(k,) * self.dims, channels, channels),
                                      initializer="zeros")
        if self.norm == "instance":
            self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
        else:
            self.batch_norm = keras.layers.BatchNormalization(axis=-1, momentum=0.9,
                                                              epsilon=1e-5)
            self.batch_norm.build((None, *(1,) * self.dims, channels))

    def logits(self, x, training):
        z = ops.conv(x, ops.cast(self.kernel, x.dtype), strides=1, padding="same",
                     data_format="channels_last")
        if self.norm == "batch":
            return ops.sigmoid(self.batch_norm(z, training=training)) * self.coeff
        beta = ops.cast(self.beta, x.dtype)
        if math.prod(int(s) for s in x.shape[1:1 + self.dims]) == 1:
            return ops.sigmoid(beta + ops.zeros_like(z)) * self.coeff  # torch's limit
        mean = ops.mean(z, axis=self.axes, keepdims=True)
        variance = ops.mean(ops.square(z - mean), axis=self.axes, keepdims=True)
        normed = (z - mean) / ops.sqrt(variance + 1e-5) * ops.cast(self.gamma, x.dtype) + beta
        return ops.sigmoid(normed) * self.coeff

    def pool(self, x, training):
        return _weighted_average(self, x, self.logits(x, training), self.windows(x))

    def torch_weight_map(self):
        mapping = {"logit.conv.weight": (self.kernel, _conv_kernel)}
        if self.norm == "instance":
            mapping.update({"logit.norm.weight": (self.gamma, lambda a: a),
                            "logit.norm.bias": (self.beta, lambda a: a)})
        else:
            bn = self.batch_norm
            mapping.update({
                "logit.norm.weight": (bn.gamma, lambda a: a),
                "logit.norm.bias": (bn.beta, lambda a: a),
                "logit.norm.running_mean": (bn.moving_mean, lambda a: a),
                "logit.norm.running_var": (bn.moving_variance, lambda a: a),
            })
        return mapping


# ---------------------------------------------------------------------------------------------
# Stochastic


@_register
class StochasticPool(WindowPool):
    r"""Stochastic pooling (Zeiler & Fergus 2013) of :math:`a = \max(x, 0)`.

    Training: each window outputs one :math:`a_i`, drawn with :math:`p_i = a_i/\sum_w a`
    (the exponential race: the window argmax of :math:`a_i / E_i`, :math:`E_i \sim
    \mathrm{Exp}(1)`); eval: :math:`\sum_w a^2 / \sum_w a` (0 for a window without a positive
    value). ``seed`` seeds the draws.
    """

    def __init__(self, kernel_size=None, stride=None, padding=0, flatten=True, seed=None,
                 dims=2, data_format=None, **kwargs):
        super().__init__(kernel_size, stride, padding, flatten, dims, data_format, **kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.remember(seed=seed)

    def pool(self, x, training):
        geometry = self.windows(x)
        positive = ops.relu(x)
        if not training:
            total = self.reduce_sum(positive, geometry)
            squares = self.reduce_sum(positive * positive, geometry)
            nonzero = total > 0
            safe = ops.where(nonzero, total, ops.ones_like(total))
            return ops.where(nonzero, squares / safe, ops.zeros_like(total))
        uniform = keras.random.uniform(ops.shape(x), dtype="float32", seed=self.seed_generator)
        tiny = float(np.finfo(np.float32).tiny)
        exponential = -ops.log(ops.clip(uniform, tiny, 1.0 - 2.0 ** -24))
        keys = ops.cast(ops.stop_gradient(positive), "float32") / exponential
        if geometry is None:
            return self._global_sample(positive, keys)
        best_key = best_value = None
        key_slices = W.window_slices(keys, geometry, -math.inf)
        for (_, key), (_, value) in zip(key_slices, W.window_slices(positive, geometry, 0.0),
                                        strict=True):
            if best_key is None:
                best_key, best_value = key, value
                continue
            better = key > best_key  # ties keep the earlier position
            best_key = ops.where(better, key, best_key)
            best_value = ops.where(better, value, best_value)
        return best_value

    def _global_sample(self, positive, keys):
        channels = int(positive.shape[-1])
        flat_keys = ops.reshape(keys, (-1, int(np.prod(keys.shape[1:-1])), channels))
        index = ops.expand_dims(ops.argmax(flat_keys, axis=1), 1)  # (N, 1, C)
        flat = ops.reshape(positive, ops.shape(flat_keys))
        chosen = ops.take_along_axis(flat, index, axis=1)
        return ops.reshape(chosen, (-1, *(1,) * self.dims, channels))


# ---------------------------------------------------------------------------------------------
# Mixed, gated and tree


@_register
class MixedPool(WindowPool):
    r"""Mixed pooling (Yu et al. 2014): :math:`\alpha\max + (1-\alpha)\,\mathrm{mean}`.

    ``mode``: ``"learned"`` (:math:`\alpha = \sigma(\text{logit})`, one or ``channels`` values),
    ``"fixed"``, or ``"random"`` (training: :math:`\alpha \in \{0, 1\}` per sample and channel
    with :math:`P(1) = \alpha`; eval: the expectation).
    """

    def __init__(self, kernel_size=None, stride=None, padding=0, alpha=0.5, mode="learned",
                 channels=None, flatten=True, seed=None, dims=2, data_format=None, **kwargs):
        super().__init__(kernel_size, stride, padding, flatten, dims, data_format, **kwargs)
        self.mode = check_choice(mode, "mode", ("fixed", "learned", "random"))
        self.alpha = check_unit(alpha, "alpha")
        self.channels = check_channels(channels)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.remember(alpha=self.alpha, mode=self.mode, channels=self.channels, seed=seed)

    def build(self, input_shape):
        shape = (1 if self.channels is None else self.channels,)
        if self.mode == "learned":
            clipped = min(max(self.alpha, 1e-4), 1 - 1e-4)
            self.alpha_logit = self.add_weight(
                name="alpha_logit", shape=shape,
                initializer=keras.initializers.Constant(math.log(clipped / (1 - clipped))),
            )

    def mixing_weight(self, x, training):
        if self.mode == "learned":
            return ops.sigmoid(ops.cast(self.alpha_logit, x.dtype))
        if self.mode == "random" and training:
            shape = (ops.shape(x)[0], *(1,) * self.dims, int(x.shape[-1]))
            draw = keras.random.uniform(shape, seed=self.seed_generator)
            return ops.cast(draw < self.alpha, x.dtype)
        return self.alpha

    def pool(self, x, training):
        geometry = self.windows(x)
        maximum = self.reduce_max(x, geometry)
        mean = self.mean_excluding_padding(x, geometry)
        return mean + self.mixing_weight(x, training) * (maximum - mean)

    def torch_weight_map(self):
        if self.mode != "learned":
            return {}
        return {"alpha_logit": (self.alpha_logit, lambda a: a.reshape(-1))}


class _MaskPool(WindowPool):
    """Gated and tree pooling: learned masks :math:`\\omega^\\top x_w` over every window.

    Masks have poolkit.nn's layout, ``(M, *kernel)`` shared by all channels or
    ``(C, M, *kernel)`` per channel; the learned masks see zeros at padding.
    """

    def __init__(self, kernel_size, stride=None, padding=0, channels=None, dims=2,
                 data_format=None, **kwargs):
        if kernel_size is None:
            raise ValueError(f"kernel_size is required: {self.family} pooling has no global form")
        super().__init__(kernel_size, stride, padding, True, dims, data_format, **kwargs)
        self.channels = check_channels(channels)
        del self._args["flatten"]
        self.remember(channels=self.channels)

    def mask_shape(self, count: int) -> tuple[int, ...]:
        prefix = () if self.channels is None else (self.channels,)
        return (*prefix, count, *self.kernel_size)

    def responses(self, x, masks, geometry):
        """``[sum_j w_m[j] x_w[j] for each mask m]``, each ``(N, *out, C)``."""
        flat = ops.reshape(ops.cast(masks, x.dtype), (*masks.shape[:-self.dims], -1))
        count = int(flat.shape[-2])
        outputs = [None] * count
        for index, (_, part) in enumerate(W.window_slices(x, geometry, 0.0)):
            for m in range(count):
                weight = flat[..., m, index]  # scalar, or (C,) per channel
                term = part * weight
                outputs[m] = term if outputs[m] is None else outputs[m] + term
        return outputs


@_register
class GatedPool(_MaskPool):
    r"""Gated pooling (Lee et al. 2016): :math:`g = \sigma(\omega^\top x_w)`,
    :math:`y = g \max_w x + (1 - g)\,\mathrm{mean}_w x`; the mask starts at zero (g = 1/2)."""

    family = "gated"

    def build(self, input_shape):
        self.gate_weight = self.add_weight(name="gate_weight", shape=self.mask_shape(1),
                                           initializer="zeros")

    def pool(self, x, training):
        geometry = self.windows(x)
        gate = ops.sigmoid(self.responses(x, self.gate_weight, geometry)[0])
        maximum = self.reduce_max(x, geometry)
        mean = self.mean_excluding_padding(x, geometry)
        return mean + gate * (maximum - mean)

    def torch_weight_map(self):
        return {"gate_weight": (self.gate_weight, lambda a: a)}


class _LeafInitializer(keras.initializers.Initializer):
    """Averaging filters ``1/K`` plus ``N(0, (0.5/K)^2)`` noise, so that the leaves differ."""

    def __init__(self, size: int, seed=None):
        self.size, self.seed = size, seed

    def __call__(self, shape, dtype=None):
        noise = keras.random.normal(shape, stddev=0.5 / self.size, dtype=dtype, seed=self.seed)
        return noise + 1.0 / self.size

    def get_config(self):
        return {"size": self.size, "seed": self.seed}


@_register
class TreePool(_MaskPool):
    r"""Tree pooling (Lee et al. 2016): leaf filters :math:`v_m^\top x_w` combined bottom-up by
    gates :math:`\sigma(\omega_n^\top x_w)` (internal nodes breadth-first, root first)."""

    family = "tree"

    def __init__(self, kernel_size, stride=None, padding=0, depth=2, channels=None, seed=None,
                 dims=2, data_format=None, **kwargs):
        super().__init__(kernel_size, stride, padding, channels, dims, data_format, **kwargs)
        if depth not in (2, 3):
            raise ValueError(f"depth ({depth!r}) must be 2 or 3 (the paper's trees)")
        self.depth, self.seed = depth, seed
        self.remember(depth=depth, seed=seed)

    def build(self, input_shape):
        leaves = 2 ** (self.depth - 1)
        size = math.prod(self.kernel_size)
        self.leaf_weight = self.add_weight(name="leaf_weight", shape=self.mask_shape(leaves),
                                           initializer=_LeafInitializer(size, self.seed))
        self.gate_weight = self.add_weight(name="gate_weight", shape=self.mask_shape(leaves - 1),
                                           initializer="zeros")

    def pool(self, x, training):
        geometry = self.windows(x)
        leaves = 2 ** (self.depth - 1)
        mask_axis = 0 if self.channels is None else 1
        masks = ops.concatenate([self.leaf_weight, self.gate_weight], axis=mask_axis)
        responses = self.responses(x, masks, geometry)
        level, gates = responses[:leaves], [ops.sigmoid(r) for r in responses[leaves:]]
        while len(level) > 1:
            first = len(level) // 2 - 1
            level = [level[2 * j + 1] + gates[first + j] * (level[2 * j] - level[2 * j + 1])
                     for j in range(len(level) // 2)]
        return level[0]

    def torch_weight_map(self):
        return {"leaf_weight": (self.leaf_weight, lambda a: a),
                "gate_weight": (self.gate_weight, lambda a: a)}
