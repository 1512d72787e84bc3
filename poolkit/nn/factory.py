"""The pool factory: every pooling family by name (contract).

``create_pool(name, dims=2, **kwargs)`` returns an ``nn.Module`` with ``feat_mult()``:

- with the family's size argument (``kernel_size``; ``output_size``/``output_ratio`` for
  fractional max; ``levels`` for spatial pyramid; ``layer``/``num_layers`` for dynamic k-max) it is
  the **windowed** pool ``(N, C, *spatial) -> (N, C, *out)``;
- without one it is the **global** pool ``(N, C, *spatial) -> (N, C * feat_mult)``
  (``flatten=False`` keeps ``(N, C * feat_mult, 1, ...)``);
- ``global_pool=True``/``False`` overrides that choice (e.g. a spatial pyramid with custom
  ``levels`` flattened to a vector, or k-max ``(N, C, k)`` for a next convolution);
- ``''`` and ``"identity"`` return the input unchanged; an ``nn.Module`` passes through;
  an unknown name raises ``ValueError`` listing the valid names.

``pool_info(name)`` describes an entry (paper, formula, dims, local/global forms, learnable,
whether it has "winners" — input positions that alone decide each output, which explanation
tools can highlight). The descriptions live in :mod:`poolkit.pools` (one table, no torch, read
by the CLI and ``poolkit explain`` too); this module only adds the constructors.

Example::

    >>> pool = create_pool("catavgmax", dims=2)
    >>> pool(torch.randn(8, 64, 7, 7)).shape, pool.feat_mult()
    (torch.Size([8, 128]), 2)
    >>> create_pool("gem", dims=2, kernel_size=3, stride=2)(torch.rand(8, 64, 56, 56)).shape
    torch.Size([8, 64, 27, 27])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from torch import nn

from poolkit.geometry import check_dims
from poolkit.nn import (
    attention,
    basic,
    blur,
    context,
    exponential,
    fractional,
    kmax,
    mixed,
    power,
    pyramid,
    stochastic,
)
from poolkit.pools import IDENTITY, POOLS, PoolInfo, resolve_form


@dataclass(frozen=True)
class _Entry:
    info: PoolInfo
    classes: dict[int, type]  # dims -> module class
    # (class, global_pool, kwargs) -> module; default: windowed families (kernel_size=None=global)
    build: Callable | None = field(default=None)


_REGISTRY: dict[str, _Entry] = {}
_IDENTITY_NAMES = ("", "identity")


def register_pool(info: PoolInfo, classes: dict[int, type], build: Callable | None = None) -> None:
    """Add a family to the factory (used by poolkit itself; names must be new)."""
    if info.name in _REGISTRY or info.name in _IDENTITY_NAMES:
        raise ValueError(f"pool name {info.name!r} is already registered")
    _REGISTRY[info.name] = _Entry(info, dict(classes), build)


def list_pools(include_identity: bool = False) -> list[str]:
    """The registered pool names (sorted); ``include_identity`` adds ``''`` and ``'identity'``."""
    names = sorted(_REGISTRY)
    return [*_IDENTITY_NAMES, *names] if include_identity else names


def pool_info(name: str) -> PoolInfo:
    """The :class:`PoolInfo` of a registered name (``ValueError`` listing names if unknown)."""
    if name in _IDENTITY_NAMES:
        return replace(IDENTITY, name=name)
    return _entry(name).info


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        valid = ", ".join(repr(n) for n in list_pools(include_identity=True))
        raise ValueError(f"unknown pool name {name!r}; valid names: {valid}")
    return _REGISTRY[name]


def _build_window(cls: type, global_pool: bool, kwargs: dict) -> nn.Module:
    if global_pool:
        if kwargs.get("kernel_size") is not None:
            raise ValueError(
                f"kernel_size ({kwargs['kernel_size']!r}) selects the windowed form; "
                "it cannot be combined with global_pool=True"
            )
        kwargs = {**kwargs, "kernel_size": None}
    else:
        kwargs = {k: v for k, v in kwargs.items() if k != "flatten"}
    return cls(**kwargs)


def _build_flag(cls: type, global_pool: bool, kwargs: dict) -> nn.Module:
    """Families whose class takes ``global_pool`` itself (k-max, spatial pyramid)."""
    return cls(global_pool=global_pool, **kwargs)


def create_pool(name, dims: int = 2, global_pool: bool | None = None, **kwargs) -> nn.Module:
    """Build the pooling module called ``name`` for ``dims`` spatial dims (see module doc).

    Args:
        name: a name from :func:`list_pools`, ``''``/``"identity"``, or an ``nn.Module``
            (returned unchanged).
        dims: number of spatial dims of the input (1: ``(N, C, L)``, 2: images, 3: volumes).
        global_pool: ``None`` (default) chooses the windowed form when a size argument is
            given and the global form otherwise; ``True``/``False`` force one.
        **kwargs: the family's arguments (``kernel_size``, ``stride``, ``padding``, ``p``, ...);
            ``flatten`` (default ``True``) for the global form.

    Raises:
        ValueError: unknown name (listing the valid ones), unsupported ``dims``, or a form the
            family does not have.
        TypeError: an argument the family does not take (listing the ones it does).
    """
    if isinstance(name, nn.Module):
        return name
    if not isinstance(name, str):
        raise TypeError(f"name must be a pool name (str) or an nn.Module, got {name!r}")
    check_dims(dims)
    if name in _IDENTITY_NAMES:
        if kwargs:
            raise TypeError(f"identity pooling takes no arguments, got {sorted(kwargs)}")
        return basic.Identity(dims)
    entry = _entry(name)
    info = entry.info
    global_pool = resolve_form(info, dims, global_pool, kwargs)
    cls = entry.classes[dims]
    build = entry.build or _build_window
    try:
        return build(cls, bool(global_pool), dict(kwargs))
    except TypeError as error:
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise TypeError(
                f"pool {name!r} got unexpected argument(s) {unknown}; it accepts {accepted}"
            ) from error
        raise


def _classes(module, stem: str, dims=(1, 2, 3)) -> dict[int, type]:
    return {d: getattr(module, f"{stem}{d}d") for d in dims}


def _build_dynamic(cls: type, global_pool: bool, kwargs: dict) -> nn.Module:
    if global_pool:
        for arg in ("layer", "num_layers"):
            if kwargs.get(arg) is not None:
                raise ValueError(f"{arg} ({kwargs[arg]!r}) selects the windowed form")
    return cls(**kwargs)


def _build_plain(cls: type, global_pool: bool, kwargs: dict) -> nn.Module:
    """Families with one form only: the class takes its arguments as they are."""
    if not global_pool:
        kwargs.pop("flatten", None)
    return cls(**kwargs)


# name -> (module classes by dims, build); each name's description is poolkit.pools.POOLS[name].
_CONSTRUCTORS: dict[str, tuple[dict[int, type], Callable | None]] = {
    "max": (_classes(basic, "MaxPool"), None),
    "avg": (_classes(basic, "AvgPool"), None),
    "lp": (_classes(basic, "LPPool"), None),
    "avgmax": (_classes(basic, "AvgMaxPool"), None),
    "catavgmax": (_classes(basic, "CatAvgMaxPool"), None),
    "kmax": (_classes(kmax, "KMaxPool"), _build_flag),
    "dynamic_kmax": ({1: kmax.DynamicKMaxPool1d}, _build_dynamic),
    "lp_abs": (_classes(power, "LpAbsPool"), None),
    "stochastic": (_classes(stochastic, "StochasticPool"), None),
    "fractional_max": (_classes(fractional, "FractionalMaxPool"), _build_plain),
    "mixed": (_classes(mixed, "MixedPool"), None),
    "gated": (_classes(mixed, "GatedPool"), _build_plain),
    "tree": (_classes(mixed, "TreePool"), _build_plain),
    "softpool": (_classes(exponential, "SoftPool"), None),
    "lip": (_classes(exponential, "LIPPool"), None),
    "gem": (_classes(power, "GeMPool"), None),
    "lse": (_classes(exponential, "LSEPool"), None),
    "blur": (_classes(blur, "BlurPool"), _build_plain),
    "maxblur": (_classes(blur, "MaxBlurPool"), _build_plain),
    "spp": (_classes(pyramid, "SpatialPyramidPool"), _build_flag),
    "attention": (_classes(attention, "AttentionPool"), _build_plain),
    "ppm": (_classes(context, "PyramidPooling"), _build_plain),
    "aspp_pooling": (_classes(context, "ASPPPooling"), _build_plain),
    "aspp": (_classes(context, "ASPP"), _build_plain),
}


def _register_catalogue() -> None:
    """Register every factory entry of :data:`poolkit.pools.POOLS` with its constructor."""
    missing = sorted({n for n, info in POOLS.items() if info.factory} ^ set(_CONSTRUCTORS))
    if missing:
        raise RuntimeError(f"poolkit.pools and the factory's constructors disagree on {missing}")
    for name, (classes, build) in _CONSTRUCTORS.items():
        register_pool(POOLS[name], classes, build)


_register_catalogue()


def _global_bin_pool(pool: str, dims: int, channels: int, kwargs: dict) -> nn.Module:
    """The pooling of a context module's bins (:mod:`poolkit.nn.context`): ``pool``'s global
    form, not flattened; ``channels`` for the families that need it."""
    if pool in ("", "identity") or not pool_info(pool).global_:
        raise ValueError(f"pool ({pool!r}) must be a pooling type with a global form")
    if pool_info(pool).needs_channels:
        kwargs = {"channels": channels, **kwargs}
    return create_pool(pool, dims=dims, global_pool=True, flatten=False, **kwargs)


context.set_bin_pool_builder(_global_bin_pool)
