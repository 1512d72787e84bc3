"""ConvNet: a small VGG-style image classifier whose every downsampling step is a pooling layer
chosen by name, plus a global pool by name before the linear head.

Each stage is ``convs_per_stage`` x (3x3 conv, batch norm, ReLU), then
``create_pool(pool, dims=2, kernel_size=2, stride=2, **pool_kwargs)`` (fractional max pooling:
``output_ratio=0.5`` instead of the stride; ``channels`` is filled in for attention and LIP; a
pool with ``feat_mult() > 1`` such as ``catavgmax`` widens the next stage's input). The head is
``create_pool(global_pool, dims=2, **global_pool_kwargs)`` giving ``(B, C * feat_mult)`` (2x the
channels for ``catavgmax``), dropout and a linear layer. With the defaults on 28x28 MNIST:
``(B, 1, 28, 28) -> (B, 32, 14, 14) -> (B, 64, 7, 7) -> (B, 64) -> (B, 10)``.

Shape:
    - images: ``(B, in_channels, H, W)`` with ``H, W >= 2 ** len(channels)``.
    - output: ``(B, num_classes)`` logits.

Example:
    >>> import torch
    >>> model = ConvNet(ConvNetConfig(image_size=8, channels=(8, 16), global_pool="catavgmax"))
    >>> model(torch.rand(2, 1, 8, 8)).shape, model.head_pool.feat_mult()
    (torch.Size([2, 10]), 2)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from poolkit.models._pools import downsampling_kwargs, make_pool
from poolkit.models.pretrained import PretrainedMixin
from poolkit.models.registry import register_model
from poolkit.nn import list_pools, pool_info


@dataclass
class ConvNetConfig:
    """Settings of a :class:`ConvNet` (all JSON-ready; saved as the checkpoint's config).

    Attributes:
        in_channels: channels of the input images (default 1, grey MNIST).
        num_classes: number of classes, the width of the logits (default 10).
        image_size: ``(H, W)`` of the training images, or one side of a square (default 28);
            ``poolkit train`` fills it from the data. Checked to survive the downsampling: each
            side at least ``2 ** len(channels)`` pixels. The model runs on other sizes too.
        channels: output channels of each stage; one stage, and one 2x downsampling pool, per
            entry (default ``(32, 64)``); positive integers.
        convs_per_stage: 3x3 convolutions (each with batch norm and ReLU) before each stage's
            pool (default 2).
        pool: the downsampling pool, a name of :func:`poolkit.nn.list_pools` with a 2-D
            windowed ``kernel_size`` form (default ``"max"``); built with ``kernel_size=2,
            stride=2`` (``fractional_max``: ``output_ratio=0.5``).
        pool_kwargs: arguments of the downsampling pool on top of (or replacing) those; a
            ``None`` value drops a default (default ``{}``).
        global_pool: the pool before the head, a name with a global 2-D form (default
            ``"avg"``); ``catavgmax`` doubles the classifier's input width.
        global_pool_kwargs: arguments of the global pool (e.g. ``{"p": 3.0}`` for ``gem``;
            default ``{}``).
        batch_norm: batch norm after each convolution, whose bias is then dropped (default
            True).
        dropout: dropout probability before the classifier, in ``[0, 1)`` (default 0.0).
    """

    in_channels: int = 1
    num_classes: int = 10
    image_size: int | tuple[int, int] = 28  # (H, W) or a square side
    channels: tuple[int, ...] = (32, 64)  # one stage (and one downsampling pool) per entry
    convs_per_stage: int = 2
    pool: str = "max"  # downsampling pool, a name of poolkit.nn.list_pools()
    pool_kwargs: dict = field(default_factory=dict)  # on top of kernel_size=2, stride=2
    global_pool: str = "avg"
    global_pool_kwargs: dict = field(default_factory=dict)
    batch_norm: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.image_size, (list, tuple)):
            self.image_size = tuple(int(s) for s in self.image_size)
        self.channels = tuple(int(c) for c in self.channels)
        for name in ("in_channels", "num_classes", "convs_per_stage"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} ({value!r}) must be a positive integer")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels ({self.channels}) must be positive integers")
        smallest = min(self.size)
        if smallest < 2 ** len(self.channels):
            raise ValueError(
                f"image_size ({self.image_size}) is too small for {len(self.channels)} "
                f"downsampling stages: needs at least {2 ** len(self.channels)} pixels a side"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")
        names = [n for n in list_pools() if n not in ("", "identity")]
        if isinstance(self.pool, str) and self.pool in (*names, "", "identity"):
            windowed = [n for n in names if 2 in pool_info(n).windowed_dims
                        and "kernel_size" in pool_info(n).size_args]  # maps, not bins (spp)
            if self.pool not in windowed:
                raise ValueError(
                    f"pool ({self.pool!r}) has no 2-D windowed form to downsample with; "
                    f"ConvNet's downsampling pool must be one of {windowed}"
                )
        if isinstance(self.global_pool, str) and self.global_pool in names:
            global_ = ["", *[n for n in names if pool_info(n).global_ and 2 in pool_info(n).dims]]
            if self.global_pool not in global_:
                raise ValueError(
                    f"global_pool ({self.global_pool!r}) has no global 2-D form; "
                    f"it must be one of {global_}"
                )

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        if isinstance(self.image_size, tuple):
            return self.image_size
        return (int(self.image_size), int(self.image_size))


class ConvNet(PretrainedMixin, nn.Module):
    r"""A VGG-style image classifier whose downsampling and global pools are chosen by name.

    Each of the ``S = len(channels)`` stages is ``convs_per_stage`` x (3x3 conv, batch norm,
    ReLU), then the 2x downsampling pool, e.g. for ``max`` and ``avg``

    .. math::

        y_{c,i,j} = \max_{0 \le a, b < 2} x_{c,\,2i + a,\,2j + b}, \qquad
        z_c = \frac{1}{H' W'} \sum_{i,j} y^{(S)}_{c,i,j} \ \ (\text{global } \mathrm{avg}),

    and the logits are :math:`W\, \mathrm{dropout}(z) + b`. Any family of
    :func:`poolkit.nn.create_pool` takes either place (see :class:`ConvNetConfig`); the layout
    follows VGG (Simonyan & Zisserman, ICLR 2015) at MNIST scale.

    Args:
        config: a :class:`ConvNetConfig`.

    Shape:
        - images: ``(B, in_channels, H, W)`` floating point.
        - features: ``(B, channels[-1] * m, H / 2^S, W / 2^S)`` (floored per stage; ``m`` the
          downsampling pool's ``feat_mult()``, 2 for ``catavgmax``), then the global pool
          ``(B, channels[-1] * m * feat_mult)``.
        - output: ``(B, num_classes)`` logits.

    Example:
        >>> model = ConvNet(ConvNetConfig(image_size=8, channels=(4, 8), pool="lp"))
        >>> model(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, config: ConvNetConfig):
        super().__init__()
        self.config = config
        c = config
        down_kwargs = downsampling_kwargs(c.pool, **c.pool_kwargs)
        stages, width = [], c.in_channels
        for out in c.channels:
            for _ in range(c.convs_per_stage):
                stages += [nn.Conv2d(width, out, 3, padding=1, bias=not c.batch_norm)]
                stages += [nn.BatchNorm2d(out)] if c.batch_norm else []
                stages += [nn.ReLU(inplace=True)]
                width = out
            down = make_pool(c.pool, 2, width, **down_kwargs)
            stages.append(down)
            width *= down.feat_mult()  # catavgmax stacks avg and max: 2x the channels
        self.features = nn.Sequential(*stages)
        self.head_pool = make_pool(c.global_pool, 2, width, **c.global_pool_kwargs)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(width * self.head_pool.feat_mult(), c.num_classes)

    def pools_used(self) -> dict[str, str]:
        """The pooling of each role in this model (recorded by ``poolkit compare``)."""
        return {"downsample": self.config.pool, "global": self.config.global_pool}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"images must be (B, {self.config.in_channels}, H, W), "
                f"got shape {tuple(images.shape)}"
            )
        x = self.features(images)  # (B, C_last, H / 2^S, W / 2^S)
        x = self.head_pool(x)  # (B, C_last * feat_mult)
        return self.classifier(self.dropout(x.flatten(1)))  # (B, num_classes)


register_model("convnet", ConvNet, ConvNetConfig)
