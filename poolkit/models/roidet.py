"""RoIDet: a small two-stage-style detector whose RoI layer is chosen by name.

A backbone (3x3 conv + batch norm + ReLU, 2x2 max pool, twice, then a third conv) maps the image
to features at stride 4; the proposals are the true boxes jittered (shifted and rescaled by up to
``jitter`` of their size) plus random boxes, as a stand-in for a region proposal network; the
RoI layer (``roi_pool``, ``roi_align``, ``roi_align_aligned``: :func:`poolkit.nn.create_roi_pool`)
pools each proposal to ``output_size x output_size``; two fully connected layers feed a
classifier (the digits + background) and a class-agnostic box regressor (Fast R-CNN's
``(dx, dy, log dw, log dh)`` deltas, weights 10, 10, 5, 5).

Training: a proposal whose IoU with a true box is at least ``positive_iou`` takes that box's
class and regresses to it; the others are background. Loss: cross-entropy plus smooth-L1 on the
positives' deltas. Detection (:meth:`RoIDet.detect`): the proposals of image ``i`` of the data
set come from a generator seeded by ``i``, so every model sees the same proposals; each proposal
gets its best digit class and that class's probability as score, its refined box, and class-wise
non-maximum suppression keeps the best of overlapping boxes.

Shape:
    - images ``(B, in_channels, H, W)``, ``H`` and ``W`` multiples of 4;
    - ``detect`` -> per image ``{"boxes": (D, 4), "scores": (D,), "labels": (D,)}``.

Example:
    >>> model = RoIDet(RoIDetConfig(channels=(8, 8, 8), roi_pool="roi_align_aligned"))
    >>> batch = {"images": torch.rand(2, 1, 32, 32), "boxes": [torch.tensor([[2., 3, 20, 25]])] * 2,
    ...          "box_labels": [torch.tensor([7])] * 2}
    >>> model.compute_loss(batch).ndim
    0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poolkit.models.pretrained import PretrainedMixin
from poolkit.models.registry import register_model
from poolkit.nn.roi import create_roi_pool, list_roi_pools

ROI_POOLS = ("roi_pool", "roi_align", "roi_align_aligned")
_DELTA_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_STRIDE = 4


@dataclass
class RoIDetConfig:
    """Settings of a :class:`RoIDet` (all JSON-ready; saved as the checkpoint's config).

    Attributes:
        in_channels: channels of the input images (default 1).
        num_classes: object classes (default 10, the digits); the classifier adds background
            as class 0, so it has ``num_classes + 1`` outputs and object ``k`` is class
            ``k + 1``.
        channels: output channels of the backbone's three 3x3 convs; exactly three positive
            integers (default ``(16, 32, 32)``).
        roi_pool: the RoI layer, one of :data:`ROI_POOLS`: ``"roi_pool"`` (Fast R-CNN's
            max over quantised bins), ``"roi_align"`` or ``"roi_align_aligned"`` (Mask R-CNN,
            without or with the half-pixel offset); default ``"roi_align"``.
        output_size: P, each proposal is pooled to ``P x P`` bins (default 5).
        sampling_ratio: RoI Align's bilinear samples per bin side (default 2; -1: adaptive,
            ``ceil(box side / P)``); ignored by ``"roi_pool"``.
        hidden: width of the two fully connected layers of the head (default 128).
        jitter: proposals jittered from a true box move their centre by up to ``jitter``
            times the box's width/height and scale each side by a factor in
            ``[exp(-jitter), exp(jitter)]``; in ``[0, 1]`` (default 0.25).
        jittered_per_box: jittered proposals per true box (default 4).
        random_proposals: uniformly placed random proposals per image, sides 8 to 28 pixels;
            ``>= 0`` (default 8).
        positive_iou: a proposal whose IoU with a true box is at least this takes its class
            and regresses to it, the others are background; in ``[0, 1]`` (default 0.5).
        score_threshold: :meth:`RoIDet.detect` keeps detections whose score (the best digit's
            probability) is at least this; in ``[0, 1]`` (default 0.05).
        nms_iou: class-wise non-maximum suppression drops a box whose IoU with a better box
            of the same class is above this; in ``[0, 1]`` (default 0.5).
    """

    in_channels: int = 1
    num_classes: int = 10  # object classes; the classifier adds background as class 0
    channels: tuple[int, ...] = (16, 32, 32)
    roi_pool: str = "roi_align"  # a name of poolkit.nn.list_roi_pools()
    output_size: int = 5
    sampling_ratio: int = 2  # RoI Align's samples per bin side (-1: adaptive)
    hidden: int = 128
    jitter: float = 0.25
    jittered_per_box: int = 4
    random_proposals: int = 8
    positive_iou: float = 0.5
    score_threshold: float = 0.05
    nms_iou: float = 0.5

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"channels ({self.channels}) must be three positive integers")
        if self.roi_pool not in list_roi_pools() or self.roi_pool == "ps_roi_align":
            raise ValueError(f"roi_pool ({self.roi_pool!r}) must be one of {ROI_POOLS}")
        for name in ("in_channels", "num_classes", "output_size", "hidden", "jittered_per_box"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} ({value!r}) must be a positive integer")
        if self.random_proposals < 0:
            raise ValueError(f"random_proposals ({self.random_proposals}) must be >= 0")
        for name in ("jitter", "positive_iou", "score_threshold", "nms_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be in [0, 1]")


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """``(N, M)`` IoU of boxes ``[x1, y1, x2, y2]``."""
    low = torch.maximum(a[:, None, :2], b[None, :, :2])
    high = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def encode_boxes(targets: Tensor, proposals: Tensor) -> Tensor:
    """Fast R-CNN deltas ``(10 dx/w, 10 dy/h, 5 log(w'/w), 5 log(h'/h))`` of targets."""
    size, centre = proposals[:, 2:] - proposals[:, :2], (proposals[:, 2:] + proposals[:, :2]) / 2
    target_size = targets[:, 2:] - targets[:, :2]
    target_centre = (targets[:, 2:] + targets[:, :2]) / 2
    weights = proposals.new_tensor(_DELTA_WEIGHTS)
    return torch.cat([(target_centre - centre) / size, torch.log(target_size / size)], 1) * weights


def decode_boxes(deltas: Tensor, proposals: Tensor) -> Tensor:
    """The inverse of :func:`encode_boxes` (log sizes clamped at log(1000 / 16))."""
    deltas = deltas / deltas.new_tensor(_DELTA_WEIGHTS)
    size, centre = proposals[:, 2:] - proposals[:, :2], (proposals[:, 2:] + proposals[:, :2]) / 2
    centre = centre + deltas[:, :2] * size
    size = size * torch.exp(deltas[:, 2:].clamp(max=math.log(1000.0 / 16)))
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def make_proposals(boxes: Tensor, image_size: tuple[int, int], config: RoIDetConfig,
                   generator: torch.Generator | None = None) -> Tensor:
    """``jittered_per_box`` jittered copies of each true box and ``random_proposals`` random
    boxes (sides 8 to 28 pixels), clipped to the image: ``(P, 4)``."""
    height, width = image_size
    copies = boxes.repeat_interleave(config.jittered_per_box, dim=0)
    size = copies[:, 2:] - copies[:, :2]
    noise = (torch.rand(len(copies), 4, generator=generator) * 2 - 1) * config.jitter
    centre = (copies[:, 2:] + copies[:, :2]) / 2 + noise[:, :2] * size
    size = size * torch.exp(noise[:, 2:])
    jittered = torch.cat([centre - size / 2, centre + size / 2], 1)
    sides = 8 + 20 * torch.rand(config.random_proposals, 2, generator=generator)
    corner = torch.rand(config.random_proposals, 2, generator=generator) * (
        torch.tensor([width, height]) - sides)
    proposals = torch.cat([jittered, torch.cat([corner, corner + sides], 1)])
    limit = torch.tensor([width, height, width, height], dtype=proposals.dtype)
    proposals = torch.minimum(proposals.clamp(min=0), limit)
    wide = (proposals[:, 2:] - proposals[:, :2] >= 1).all(1)  # drop boxes clipped to nothing
    return proposals[wide]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes greedy non-maximum suppression keeps, best score first."""
    order = scores.argsort(descending=True, stable=True)
    overlaps = box_iou(boxes[order], boxes[order])
    keep: list[int] = []
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        keep.append(rank)
        suppressed |= overlaps[rank] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class RoIDet(PretrainedMixin, nn.Module):
    r"""A small two-stage-style detector whose RoI layer is chosen by name.

    A backbone at stride 4 gives the feature map :math:`x`; each proposal box
    :math:`(x_1, y_1, x_2, y_2)`, scaled by 1/4, is pooled to ``P x P`` bins, for RoI Align
    (He et al., Mask R-CNN, ICCV 2017)

    .. math::

        y_{c,i,j} = \frac{1}{g^2} \sum_{a, b < g} \operatorname{bilinear}\big(x_c,\
        y_1 + (i + \tfrac{a + 0.5}{g}) \beta_h,\ x_1 + (j + \tfrac{b + 0.5}{g}) \beta_w\big),
        \qquad \beta = \text{box side} / P,

    ``g = sampling_ratio``, and for RoI pooling (Girshick, Fast R-CNN, ICCV 2015) the maximum
    over each quantised bin. Two fully connected layers then feed a classifier (background +
    ``num_classes``) and a class-agnostic regressor of Fast R-CNN's box deltas
    ``(10 dx/w, 10 dy/h, 5 log(w'/w), 5 log(h'/h))``. The proposals are the true boxes jittered
    plus random boxes (see the module docstring).

    Args:
        config: a :class:`RoIDetConfig`.

    Shape:
        - images: ``(B, in_channels, H, W)``, ``H`` and ``W`` multiples of 4; proposals: a list
          of ``B`` tensors ``(P_i, 4)`` ``[x1, y1, x2, y2]`` in pixels.
        - pooled: ``(P, channels[2], output_size, output_size)``, ``P = sum P_i``.
        - output of ``forward``: class logits ``(P, num_classes + 1)`` and box deltas ``(P, 4)``.
        - :meth:`compute_loss`: a batch with ``images``, ``boxes`` (``B`` tensors ``(M_i, 4)``)
          and ``box_labels`` (``B`` tensors ``(M_i,)``, in ``[0, num_classes)``) -> a scalar.
        - :meth:`detect` -> per image ``{"boxes": (D, 4), "scores": (D,), "labels": (D,)}``.

    Example:
        >>> model = RoIDet(RoIDetConfig(channels=(4, 4, 8), roi_pool="roi_pool"))
        >>> proposals = [torch.tensor([[0.0, 0, 16, 16], [4, 4, 28, 20]])]
        >>> [t.shape for t in model(torch.rand(1, 1, 32, 32), proposals)]
        [torch.Size([2, 11]), torch.Size([2, 4])]
    """

    def __init__(self, config: RoIDetConfig):
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        self.backbone = nn.Sequential(*_conv(config.in_channels, c1), nn.MaxPool2d(2),
                                      *_conv(c1, c2), nn.MaxPool2d(2), *_conv(c2, c3))
        options = {"spatial_scale": 1.0 / _STRIDE}
        if config.roi_pool != "roi_pool":
            options["sampling_ratio"] = config.sampling_ratio
        self.roi = create_roi_pool(config.roi_pool, config.output_size, **options)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c3 * config.output_size**2,
                                                          config.hidden),
                                  nn.ReLU(inplace=True), nn.Linear(config.hidden, config.hidden),
                                  nn.ReLU(inplace=True))
        self.classifier = nn.Linear(config.hidden, config.num_classes + 1)
        self.regressor = nn.Linear(config.hidden, 4)

    def pools_used(self) -> dict[str, str]:
        """The pooling of each role in this model (recorded by ``poolkit compare``)."""
        return {"roi": self.config.roi_pool}

    def forward(self, images: Tensor, proposals: list[Tensor]) -> tuple[Tensor, Tensor]:
        """``(class logits (P, num_classes + 1), box deltas (P, 4))`` of every proposal."""
        if images.ndim != 4 or images.shape[1] != self.config.in_channels or any(
                size % _STRIDE for size in images.shape[2:]):
            raise ValueError(f"images must be (B, {self.config.in_channels}, H, W) with H and W "
                             f"multiples of {_STRIDE}, got shape {tuple(images.shape)}")
        features = self.backbone(images)  # (B, c3, H/4, W/4)
        hidden = self.head(self.roi(features, proposals))  # (P, hidden)
        return self.classifier(hidden), self.regressor(hidden)

    def compute_loss(self, batch: dict) -> Tensor:
        """Cross-entropy of the proposals' classes + smooth-L1 of the positives' deltas."""
        size = tuple(batch["images"].shape[2:])
        proposals, classes, targets = [], [], []
        for boxes, labels in zip(batch["boxes"], batch["box_labels"], strict=True):
            found = make_proposals(boxes.cpu(), size, self.config).to(boxes.device)
            if len(boxes) == 0:  # no object: every proposal is background
                boxes, labels = found.new_zeros(1, 4) + found.new_tensor([0, 0, 1, 1]), (
                    labels.new_full((1,), -1))
            overlap, best = box_iou(found, boxes).max(dim=1)
            positive = overlap >= self.config.positive_iou
            proposals.append(found)
            classes.append(torch.where(positive, labels[best] + 1, 0))
            targets.append(encode_boxes(boxes[best], found))
        logits, deltas = self(batch["images"], proposals)
        classes, targets = torch.cat(classes), torch.cat(targets)
        positive = classes > 0
        box_loss = F.smooth_l1_loss(deltas[positive], targets[positive], beta=1 / 9,
                                    reduction="sum") / max(len(classes), 1)
        return F.cross_entropy(logits, classes) + box_loss

    @torch.no_grad()
    def detect(self, batch: dict) -> list[dict[str, Tensor]]:
        """Boxes, scores and digit labels per image (proposals seeded by ``batch["indices"]``,
        the images' positions in their data set; 0, 1, … when absent)."""
        size = tuple(batch["images"].shape[2:])
        indices = batch.get("indices", torch.arange(len(batch["images"])))
        proposals = [
            make_proposals(boxes.cpu(), size, self.config,
                           torch.Generator().manual_seed(100_003 * int(index) + 17))
            .to(boxes.device) for boxes, index in zip(batch["boxes"], indices, strict=True)
        ]
        logits, deltas = self(batch["images"], proposals)
        probabilities = logits.softmax(dim=1)[:, 1:]  # digits only
        scores, labels = probabilities.max(dim=1)
        refined = decode_boxes(deltas, torch.cat(proposals))
        limit = refined.new_tensor([size[1], size[0], size[1], size[0]])
        refined = torch.minimum(refined.clamp(min=0), limit)
        results, first = [], 0
        for found in proposals:
            last = first + len(found)
            boxes, score, label = refined[first:last], scores[first:last], labels[first:last]
            confident = score >= self.config.score_threshold
            boxes, score, label = boxes[confident], score[confident], label[confident]
            # class-wise NMS: offset each class's boxes so that classes never overlap
            keep = nms(boxes + label[:, None] * (4 * max(size)), score, self.config.nms_iou)
            results.append({"boxes": boxes[keep], "scores": score[keep], "labels": label[keep]})
            first = last
        return results


register_model("roidet", RoIDet, RoIDetConfig)
