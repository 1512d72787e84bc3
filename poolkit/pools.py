r"""The pooling catalogue: what each pooling type is, in one table (pure Python, no NumPy or torch).

One :class:`PoolInfo` per pooling type, all keyword fields: its name (the key of
:func:`poolkit.nn.create_pool`), title, paper, a one-line summary, the window-by-window formula
``poolkit explain`` prints, the spatial dims and forms it has, and what explanation tools may
show (``has_winners``). Everything that describes a pooling type reads it from here: the
factory in :mod:`poolkit.nn.factory` (which only adds the constructors), ``poolkit explain``
(:mod:`poolkit.experiments.explain_op`), the command line and the docs.

Adding a pooling type is one ``PoolInfo(name=..., ...)`` entry in :data:`POOLS`, plus its
constructor in :mod:`poolkit.nn.factory` (``_CONSTRUCTORS``); an entry with ``factory=False``
describes an engine op that ``create_pool`` does not build (adaptive pooling); one with
``context=True`` is a dense-prediction context module (PSPNet's ``ppm``, DeepLab's ``aspp``):
torch only (:func:`window_pool_names` leaves it out for :mod:`poolkit.keras`) and without a
formula for ``poolkit explain``.

Example::

    >>> from poolkit.pools import POOLS
    >>> info = POOLS["softpool"]
    >>> info.title, info.has_winners, info.windowed_dims
    ('SoftPool', False, (1, 2, 3))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PoolInfo", "POOLS", "IDENTITY", "factory_names", "window_pool_names",
           "explained_names", "POOLING_MODES", "LEARNED_MODES", "SENTENCE_TRANSFORMERS_MODES",
           "parse_mode"]


@dataclass(frozen=True, kw_only=True)
class PoolInfo:
    """Machine-readable description of one pooling type (every field by keyword)."""

    name: str  # the factory key
    title: str  # human name, e.g. "SoftPool"
    summary: str  # one-line formula / what it does
    paper: str = ""  # short citation ("" for folklore pools)
    formula: str = ""  # the window-by-window formula `poolkit explain` prints ("": not explained)
    dims: tuple[int, ...] = (1, 2, 3)  # spatial dims the family supports
    local: bool = True  # has a windowed form
    global_: bool = True  # has a global form
    learnable: bool = False  # has learned parameters (in its default configuration)
    has_winners: bool = False  # each output is one selected input value (max-like), in eval mode
    size_args: tuple[str, ...] = ("kernel_size",)  # arguments that select the windowed form
    stochastic: bool = False  # output differs between calls in training mode
    notes: str = ""
    local_dims: tuple[int, ...] | None = None  # dims of the windowed form, if fewer than dims
    needs_channels: bool = False  # the constructor requires channels=C (per-channel weights)
    factory: bool = True  # built by poolkit.nn.create_pool (False: an engine op only)
    # a context module for dense prediction (convolutions and batch norm around a pooling, same
    # spatial size out): torch only (no Keras layer), not explained window by window
    context: bool = False

    @property
    def windowed_dims(self) -> tuple[int, ...]:
        """Spatial dims for which the windowed form exists (empty if none)."""
        if not self.local:
            return ()
        return self.dims if self.local_dims is None else self.local_dims


IDENTITY = PoolInfo(name="identity", title="Identity", summary="y = x (no pooling)", size_args=())

_BOUREAU = "Boureau, Ponce & LeCun, ICML 2010"
_KALCHBRENNER = "Kalchbrenner, Grefenstette & Blunsom, ACL 2014"
_LEE = "Lee, Gallagher & Tu, AISTATS 2016"
_ZHANG = "Zhang, ICML 2019"
_CHEN_ASPP = "Chen, Papandreou, Schroff & Adam, arXiv:1706.05587, 2017"
_CONTEXT = ("channels",)  # a context module has one form, chosen by giving its input channels
_ADAPTIVE_BIN = "bin o spans floor(o*L/O) .. ceil((o+1)*L/O) - 1"

_ENTRIES = (
    PoolInfo(
        name="max", title="Max pooling", summary="y = max_{i in w} x_i", has_winners=True,
        formula="y[o] = max_{i in window(o)} x[i]",
    ),
    PoolInfo(
        name="avg", title="Average pooling", summary="y = mean_{i in w} x_i",
        formula="y[o] = (1/n(o)) * sum_{i in window(o)} x[i]   (n(o), per window: its cells "
                "inside the padded input; only the real ones with count_include_pad off; or "
                "divisor_override)",
    ),
    PoolInfo(
        name="lp", title="Power-average (Lp) pooling, PyTorch's", paper=_BOUREAU,
        summary="y = (sum_{i in w} x_i^p)^(1/p); NaN for negative x with fractional p",
        formula="y[o] = (sum_{i in window(o)} x[i]^p)^(1/p)",
    ),
    PoolInfo(
        name="avgmax", title="Average + max / 2", summary="y = (max_w x + mean_w x) / 2",
        formula="y[o] = (max_{window(o)} x + mean_{window(o)} x) / 2   (padding in neither)",
    ),
    PoolInfo(
        name="catavgmax", title="Concatenated average and max", summary="y = [mean_w x ; max_w x]",
        notes="feat_mult() == 2",
        formula="y[o] = [mean_{window(o)} x ; max_{window(o)} x]   (two channels per input "
                "channel)",
    ),
    PoolInfo(
        name="kmax", title="k-max pooling", paper=_KALCHBRENNER,
        summary="the k largest values, in their original order", has_winners=True, size_args=(),
        notes="feat_mult() == k; windowed form (N, C, k) with global_pool=False", local_dims=(1,),
        formula="y = the k largest x, kept in their original order",
    ),
    PoolInfo(
        name="dynamic_kmax", title="Dynamic k-max pooling", paper=_KALCHBRENNER,
        summary="k-max with k = max(k_top, ceil((L - l) / L * s))", dims=(1,), has_winners=True,
        size_args=("layer", "num_layers"), notes="global form = top layer, k = k_top",
        formula="y = the k largest x in order, k = max(k_top, ceil((num_layers - layer) / "
                "num_layers * L))",
    ),
    PoolInfo(
        name="lp_abs", title="Lp pooling of |x|", paper=_BOUREAU,
        summary="y = (sum_{i in w} |x_i|^p)^(1/p); safe on signed input",
        formula="y[o] = (sum_{i in window(o)} |x[i]|^p)^(1/p)",
    ),
    PoolInfo(
        name="stochastic", title="Stochastic pooling", paper="Zeiler & Fergus, ICLR 2013",
        summary="train: sample a_i with p = a_i / sum a (a = relu x); eval: sum a^2 / sum a",
        formula="a = max(x, 0); p_i = a_i / sum_{window} a; training: y = a_j with j ~ p "
                "(seeded); eval: y = sum p_i a_i",
        stochastic=True,
        notes="winners in training only (the sampled position); eval is a weighted mean",
    ),
    PoolInfo(
        name="fractional_max", title="Fractional max pooling",
        paper="Graham, arXiv:1412.6071, 2014",
        summary="max over pseudo-random / random regions giving a non-integer size ratio",
        formula="y[o] = max over a k x k window starting at floor((o+u)*a) - floor(u*a), "
                "a = (L - k)/(O - 1), u ~ U[0, 1) per plane (seeded); the last window starts "
                "at L - k",
        global_=False, has_winners=True, size_args=("kernel_size", "output_size", "output_ratio"),
        stochastic=True, notes="eval mode uses a fixed (mid-point) grid by default",
    ),
    PoolInfo(
        name="mixed", title="Mixed max-average pooling", paper="Yu, Wang, Chen & Wei, RSKT 2014",
        summary="y = a * max + (1 - a) * avg; a fixed, learned (sigmoid) or random per call",
        formula="y = alpha * max_{window} x + (1 - alpha) * mean_{window} x",
        learnable=True, notes="mode='random' is stochastic in training",
    ),
    PoolInfo(
        name="gated", title="Gated max-average pooling", paper=_LEE,
        summary="g = sigmoid(w . x_w); y = g * max + (1 - g) * avg (learned mask w)",
        global_=False, learnable=True,
        formula="g = sigmoid(w . x_window(o)); y[o] = g * max_{window(o)} x + (1 - g) * "
                "mean_{window(o)} x   (w learned)",
    ),
    PoolInfo(
        name="tree", title="Tree pooling", paper=_LEE,
        summary="learned pooling filters (leaves) mixed by learned sigmoid gates (nodes)",
        global_=False, learnable=True,
        formula="g = sigmoid(w . x_window(o)); y[o] = g * (v1 . x_window(o)) + (1 - g) * (v2 . "
                "x_window(o))   (v1, v2, w learned)",
    ),
    PoolInfo(
        name="softpool", title="SoftPool", paper="Stergiou, Poppe & Kalliatakis, ICCV 2021",
        summary="y = sum x e^x / sum e^x = avgpool(x e^x) / avgpool(e^x)",
        formula="w_i = exp(x_i) / sum_{window} exp(x); y = sum w_i x_i",
    ),
    PoolInfo(
        name="lip", title="Local importance-based pooling (LIP)", paper="Gao, Wang & Wu, ICCV 2019",
        summary="y = avgpool(x e^l) / avgpool(e^l), l = 12 sigmoid(IN(conv(x)))",
        learnable=True, notes="needs channels=C", needs_channels=True,
        formula="l = 12 sigmoid(IN(conv(x))); y[o] = sum_{window(o)} e^l x / sum_{window(o)} e^l",
    ),
    PoolInfo(
        name="gem", title="Generalised-mean (GeM) pooling",
        paper="Radenović, Tolias & Chum, TPAMI 2018",
        summary="y = (avgpool(clamp(x, eps)^p))^(1/p), learnable p (optionally per channel)",
        formula="y = (mean_{window} max(x, eps)^p)^(1/p)", learnable=True,
    ),
    PoolInfo(
        name="lse", title="Log-sum-exp pooling", paper="Pinheiro & Collobert, CVPR 2015",
        summary="y = (1/r) log(mean_w exp(r x)); smooth max, stable",
        formula="y = (1/r) log(mean_{window} exp(r x))   (r = --p)",
    ),
    PoolInfo(
        name="blur", title="BlurPool (anti-aliased)", paper=_ZHANG,
        summary="binomial low-pass filter (kernel_size taps, reflect padding), then subsample",
        global_=False, notes="stride defaults to 2",
        formula="y[o] = sum_j b_j x[o*s - floor((k-1)/2) + j]   (b binomial taps, reflect "
                "padding)",
    ),
    PoolInfo(
        name="maxblur", title="MaxBlurPool (anti-aliased max)", paper=_ZHANG,
        summary="max pool with stride 1, then binomial blur and subsample", global_=False,
        notes="stride defaults to 2; blur_size taps (default 3)",
        formula="M = max_pool(x, k, stride 1); y[o] = sum_j b_j M[o*s - 1 + j]   (3 binomial "
                "taps b, reflect padding)",
    ),
    PoolInfo(
        name="spp", title="Spatial pyramid pooling", paper="He, Zhang, Ren & Sun, ECCV 2014",
        summary="adaptive max (or avg) pools on l x l grids for l in levels, concatenated",
        has_winners=True, size_args=("levels",),
        notes="windowed: (N, C, bins); global: (N, C * bins), default levels (1, 2, 4); "
              "winners with mode='max'",
        formula="y = [max over bin b of level l]_{l in levels, b in the l x l grid of adaptive "
                "bins}",
    ),
    PoolInfo(
        name="attention", title="Attention pooling", paper="Radford et al. (CLIP), ICML 2021",
        summary="a learned query attends to all positions (multi-head), optional pos. embedding",
        local=False, learnable=True, size_args=(), notes="needs channels=C",
        needs_channels=True,
        formula="a_i = softmax_i(q_proj(query) . k_proj(x_i)); y = out_proj(sum_i a_i "
                "v_proj(x_i))",
    ),
    PoolInfo(
        name="ppm", title="Pyramid pooling module (PSPNet)",
        paper="Zhao, Shi, Qi, Wang & Jia, CVPR 2017",
        summary="y = [x; up(relu(bn(conv1x1(pool_bxb(x)))))] for b in bins (1, 2, 3, 6)",
        global_=False, learnable=True, size_args=_CONTEXT, needs_channels=True, context=True,
        notes="same spatial size out; out_channels = C + len(bins) * branch_channels; "
              "pool= any type with a global form (avg default)",
    ),
    PoolInfo(
        name="aspp_pooling", title="ASPP image-level pooling branch (DeepLab v3)",
        paper=_CHEN_ASPP,
        summary="y_s = relu(bn(conv1x1(pool(x)))) broadcast to every position s",
        global_=False, learnable=True, size_args=_CONTEXT, needs_channels=True, context=True,
        notes="same spatial size out; out_channels (default C); pool= (avg default)",
    ),
    PoolInfo(
        name="aspp", title="Atrous spatial pyramid pooling (DeepLab v3)", paper=_CHEN_ASPP,
        summary="y = proj([conv1x1(x); conv3x3_r(x) for r in atrous_rates; image pooling(x)])",
        global_=False, learnable=True, size_args=_CONTEXT, needs_channels=True, context=True,
        notes="same spatial size out; out_channels (default C); atrous_rates (6, 12, 18)",
    ),
    PoolInfo(
        name="adaptive_max", title="Adaptive max pooling", summary="max over each of O bins",
        formula=f"y[o] = max over bin o; {_ADAPTIVE_BIN}", has_winners=True,
        size_args=("output_size",), factory=False,
    ),
    PoolInfo(
        name="adaptive_avg", title="Adaptive average pooling", summary="mean over each of O bins",
        formula=f"y[o] = mean over bin o; {_ADAPTIVE_BIN}", size_args=("output_size",),
        factory=False,
    ),
)

POOLS: dict[str, PoolInfo] = {info.name: info for info in _ENTRIES}
if len(POOLS) != len(_ENTRIES):
    raise ValueError("poolkit.pools: two catalogue entries share a name")


def resolve_form(info: PoolInfo, dims: int, global_pool: bool | None, kwargs: dict) -> bool:
    """Which form of ``info`` a factory call builds: ``global_pool``, or (``None``) the global
    form unless one of the family's size arguments is given. Raises ``ValueError`` for a form
    or ``dims`` the family does not have (the words of :func:`poolkit.nn.create_pool` and
    :func:`poolkit.keras.create_pool` alike)."""
    name = info.name
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
    return bool(global_pool)


def factory_names() -> list[str]:
    """Names :func:`poolkit.nn.create_pool` builds, in catalogue order."""
    return [name for name, info in POOLS.items() if info.factory]


def window_pool_names() -> list[str]:
    """Factory names that are pooling layers, not context modules (those :mod:`poolkit.keras`
    has too), in catalogue order."""
    return [name for name in factory_names() if not POOLS[name].context]


def explained_names() -> list[str]:
    """Names ``poolkit explain`` walks through window by window (those with a ``formula``)."""
    return [name for name, info in POOLS.items() if info.formula]


# --------------------------------------------------------------------------------------------
# Sequence pooling modes (poolkit.nn.SequencePool and poolkit.keras.SequencePool)

POOLING_MODES: tuple[str, ...] = (
    "mean",
    "max",
    "min",
    "cls",
    "first",
    "last",
    "weighted_mean",
    "mean_sqrt_len",
    "kmax",
    "attention",
    "latent_attention",
)
"""Every single mode of ``SequencePool``; combine them with ``+``."""

LEARNED_MODES: tuple[str, ...] = ("attention", "latent_attention")
"""Modes with trainable weights (they need ``hidden_size``)."""

#: sentence-transformers' names of the same modes (``Pooling(pooling_mode=...)`` and the
#: ``pooling_mode_*`` keys of its ``1_Pooling/config.json``), accepted wherever a mode is.
SENTENCE_TRANSFORMERS_MODES: dict[str, str] = {
    "cls": "cls", "cls_token": "cls", "max": "max", "max_tokens": "max", "mean": "mean",
    "mean_tokens": "mean", "mean_sqrt_len_tokens": "mean_sqrt_len", "weightedmean": "weighted_mean",
    "weightedmean_tokens": "weighted_mean", "lasttoken": "last",
}


def parse_mode(mode: Any) -> tuple[str, ...]:
    """``"mean+max"`` -> ``("mean", "max")``, each a name of :data:`POOLING_MODES`.

    sentence-transformers' spellings (``lasttoken``, ``weightedmean``, ``mean_sqrt_len_tokens``,
    ``cls_token``, ...) are read as poolkit's modes (:data:`SENTENCE_TRANSFORMERS_MODES`).
    ``weightedmean`` weighs tokens by their rank among the real ones, which is
    sentence-transformers' position weight under right padding.
    """
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a string such as 'mean' or 'mean+max', got {mode!r}")
    parts = tuple(part.strip() for part in mode.split("+"))
    parts = tuple(part if part in POOLING_MODES else SENTENCE_TRANSFORMERS_MODES.get(part, part)
                  for part in parts)
    for part in parts:
        if part not in POOLING_MODES:
            raise ValueError(
                f"mode {mode!r}: unknown pooling mode {part!r}; valid modes are "
                f"{', '.join(POOLING_MODES)} (combine with '+', e.g. 'mean+max'; "
                f"sentence-transformers' names work too: {', '.join(ST_ONLY_NAMES)})"
            )
    if len(set(parts)) != len(parts):
        raise ValueError(f"mode {mode!r} repeats a mode; each may appear once")
    return parts


ST_ONLY_NAMES = tuple(name for name in SENTENCE_TRANSFORMERS_MODES if name not in POOLING_MODES)


#: Keyword arguments each sequence mode understands, with their defaults.
SEQUENCE_MODE_OPTIONS: dict[str, dict[str, Any]] = {
    "kmax": {"k": 2},
    "attention": {"num_heads": 1, "num_queries": 1},
    "latent_attention": {"num_heads": 8, "num_latents": 512, "mlp_dim": None},
}


def positive_int(name: str, value: Any) -> int:
    """An int ``>= 1`` (a sequence mode's option or size), or ``TypeError``/``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} ({value}) must be at least 1")
    return value


def resolve_sequence_options(modes: tuple[str, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options of the ``modes`` of one ``SequencePool``: their defaults
    (:data:`SEQUENCE_MODE_OPTIONS`) updated by ``kwargs``, checked. An option of another mode
    is a ``ValueError`` naming the mode it belongs to; an unknown one a ``TypeError``."""
    allowed = {name: default for part in modes
               for name, default in SEQUENCE_MODE_OPTIONS.get(part, {}).items()}
    for name in kwargs:
        if name not in allowed:
            known = sorted({key for options in SEQUENCE_MODE_OPTIONS.values() for key in options})
            users = [part for part, options in SEQUENCE_MODE_OPTIONS.items() if name in options]
            if users:
                raise ValueError(f"{name}={kwargs[name]!r} applies to mode {' / '.join(users)}, "
                                 f"not to mode {'+'.join(modes)!r}")
            raise TypeError(f"SequencePool got an unknown argument {name!r}; known: "
                            f"{', '.join(known)}")
    options = {**allowed, **kwargs}
    for name in ("k", "num_heads", "num_queries", "num_latents"):
        if name in options:
            options[name] = positive_int(name, options[name])
    if options.get("mlp_dim") is not None:
        options["mlp_dim"] = positive_int("mlp_dim", options["mlp_dim"])
    return options


def sequence_part_mult(part: str, options: dict[str, Any]) -> int:
    """H-wide blocks one sequence mode emits: ``k`` for kmax, ``num_queries`` for attention,
    else 1."""
    if part == "kmax":
        return options["k"]
    if part == "attention":
        return options["num_queries"]
    return 1
