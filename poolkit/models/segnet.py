"""SegNet: a small encoder-decoder for semantic segmentation with a context module by name.

The encoder downsamples three times (3x3 conv + batch norm + ReLU, then a 2x2 pool chosen by
name) to output stride 8; the context module (``"none"``, PSPNet's ``"ppm"`` or DeepLab's
``"aspp"``, :mod:`poolkit.nn.context`) mixes in context at that stride; a 3x3 conv fuses it back
to the encoder's width; the decoder upsamples x2, concatenates the stride-4 features (a skip),
applies a 3x3 conv and a 1x1 classifier, and upsamples x4 (bilinear) to the input size. With the
defaults on a 64x64 canvas::

    (B, 1, 64, 64) -> 16 @ 32x32 -> 32 @ 16x16 (skip) -> 64 @ 8x8 -> context -> 64 @ 8x8
                   -> up x2 + skip -> 32 @ 16x16 -> (B, 11, 16, 16) -> up x4 -> (B, 11, 64, 64)

Shape:
    - images: ``(B, in_channels, H, W)`` with ``H`` and ``W`` multiples of 8.
    - output: ``(B, num_classes, H, W)`` logits per pixel.

Example:
    >>> model = SegNet(SegNetConfig(channels=(8, 8, 16), context="ppm"))
    >>> model(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 11, 32, 32])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from poolkit.models._pools import downsampling_kwargs, make_pool
from poolkit.models.pretrained import PretrainedMixin
from poolkit.models.registry import register_model
from poolkit.nn.context import ASPP, PyramidPooling

CONTEXTS = ("none", "ppm", "aspp")


@dataclass
class SegNetConfig:
    """Settings of a :class:`SegNet` (all JSON-ready; saved as the checkpoint's config).

    Attributes:
        in_channels: channels of the input images (default 1).
        num_classes: classes per pixel, the width of the logits (default 11: background and
            the ten digits of the MNIST canvases).
        channels: output channels of the three encoder stages (at strides 2, 4 and 8); exactly
            three positive integers (default ``(16, 32, 64)``).
        context: the context module at stride 8, one of :data:`CONTEXTS`: ``"none"`` (the
            identity), ``"ppm"`` (PSPNet's :class:`~poolkit.nn.context.PyramidPooling`) or
            ``"aspp"`` (DeepLab v3's :class:`~poolkit.nn.context.ASPP`); default ``"none"``.
        context_kwargs: arguments of that module: ``bins``, ``branch_channels``, ``pool``,
            ``pool_kwargs``, ``norm``, ``align_corners`` for ppm; ``atrous_rates`` (default
            here ``(2, 4, 6)``), ``out_channels``, ``dropout``, ``pool``, ``pool_kwargs``,
            ``norm`` for aspp; none for ``"none"`` (default ``{}``).
        pool: the encoder's 2x downsampling pool, a name of :func:`poolkit.nn.list_pools`
            with a 2-D windowed form, built with ``kernel_size=2, stride=2`` (default
            ``"max"``).
    """

    in_channels: int = 1
    num_classes: int = 11  # background + 10 digits
    channels: tuple[int, ...] = (16, 32, 64)  # the three encoder stages
    context: str = "none"  # "none", "ppm" (PSPNet) or "aspp" (DeepLab v3)
    context_kwargs: dict = field(default_factory=dict)  # bins, pool, atrous_rates…
    pool: str = "max"  # the encoder's downsampling pool, by name

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"channels ({self.channels}) must be three positive integers")
        for name in ("in_channels", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} ({value!r}) must be a positive integer")
        if self.context not in CONTEXTS:
            raise ValueError(f"context ({self.context!r}) must be one of {CONTEXTS}")


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def build_context(name: str, channels: int, **kwargs) -> nn.Module:
    """The context module ``name`` at ``channels`` (``out_channels`` attribute set).

    ``"ppm"``: bins (1, 2, 3, 6), ``channels // 4`` per bin; ``"aspp"``: atrous rates (2, 4, 6),
    DeepLab v3's (6, 12, 18) scaled to a map a third as wide; ``"none"``: the identity.
    """
    if name == "ppm":
        return PyramidPooling(channels, **kwargs)
    if name == "aspp":
        return ASPP(channels, **{"atrous_rates": (2, 4, 6), **kwargs})
    if name == "none":
        if kwargs:
            raise ValueError(f"context 'none' takes no arguments, got {sorted(kwargs)}")
        identity = nn.Identity()
        identity.out_channels = channels
        return identity
    raise ValueError(f"context ({name!r}) must be one of {CONTEXTS}")


class SegNet(PretrainedMixin, nn.Module):
    r"""An encoder-decoder for semantic segmentation with a context module by name.

    Three encoder stages (3x3 conv + batch norm + ReLU, then a 2x2 stride-2 pool) bring the map
    to output stride 8; the context module pools it at several scales and concatenates the
    upsampled results, for ``"ppm"`` (Zhao et al., PSPNet, CVPR 2017)

    .. math::

        y = \big[\,x;\ \operatorname{up}\big(\operatorname{ReLU}(\operatorname{BN}(
        W_b * \operatorname{pool}_{b \times b}(x)))\big)\big]_{b \in (1, 2, 3, 6)},

    and for ``"aspp"`` (Chen et al., DeepLab v3, 2017) atrous convolutions and a global-pool
    branch. A 3x3 conv fuses it back to ``channels[2]``; the decoder upsamples x2 (bilinear),
    concatenates the stride-4 features, applies a 3x3 conv and a 1x1 classifier, and upsamples
    x4 to the input size.

    Args:
        config: a :class:`SegNetConfig`.

    Shape:
        - images: ``(B, in_channels, H, W)``, ``H`` and ``W`` multiples of 8.
        - context input: ``(B, channels[2], H / 8, W / 8)``.
        - output: ``(B, num_classes, H, W)`` logits per pixel; :meth:`compute_loss` compares
          them with ``(B, H, W)`` class ids.

    Example:
        >>> model = SegNet(SegNetConfig(channels=(4, 4, 8), context="aspp"))
        >>> model(torch.rand(2, 1, 16, 24)).shape
        torch.Size([2, 11, 16, 24])
    """

    def __init__(self, config: SegNetConfig):
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        down = downsampling_kwargs(config.pool)
        self.stage1 = nn.Sequential(conv_bn_relu(config.in_channels, c1),
                                    make_pool(config.pool, 2, c1, **down))
        self.stage2 = nn.Sequential(conv_bn_relu(c1, c2), make_pool(config.pool, 2, c2, **down))
        self.stage3 = nn.Sequential(conv_bn_relu(c2, c3), make_pool(config.pool, 2, c3, **down),
                                    conv_bn_relu(c3, c3))
        self.context = build_context(config.context, c3, **config.context_kwargs)
        self.fuse = conv_bn_relu(self.context.out_channels, c3)
        self.decode = conv_bn_relu(c3 + c2, c2)
        self.classifier = nn.Conv2d(c2, config.num_classes, 1)

    def pools_used(self) -> dict[str, str]:
        """The pooling of each role in this model (recorded by ``poolkit compare``)."""
        return {"downsample": self.config.pool, "context": self.config.context}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c = self.config
        if images.ndim != 4 or images.shape[1] != c.in_channels or any(
                size % 8 for size in images.shape[2:]):
            raise ValueError(f"images must be (B, {c.in_channels}, H, W) with H and W multiples "
                             f"of 8, got shape {tuple(images.shape)}")
        skip = self.stage2(self.stage1(images))  # (B, c2, H/4, W/4)
        x = self.fuse(self.context(self.stage3(skip)))  # (B, c3, H/8, W/8)
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
        x = self.classifier(self.decode(torch.cat([x, skip], dim=1)))  # (B, K, H/4, W/4)
        return F.interpolate(x, size=images.shape[2:], mode="bilinear", align_corners=False)

    def compute_loss(self, batch: dict) -> torch.Tensor:
        """Pixel-wise cross-entropy against ``batch["labels"]`` ``(B, H, W)`` class ids."""
        return F.cross_entropy(self(batch["images"]), batch["labels"])


register_model("segnet", SegNet, SegNetConfig)
