"""``create_pool(name, dims=2, **kwargs)`` for Keras: the same names, forms and rules as
:func:`poolkit.nn.create_pool`, read from the same catalogue (:data:`poolkit.pools.POOLS`).

With the family's size argument (``kernel_size``; ``output_size``/``output_ratio`` for
fractional max; ``levels`` for the spatial pyramid; ``layer``/``num_layers`` for dynamic k-max)
it is the windowed pool, without one the global pool ``(N, C * feat_mult)``;
``global_pool=True/False`` forces a form. ``""`` and ``"identity"`` give :class:`Identity`; a
Keras layer passes through; an unknown name raises ``ValueError`` listing the valid names.
"""

from __future__ import annotations

import inspect

import keras

from poolkit.geometry import check_dims
from poolkit.keras import pooling as P
from poolkit.keras import shaped as S
from poolkit.pools import POOLS, resolve_form, window_pool_names

# name -> layer class; the forms, dims and size arguments come from poolkit.pools
_CLASSES: dict[str, type] = {
    "max": P.MaxPool, "avg": P.AvgPool, "lp": P.LPPool, "avgmax": P.AvgMaxPool,
    "catavgmax": P.CatAvgMaxPool, "kmax": S.KMaxPool, "dynamic_kmax": S.DynamicKMaxPool,
    "lp_abs": P.LpAbsPool, "stochastic": P.StochasticPool, "fractional_max": S.FractionalMaxPool,
    "mixed": P.MixedPool, "gated": P.GatedPool, "tree": P.TreePool, "softpool": P.SoftPool,
    "lip": P.LIPPool, "gem": P.GeMPool, "lse": P.LSEPool, "blur": S.BlurPool,
    "maxblur": S.MaxBlurPool, "spp": S.SpatialPyramidPool, "attention": S.AttentionPool,
}
# families whose class takes global_pool itself (k-max, pyramid)
_FLAG_CLASSES = (S.KMaxPool, S.SpatialPyramidPool)
_IDENTITY_NAMES = ("", "identity")
_LAYER_KEYWORDS = {"name", "dtype", "trainable", "autocast"}

if set(_CLASSES) != set(window_pool_names()):  # a new pooling entry needs its Keras class
    raise ImportError(
        "poolkit.keras and poolkit.pools disagree: "
        f"{sorted(set(window_pool_names()) ^ set(_CLASSES))}"
    )


def list_pools(include_identity: bool = False) -> list[str]:
    """The pool names (sorted): :func:`poolkit.nn.list_pools` without the torch-only context
    modules (``ppm``, ``aspp_pooling``, ``aspp``)."""
    names = sorted(_CLASSES)
    return [*_IDENTITY_NAMES, *names] if include_identity else names


def pool_class(name: str) -> type:
    """The layer class of a family name (``ValueError`` listing the names if unknown)."""
    if name in _IDENTITY_NAMES:
        return S.Identity
    if name not in _CLASSES:
        valid = ", ".join(repr(n) for n in list_pools(include_identity=True))
        raise ValueError(f"unknown pool name {name!r}; valid names: {valid}")
    return _CLASSES[name]


def create_pool(name, dims: int = 2, global_pool: bool | None = None, **kwargs):
    """Build the Keras pooling layer called ``name`` for ``dims`` spatial dims.

    ``kwargs`` are the family's arguments (the :mod:`poolkit.nn` names) plus ``data_format``,
    ``flatten`` and Keras' own (``name``, ``dtype``). Raises ``ValueError`` for an unknown name,
    unsupported ``dims`` or a missing form; ``TypeError`` for an argument the family does not
    take (listing those it does).
    """
    if isinstance(name, keras.layers.Layer):
        return name
    if not isinstance(name, str):
        raise TypeError(f"name must be a pool name (str) or a keras Layer, got {name!r}")
    check_dims(dims)
    cls = pool_class(name)
    if name in _IDENTITY_NAMES:
        extra = sorted(set(kwargs) - {"data_format"} - _LAYER_KEYWORDS)
        if extra:
            raise TypeError(f"identity pooling takes no arguments, got {extra}")
        return cls(dims=dims, **kwargs)
    info = POOLS[name]
    global_pool = resolve_form(info, dims, global_pool, kwargs)
    if issubclass(cls, _FLAG_CLASSES):
        kwargs["global_pool"] = bool(global_pool)
    elif global_pool and kwargs.get("kernel_size") is not None:
        raise ValueError(
            f"kernel_size ({kwargs['kernel_size']!r}) selects the windowed form; "
            "it cannot be combined with global_pool=True"
        )
    if not info.global_:
        kwargs.pop("flatten", None)  # a windowed-only family has nothing to flatten
    accepted = [p for p in inspect.signature(cls.__init__).parameters
                if p not in ("self", "kwargs", "dims")]
    unknown = sorted(set(kwargs) - set(accepted) - _LAYER_KEYWORDS)
    if unknown:
        raise TypeError(
            f"pool {name!r} got unexpected argument(s) {unknown}; it accepts {accepted}"
        )
    return cls(dims=dims, **kwargs)
