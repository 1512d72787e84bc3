"""MetaFormer: a small image model whose token mixer is chosen by name — PoolFormer's pooling,
any pooling family of the zoo, self-attention (its transformer twin) or nothing (the ablation).

Yu et al., "MetaFormer is actually what you need for vision" (CVPR 2022) keep the transformer
block and swap only the token mixer; with plain average pooling (PoolFormer) the model still
competes with attention. One block, on a feature map ``x`` of shape ``(B, C, H, W)``::

    x = x + s1 * mixer(norm1(x))      # s1, s2: per-channel layer scale, init 1e-5
    x = x + s2 * mlp(norm2(x))        # mlp: 1x1 conv C -> r C, GELU, 1x1 conv r C -> C

``norm`` is a GroupNorm with one group (normalises over C, H and W per image). Mixers:

- ``pool``: PoolFormer's ``avg_pool(x, k, stride 1, padding k // 2, count_include_pad=False) - x``
  (``k = pool_size``, 3 in the paper); the ``- x`` because the block adds ``x`` back.
- a zoo family ``f`` (:func:`poolkit.nn.create_pool`): ``f(x) - x`` with ``kernel_size=k``,
  ``stride=1`` and "same" padding ``k // 2`` (``lp``, which takes no padding argument, gets the
  input zero-padded: zeros add nothing to its sum of ``x^p``; ``blur`` pads itself by
  reflection; ``lp`` needs an even ``norm_type`` on this signed input, ``lp_abs`` takes any).
  ``avg`` defaults to ``count_include_pad=False``, so ``avg`` equals ``pool``.
  Families that cannot keep the size at stride 1 are refused (:data:`REFUSED_MIXERS`, and every
  family without a 2-D ``kernel_size`` form: ``attention``, ``kmax``, ``dynamic_kmax``, ``spp``).
- ``attention``: multi-head self-attention over the ``H * W`` flattened tokens (``head_dim``
  channels a head), no position embedding: as in the paper's hybrid MetaFormers, the
  convolutional stem and downsampling carry the positions. (Not the zoo's ``attention`` pool,
  which is a global CLIP-style pool with no same-size form.)
- ``identity``: ``mixer(x) = x``, the paper's ablation (no token mixing inside the blocks).

The model: a conv stem (``stem_kernel``, stride ``stem_stride``, padding ``stem_kernel // 2``),
``depths[i]`` blocks of width ``dims[i]`` per stage, a 3x3 stride-2 conv between stages, then
GroupNorm, the mean over positions and a linear head. With the defaults on 28x28 MNIST::

    (B, 1, 28, 28) -stem-> (B, 32, 14, 14) -2 blocks-> -down-> (B, 64, 7, 7) -2 blocks->
    -norm, mean-> (B, 64) -head-> (B, 10)

Shape:
    - images: ``(B, in_channels, H, W)``, any size: with "same" padding every stage keeps at
      least one pixel (:attr:`MetaFormerConfig.stage_sizes`).
    - output: ``(B, num_classes)`` logits.

Example:
    >>> import torch
    >>> config = MetaFormerConfig(image_size=8, dims=(8, 16), depths=(1, 1), mixer="max")
    >>> config.stage_sizes
    ((4, 4), (2, 2))
    >>> MetaFormer(config)(torch.rand(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from poolkit.geometry import pool_output_size
from poolkit.models._pools import make_pool
from poolkit.models.pretrained import PretrainedMixin
from poolkit.models.registry import register_model
from poolkit.nn import list_pools, pool_info

__all__ = [
    "MetaFormer",
    "MetaFormerConfig",
    "MetaFormerBlock",
    "PoolMixer",
    "ZooPoolMixer",
    "SelfAttentionMixer",
    "OWN_MIXERS",
    "REFUSED_MIXERS",
    "list_mixers",
    "check_mixer",
    "build_mixer",
]

OWN_MIXERS = ("pool", "attention", "identity")
# Zoo families with a 2-D kernel_size form that still cannot mix tokens at stride 1, same size.
REFUSED_MIXERS = {
    "catavgmax": "it concatenates avg and max (feat_mult 2), doubling the channels",
    "fractional_max": "its pseudo-random regions have no stride: the output is always smaller "
    "than the input",
    "maxblur": "its max stage takes no padding, so a stride-1 window shrinks the map",
}
# Families without a padding argument that keep the size anyway.
_PADS_ITSELF = ("blur",)  # reflect padding inside
_ZERO_PADDED = ("lp",)  # no padding argument: the input is zero-padded (0^p adds nothing)
# Defaults that make a family behave as the paper's pooling.
_FAMILY_DEFAULTS = {"avg": {"count_include_pad": False}}


def _windowed_2d(name: str) -> bool:
    info = pool_info(name)
    return 2 in info.windowed_dims and "kernel_size" in info.size_args


def list_mixers() -> list[str]:
    """Every valid mixer name: ``pool``, ``attention``, ``identity``, then the zoo families."""
    zoo = [n for n in list_pools() if n not in OWN_MIXERS and n not in REFUSED_MIXERS
           and _windowed_2d(n)]
    return [*OWN_MIXERS, *zoo]


def check_mixer(name) -> None:
    """``ValueError`` naming ``name``, why it cannot mix tokens, and the valid mixer names."""
    if isinstance(name, str) and name in list_mixers():
        return
    why = ""
    if isinstance(name, str) and name in list_pools():
        why = REFUSED_MIXERS.get(name, "it has no 2-D windowed (kernel_size) form")
        why = f": pool {name!r} cannot be a stride-1 same-size token mixer because {why}"
    raise ValueError(f"mixer ({name!r}) is not a token mixer{why}; valid mixers: {list_mixers()}")


class PoolMixer(nn.Module):
    """PoolFormer's mixer: ``avg_pool2d(x, k, 1, k // 2, count_include_pad=False) - x``.

    Shape: ``(B, C, H, W) -> (B, C, H, W)`` (stride 1, same padding; ``k = pool_size``, odd).
    """

    def __init__(self, pool_size: int = 3):
        super().__init__()
        self.pool_size = pool_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        k = self.pool_size
        return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False) - x

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}"


class ZooPoolMixer(nn.Module):
    """``f(x) - x`` for a zoo family ``f`` at ``kernel_size=k``, stride 1, same size.

    Shape: ``(B, C, H, W) -> (B, C, H, W)``; ``kwargs`` go to the family (``p``, ``norm_type``...).
    """

    def __init__(self, name: str, channels: int, pool_size: int = 3, **kwargs):
        super().__init__()
        check_mixer(name)
        if name in OWN_MIXERS:
            raise ValueError(f"{name!r} is not a zoo family: use build_mixer({name!r}, ...)")
        self.name, self.pad = name, 0
        norm_type = kwargs.get("norm_type", 2.0)
        if name == "lp" and (float(norm_type) % 2 != 0):
            raise ValueError(f"norm_type ({norm_type}) of the lp mixer must be even: the mixer's "
                             "input is signed, and x^p of a negative x with odd or fractional p "
                             "gives NaN; use lp_abs (|x|^p) for other p")
        settings = {**_FAMILY_DEFAULTS.get(name, {}), "kernel_size": pool_size, "stride": 1}
        if name in _ZERO_PADDED:
            self.pad = pool_size // 2
        elif name not in _PADS_ITSELF:
            settings["padding"] = pool_size // 2
        self.pool = make_pool(name, 2, channels, **{**settings, **kwargs})

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        padded = F.pad(x, (self.pad,) * 4) if self.pad else x
        return self.pool(padded) - x


def _attention_heads(dim: int, head_dim: int) -> int:
    """``dim // head_dim`` heads; one head when ``dim < head_dim``."""
    if dim > head_dim and dim % head_dim:
        raise ValueError(f"dim ({dim}) must be a multiple of head_dim ({head_dim}) "
                         "for the attention mixer (or at most head_dim: one head)")
    return max(1, dim // head_dim)


class SelfAttentionMixer(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions of ``(B, C, H, W)``: the twin."""

    def __init__(self, dim: int, head_dim: int = 32):
        super().__init__()
        self.num_heads = _attention_heads(dim, head_dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, N, C), N = H * W
        qkv = self.qkv(tokens).view(batch, height * width, 3, self.num_heads, -1)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, C / heads)
        mixed = F.scaled_dot_product_attention(query, key, value)  # (B, heads, N, C / heads)
        mixed = self.proj(mixed.transpose(1, 2).reshape(batch, height * width, channels))
        return mixed.transpose(1, 2).reshape(batch, channels, height, width)


def build_mixer(name: str, dim: int, *, pool_size: int = 3, head_dim: int = 32,
                **kwargs) -> nn.Module:
    """The token mixer ``name`` for ``dim`` channels (``kwargs`` go to a zoo family)."""
    check_mixer(name)
    if name in OWN_MIXERS and kwargs:
        raise ValueError(f"mixer_kwargs ({kwargs}) apply to zoo families only, not {name!r}")
    if name == "pool":
        return PoolMixer(pool_size)
    if name == "attention":
        return SelfAttentionMixer(dim, head_dim)
    if name == "identity":
        return nn.Identity()
    return ZooPoolMixer(name, dim, pool_size, **kwargs)


@dataclass
class MetaFormerConfig:
    """Settings of a :class:`MetaFormer` (all JSON-ready; saved as the checkpoint's config).

    Attributes:
        in_channels: channels of the input images (default 1).
        num_classes: number of classes, the width of the logits (default 10).
        image_size: ``(H, W)`` of the training images, or one side of a square (default 28);
            ``poolkit train`` fills it from the data; it gives :attr:`stage_sizes`. The model
            runs on any size.
        dims: channels of each stage (default ``(32, 64)``); a single int is one stage.
        depths: blocks of each stage, one positive count per entry of ``dims`` (default
            ``(2, 2)``).
        mixer: the token mixer, one of :func:`list_mixers`: ``"pool"`` (PoolFormer's),
            ``"attention"``, ``"identity"`` or a zoo family with a 2-D windowed form (default
            ``"pool"``).
        mixer_kwargs: a zoo family's extra arguments (e.g. ``{"p": 3.0}`` for ``gem``);
            refused for the three own mixers (default ``{}``).
        pool_size: window side ``k`` of the pooling mixers, odd so that padding ``k // 2``
            keeps the size (default 3, the paper's).
        head_dim: channels per head of the attention mixer; heads = ``dim // head_dim`` (at
            least 1), ``dim`` a multiple of it when larger (default 32).
        mlp_ratio: the MLP's hidden width is ``int(mlp_ratio * dim)`` (default 4.0, > 0).
        stem_kernel: kernel of the stem convolution, padding ``stem_kernel // 2`` (default 3;
            the paper: 7 with stride 4 on 224x224 images).
        stem_stride: stride of the stem convolution (default 2).
        layer_scale_init: initial value of the per-channel layer scales ``s1, s2`` (default
            1e-5, the paper's: every block starts close to the identity).
        dropout: dropout probability before the head, in ``[0, 1)`` (default 0.0).
    """

    in_channels: int = 1
    num_classes: int = 10
    image_size: int | tuple[int, int] = 28  # (H, W) or a square side
    dims: tuple[int, ...] = (32, 64)  # channels of each stage
    depths: tuple[int, ...] = (2, 2)  # blocks of each stage
    mixer: str = "pool"  # pool, attention, identity or a zoo family (list_mixers())
    mixer_kwargs: dict = field(default_factory=dict)  # a zoo family's extra arguments
    pool_size: int = 3  # window of the pooling mixers (odd: same padding)
    head_dim: int = 32  # attention: channels per head (heads = dim // head_dim, at least 1)
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * dim
    stem_kernel: int = 3  # the paper: 7 with stride 4 on 224x224
    stem_stride: int = 2
    layer_scale_init: float = 1e-5  # the paper's: every block starts close to the identity
    dropout: float = 0.0  # before the head

    def __post_init__(self) -> None:
        if isinstance(self.image_size, (list, tuple)):
            self.image_size = tuple(int(s) for s in self.image_size)
        for name in ("dims", "depths"):  # one stage may be given as a number
            value = getattr(self, name)
            setattr(self, name, (int(value),) if isinstance(value, int) else
                    tuple(int(v) for v in value))
        for name in ("in_channels", "num_classes", "pool_size", "head_dim", "stem_kernel",
                     "stem_stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} ({value!r}) must be a positive integer")
        if not self.dims or min(self.dims) < 1:
            raise ValueError(f"dims ({self.dims}) must be positive integers")
        if len(self.depths) != len(self.dims) or min(self.depths) < 1:
            raise ValueError(f"depths ({self.depths}) must give a positive block count for "
                             f"each of the {len(self.dims)} stages of dims ({self.dims})")
        if self.pool_size % 2 == 0:
            raise ValueError(f"pool_size ({self.pool_size}) must be odd (same-size padding)")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio ({self.mlp_ratio}) must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")
        check_mixer(self.mixer)
        if self.mixer == "attention":
            for dim in self.dims:
                _attention_heads(dim, self.head_dim)
        if self.mixer in OWN_MIXERS and self.mixer_kwargs:
            raise ValueError(f"mixer_kwargs ({self.mixer_kwargs}) apply to zoo families only, "
                             f"not {self.mixer!r}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"image_size ({self.image_size}) must be a positive side or (H, W)")

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        if isinstance(self.image_size, tuple):
            return self.image_size
        return (int(self.image_size), int(self.image_size))

    @property
    def stage_sizes(self) -> tuple[tuple[int, int], ...]:
        """``(H_i, W_i)`` of the feature map in each stage: the stem, then 3x3 stride-2 convs."""
        k = self.stem_kernel
        sizes = [tuple(pool_output_size(s, k, self.stem_stride, k // 2).size for s in self.size)]
        for _ in self.dims[1:]:
            sizes.append(tuple(pool_output_size(s, 3, 2, 1).size for s in sizes[-1]))
        return tuple(sizes)


class MetaFormerBlock(nn.Module):
    """``x + s1 * mixer(norm1(x))``, then ``x + s2 * mlp(norm2(x))`` on ``(B, C, H, W)``."""

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: float = 4.0,
                 layer_scale_init: float = 1e-5):
        super().__init__()
        hidden = max(1, int(dim * mlp_ratio))
        self.norm1 = nn.GroupNorm(1, dim)
        self.mixer = mixer
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))
        self.scale1 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        self.scale2 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        x = x + self.scale1[:, None, None] * self.mixer(self.norm1(x))
        return x + self.scale2[:, None, None] * self.mlp(self.norm2(x))


class MetaFormer(PretrainedMixin, nn.Module):
    r"""MetaFormer (Yu et al., CVPR 2022): a conv stem, stages of MetaFormer blocks, GroupNorm,
    the mean over positions and a linear head; the token mixer is chosen by name.

    Each block on ``x`` of shape ``(B, C, H, W)`` is

    .. math::

        x \leftarrow x + s_1 \odot \operatorname{mixer}(\operatorname{norm}_1(x)), \qquad
        x \leftarrow x + s_2 \odot \operatorname{mlp}(\operatorname{norm}_2(x)),

    with PoolFormer's pooling mixer (the default)

    .. math::

        \operatorname{mixer}(x)_{c,i,j} = \frac{1}{|N_{ij}|} \sum_{(a, b) \in N_{ij}}
        x_{c,a,b} - x_{c,i,j},

    :math:`N_{ij}` the ``pool_size x pool_size`` window around ``(i, j)`` clipped to the map
    (``count_include_pad=False``); any zoo family ``f`` gives ``f(x) - x`` instead, ``attention``
    self-attention over the ``H * W`` positions, ``identity`` no mixing. The head pools
    :math:`z_c = \frac{1}{H' W'} \sum_{i,j} \operatorname{norm}(x)_{c,i,j}`.

    Args:
        config: a :class:`MetaFormerConfig`.

    Shape:
        - images: ``(B, in_channels, H, W)``, any size.
        - stage ``i``: ``(B, dims[i], *config.stage_sizes[i])``.
        - output: ``(B, num_classes)`` logits.

    Example:
        >>> config = MetaFormerConfig(image_size=8, dims=8, depths=1, mixer="gem")
        >>> MetaFormer(config)(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, config: MetaFormerConfig):
        super().__init__()
        self.config = c = config
        self.stem = nn.Conv2d(c.in_channels, c.dims[0], c.stem_kernel, c.stem_stride,
                              c.stem_kernel // 2)
        layers: list[nn.Module] = []
        for index, (dim, depth) in enumerate(zip(c.dims, c.depths, strict=True)):
            if index:
                layers.append(nn.Conv2d(c.dims[index - 1], dim, 3, stride=2, padding=1))
            for _ in range(depth):
                mixer = build_mixer(c.mixer, dim, pool_size=c.pool_size, head_dim=c.head_dim,
                                    **c.mixer_kwargs)
                layers.append(MetaFormerBlock(dim, mixer, c.mlp_ratio, c.layer_scale_init))
        self.stages = nn.Sequential(*layers)
        self.norm = nn.GroupNorm(1, c.dims[-1])
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.dims[-1], c.num_classes)
        for block in self.stages:  # not inside a zoo pool: a family keeps its own init
            if isinstance(block, MetaFormerBlock):
                block.mlp.apply(_init_weights)
                if isinstance(block.mixer, SelfAttentionMixer):
                    block.mixer.apply(_init_weights)
        _init_weights(self.head)

    def pools_used(self) -> dict[str, str]:
        """The pooling of each role in this model (recorded by ``poolkit compare``)."""
        return {"mixer": self.config.mixer}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"images must be (B, {self.config.in_channels}, H, W), "
                f"got shape {tuple(images.shape)}"
            )
        x = self.stages(self.stem(images))  # (B, dims[-1], H_last, W_last)
        x = self.norm(x).mean(dim=(-2, -1))  # (B, dims[-1])
        return self.head(self.dropout(x))  # (B, num_classes)


def _init_weights(module: nn.Module) -> None:
    """The paper's: truncated normal (std 0.02) for linear layers and the MLP's 1x1 convs."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


register_model("metaformer", MetaFormer, MetaFormerConfig)
