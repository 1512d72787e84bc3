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
tools can highlight).

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
from dataclasses import dataclass, field

from torch import nn

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
from poolkit.nn._utils import check_dims


@dataclass(frozen=True)
class PoolInfo:
    """Machine-readable description of one registry entry."""

    name: str  # the factory key
    title: str  # human name, e.g. "SoftPool"
    paper: str  # short citation ("" for folklore pools)
    summary: str  # one-line formula / what it does
    dims: tuple[int, ...]  # spatial dims the family supports
    local: bool  # has a windowed form
    global_: bool  # has a global form
    learnable: bool  # has learned parameters (in its default configuration)
    has_winners: bool  # each output is one selected input value (max-like), in eval mode
    size_args: tuple[str, ...] = ()  # arguments that select the windowed form
    stochastic: bool = False  # output differs between calls in training mode
    notes: str = ""
    local_dims: tuple[int, ...] | None = None  # dims of the windowed form, if fewer than dims
    needs_channels: bool = False  # the constructor requires channels=C (per-channel weights)

    @property
    def windowed_dims(self) -> tuple[int, ...]:
        """Spatial dims for which the windowed form exists (empty if none)."""
        if not self.local:
            return ()
        return self.dims if self.local_dims is None else self.local_dims


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
        return PoolInfo(
            name=name, title="Identity", paper="", summary="y = x (no pooling)",
            dims=(1, 2, 3), local=True, global_=True, learnable=False, has_winners=False,
        )
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
    if dims not in info.dims:
        raise ValueError(f"pool {name!r} supports dims {info.dims}, got dims={dims}")
    if global_pool is None:
        global_pool = not any(kwargs.get(arg) is not None for arg in info.size_args)
    if global_pool and not info.global_:
        raise ValueError(
            f"pool {name!r} has no global form; give one of its size arguments "
            f"{info.size_args} for the windowed form"
        )
    if not global_pool and not info.local:
        raise ValueError(f"pool {name!r} has only a global form (global_pool must not be False)")
    if not global_pool and dims not in info.windowed_dims:
        raise ValueError(
            f"pool {name!r} has a windowed form for dims {info.windowed_dims} only, got dims={dims}"
        )
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


_WINDOW = ("kernel_size",)

register_pool(
    PoolInfo("max", "Max pooling", "", r"y = max_{i in w} x_i", (1, 2, 3), True, True, False,
             True, _WINDOW),
    _classes(basic, "MaxPool"),
)
register_pool(
    PoolInfo("avg", "Average pooling", "", r"y = mean_{i in w} x_i", (1, 2, 3), True, True, False,
             False, _WINDOW),
    _classes(basic, "AvgPool"),
)
register_pool(
    PoolInfo("lp", "Power-average (Lp) pooling, PyTorch's", "Boureau, Ponce & LeCun, ICML 2010",
             r"y = (sum_{i in w} x_i^p)^(1/p); NaN for negative x with fractional p",
             (1, 2, 3), True, True, False, False, _WINDOW),
    _classes(basic, "LPPool"),
)
register_pool(
    PoolInfo("avgmax", "Average + max / 2", "", r"y = (max_w x + mean_w x) / 2", (1, 2, 3), True,
             True, False, False, _WINDOW),
    _classes(basic, "AvgMaxPool"),
)
register_pool(
    PoolInfo("catavgmax", "Concatenated average and max", "", r"y = [mean_w x ; max_w x]",
             (1, 2, 3), True, True, False, False, _WINDOW, notes="feat_mult() == 2"),
    _classes(basic, "CatAvgMaxPool"),
)
register_pool(
    PoolInfo("kmax", "k-max pooling", "Kalchbrenner, Grefenstette & Blunsom, ACL 2014",
             "the k largest values, in their original order", (1, 2, 3), True, True, False,
             True, (), notes="feat_mult() == k; windowed form (N, C, k) with global_pool=False",
             local_dims=(1,)),
    _classes(kmax, "KMaxPool"),
    _build_flag,
)


def _build_dynamic(cls: type, global_pool: bool, kwargs: dict) -> nn.Module:
    if global_pool:
        for arg in ("layer", "num_layers"):
            if kwargs.get(arg) is not None:
                raise ValueError(f"{arg} ({kwargs[arg]!r}) selects the windowed form")
    return cls(**kwargs)


register_pool(
    PoolInfo("dynamic_kmax", "Dynamic k-max pooling",
             "Kalchbrenner, Grefenstette & Blunsom, ACL 2014",
             "k-max with k = max(k_top, ceil((L - l) / L * s))", (1,), True, True, False, True,
             ("layer", "num_layers"), notes="global form = top layer, k = k_top"),
    {1: kmax.DynamicKMaxPool1d},
    _build_dynamic,
)


def _build_plain(cls: type, global_pool: bool, kwargs: dict) -> nn.Module:
    """Families with one form only: the class takes its arguments as they are."""
    if not global_pool:
        kwargs.pop("flatten", None)
    return cls(**kwargs)


register_pool(
    PoolInfo("lp_abs", "Lp pooling of |x|", "Boureau, Ponce & LeCun, ICML 2010",
             r"y = (sum_{i in w} |x_i|^p)^(1/p); safe on signed input", (1, 2, 3), True, True,
             False, False, _WINDOW),
    _classes(power, "LpAbsPool"),
)
register_pool(
    PoolInfo("stochastic", "Stochastic pooling", "Zeiler & Fergus, ICLR 2013",
             "train: sample a_i with p = a_i / sum a (a = relu x); eval: sum a^2 / sum a",
             (1, 2, 3), True, True, False, False, _WINDOW, stochastic=True,
             notes="winners in training only (the sampled position); eval is a weighted mean"),
    _classes(stochastic, "StochasticPool"),
)
register_pool(
    PoolInfo("fractional_max", "Fractional max pooling", "Graham, arXiv:1412.6071, 2014",
             "max over pseudo-random / random regions giving a non-integer size ratio",
             (1, 2, 3), True, False, False, True,
             ("kernel_size", "output_size", "output_ratio"), stochastic=True,
             notes="eval mode uses a fixed (mid-point) grid by default"),
    _classes(fractional, "FractionalMaxPool"),
    _build_plain,
)
register_pool(
    PoolInfo("mixed", "Mixed max-average pooling", "Yu, Wang, Chen & Wei, RSKT 2014",
             "y = a * max + (1 - a) * avg; a fixed, learned (sigmoid) or random per call",
             (1, 2, 3), True, True, True, False, _WINDOW,
             notes="mode='random' is stochastic in training"),
    _classes(mixed, "MixedPool"),
)
register_pool(
    PoolInfo("gated", "Gated max-average pooling", "Lee, Gallagher & Tu, AISTATS 2016",
             "g = sigmoid(w . x_w); y = g * max + (1 - g) * avg (learned mask w)", (1, 2, 3), True,
             False, True, False, _WINDOW),
    _classes(mixed, "GatedPool"),
    _build_plain,
)
register_pool(
    PoolInfo("tree", "Tree pooling", "Lee, Gallagher & Tu, AISTATS 2016",
             "learned pooling filters (leaves) mixed by learned sigmoid gates (nodes)", (1, 2, 3),
             True, False, True, False, _WINDOW),
    _classes(mixed, "TreePool"),
    _build_plain,
)
register_pool(
    PoolInfo("softpool", "SoftPool", "Stergiou, Poppe & Kalliatakis, ICCV 2021",
             "y = sum x e^x / sum e^x = avgpool(x e^x) / avgpool(e^x)", (1, 2, 3), True, True,
             False, False, _WINDOW),
    _classes(exponential, "SoftPool"),
)
register_pool(
    PoolInfo("lip", "Local importance-based pooling (LIP)", "Gao, Wang & Wu, ICCV 2019",
             "y = avgpool(x e^l) / avgpool(e^l), l = 12 sigmoid(IN(conv(x)))", (1, 2, 3), True,
             True, True, False, _WINDOW, notes="needs channels=C", needs_channels=True),
    _classes(exponential, "LIPPool"),
)
register_pool(
    PoolInfo("gem", "Generalised-mean (GeM) pooling", "Radenović, Tolias & Chum, TPAMI 2018",
             "y = (avgpool(clamp(x, eps)^p))^(1/p), learnable p (optionally per channel)",
             (1, 2, 3), True, True, True, False, _WINDOW),
    _classes(power, "GeMPool"),
)
register_pool(
    PoolInfo("lse", "Log-sum-exp pooling", "Pinheiro & Collobert, CVPR 2015",
             "y = (1/r) log(mean_w exp(r x)); smooth max, stable", (1, 2, 3), True, True, False,
             False, _WINDOW),
    _classes(exponential, "LSEPool"),
)
register_pool(
    PoolInfo("blur", "BlurPool (anti-aliased)", "Zhang, ICML 2019",
             "binomial low-pass filter (kernel_size taps, reflect padding), then subsample",
             (1, 2, 3), True, False, False, False, _WINDOW, notes="stride defaults to 2"),
    _classes(blur, "BlurPool"),
    _build_plain,
)
register_pool(
    PoolInfo("maxblur", "MaxBlurPool (anti-aliased max)", "Zhang, ICML 2019",
             "max pool with stride 1, then binomial blur and subsample", (1, 2, 3), True, False,
             False, False, _WINDOW, notes="stride defaults to 2; blur_size taps (default 3)"),
    _classes(blur, "MaxBlurPool"),
    _build_plain,
)
register_pool(
    PoolInfo("spp", "Spatial pyramid pooling", "He, Zhang, Ren & Sun, ECCV 2014",
             "adaptive max (or avg) pools on l x l grids for l in levels, concatenated",
             (1, 2, 3), True, True, False, True, ("levels",),
             notes="windowed: (N, C, bins); global: (N, C * bins), default levels (1, 2, 4); "
                   "winners with mode='max'"),
    _classes(pyramid, "SpatialPyramidPool"),
    _build_flag,
)
register_pool(
    PoolInfo("attention", "Attention pooling", "Radford et al. (CLIP), ICML 2021",
             "a learned query attends to all positions (multi-head), optional pos. embedding",
             (1, 2, 3), False, True, True, False, (), notes="needs channels=C",
             needs_channels=True),
    _classes(attention, "AttentionPool"),
    _build_plain,
)


_CONTEXT = ("channels",)  # a context module has one form, chosen by giving its input channels
register_pool(
    PoolInfo(name="ppm", title="Pyramid pooling module (PSPNet)",
             paper="Zhao, Shi, Qi, Wang & Jia, CVPR 2017",
             summary="y = [x; up(relu(bn(conv1x1(pool_bxb(x)))))] for b in bins (1, 2, 3, 6)",
             dims=(1, 2, 3), local=True, global_=False, learnable=True, has_winners=False,
             size_args=_CONTEXT, needs_channels=True,
             notes="same spatial size out; out_channels = C + len(bins) * branch_channels; "
                   "pool= any type with a global form (avg default)"),
    _classes(context, "PyramidPooling"),
    _build_plain,
)
register_pool(
    PoolInfo(name="aspp_pooling", title="ASPP image-level pooling branch (DeepLab v3)",
             paper="Chen, Papandreou, Schroff & Adam, arXiv:1706.05587, 2017",
             summary="y_s = relu(bn(conv1x1(pool(x)))) broadcast to every position s",
             dims=(1, 2, 3), local=True, global_=False, learnable=True, has_winners=False,
             size_args=_CONTEXT, needs_channels=True,
             notes="same spatial size out; out_channels (default C); pool= (avg default)"),
    _classes(context, "ASPPPooling"),
    _build_plain,
)
register_pool(
    PoolInfo(name="aspp", title="Atrous spatial pyramid pooling (DeepLab v3)",
             paper="Chen, Papandreou, Schroff & Adam, arXiv:1706.05587, 2017",
             summary="y = proj([conv1x1(x); conv3x3_r(x) for r in atrous_rates; "
                     "image pooling(x)])",
             dims=(1, 2, 3), local=True, global_=False, learnable=True, has_winners=False,
             size_args=_CONTEXT, needs_channels=True,
             notes="same spatial size out; out_channels (default C); atrous_rates (6, 12, 18)"),
    _classes(context, "ASPP"),
    _build_plain,
)
