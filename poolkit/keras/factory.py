"""``create_pool(name, dims=2, **kwargs)`` for Keras: the same names, forms and rules as
:func:`poolkit.nn.create_pool`.

With the family's size argument (``kernel_size``; ``output_size``/``output_ratio`` for
fractional max; ``levels`` for the spatial pyramid; ``layer``/``num_layers`` for dynamic k-max)
it is the windowed pool, without one the global pool ``(N, C * feat_mult)``;
``global_pool=True/False`` forces a form. ``""`` and ``"identity"`` give :class:`Identity`; a
Keras layer passes through; an unknown name raises ``ValueError`` listing the valid names.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import keras

from poolkit.keras import pooling as P
from poolkit.keras import shaped as S
from poolkit.keras._base import check_dims

_WINDOW = ("kernel_size",)


@dataclass(frozen=True)
class _Family:
    cls: type
    size_args: tuple[str, ...] = _WINDOW
    dims: tuple[int, ...] = (1, 2, 3)
    local: bool = True
    global_: bool = True
    local_dims: tuple[int, ...] | None = None
    flag: bool = False  # the class takes global_pool itself (k-max, pyramid)


_FAMILIES: dict[str, _Family] = {
    "max": _Family(P.MaxPool),
    "avg": _Family(P.AvgPool),
    "lp": _Family(P.LPPool),
    "avgmax": _Family(P.AvgMaxPool),
    "catavgmax": _Family(P.CatAvgMaxPool),
    "kmax": _Family(S.KMaxPool, (), local_dims=(1,), flag=True),
    "dynamic_kmax": _Family(S.DynamicKMaxPool, ("layer", "num_layers"), dims=(1,)),
    "lp_abs": _Family(P.LpAbsPool),
    "stochastic": _Family(P.StochasticPool),
    "fractional_max": _Family(S.FractionalMaxPool, ("kernel_size", "output_size",
                                                     "output_ratio"), global_=False),
    "mixed": _Family(P.MixedPool),
    "gated": _Family(P.GatedPool, global_=False),
    "tree": _Family(P.TreePool, global_=False),
    "softpool": _Family(P.SoftPool),
    "lip": _Family(P.LIPPool),
    "gem": _Family(P.GeMPool),
    "lse": _Family(P.LSEPool),
    "blur": _Family(S.BlurPool, global_=False),
    "maxblur": _Family(S.MaxBlurPool, global_=False),
    "spp": _Family(S.SpatialPyramidPool, ("levels",), flag=True),
    "attention": _Family(S.AttentionPool, (), local=False),
}
_IDENTITY_NAMES = ("", "identity")
_LAYER_KEYWORDS = {"name", "dtype", "trainable", "autocast"}


def list_pools(include_identity: bool = False) -> list[str]:
    """The pool names (sorted), the same as :func:`poolkit.nn.list_pools`."""
    names = sorted(_FAMILIES)
    return [*_IDENTITY_NAMES, *names] if include_identity else names


def pool_class(name: str) -> type:
    """The layer class of a family name (``ValueError`` listing the names if unknown)."""
    if name in _IDENTITY_NAMES:
        return S.Identity
    if name not in _FAMILIES:
        valid = ", ".join(repr(n) for n in list_pools(include_identity=True))
        raise ValueError(f"unknown pool name {name!r}; valid names: {valid}")
    return _FAMILIES[name].cls


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
        extra = sorted(set(kwargs) - {"data_format", "name"})
        if extra:
            raise TypeError(f"identity pooling takes no arguments, got {extra}")
        return cls(dims=dims, **kwargs)
    family = _FAMILIES[name]
    if dims not in family.dims:
        raise ValueError(f"pool {name!r} supports dims {family.dims}, got dims={dims}")
    if global_pool is None:
        global_pool = not any(kwargs.get(arg) is not None for arg in family.size_args)
    if global_pool and not family.global_:
        raise ValueError(
            f"pool {name!r} has no global form; give one of its size arguments "
            f"{family.size_args} for the windowed form"
        )
    if not global_pool and not family.local:
        raise ValueError(f"pool {name!r} has only a global form (global_pool must not be False)")
    local_dims = family.dims if family.local_dims is None else family.local_dims
    if not global_pool and dims not in local_dims:
        raise ValueError(
            f"pool {name!r} has a windowed form for dims {local_dims} only, got dims={dims}"
        )
    if family.flag:
        kwargs["global_pool"] = bool(global_pool)
    elif global_pool and "kernel_size" in family.size_args and kwargs.get("kernel_size"):
        raise ValueError(
            f"kernel_size ({kwargs['kernel_size']!r}) selects the windowed form; "
            "it cannot be combined with global_pool=True"
        )
    if not family.global_:
        kwargs.pop("flatten", None)  # a windowed-only family has nothing to flatten
    accepted = [p for p in inspect.signature(cls.__init__).parameters
                if p not in ("self", "kwargs", "dims")]
    unknown = sorted(set(kwargs) - set(accepted) - _LAYER_KEYWORDS)
    if unknown:
        raise TypeError(f"pool {name!r} got unexpected argument(s) {unknown}; it accepts {accepted}")
    return cls(dims=dims, **kwargs)
