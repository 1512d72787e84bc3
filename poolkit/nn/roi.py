r"""RoI pooling layers for detection heads: RoI pooling, RoI Align, PS RoI Align, multi-scale.

Same names, arguments and semantics as ``torchvision.ops`` (its C++ kernels; see
:mod:`poolkit.numpy.roi` and ``docs/detection-segmentation.md``), differentiable with respect to
the feature map, on any device:

- :func:`roi_align` (Mask R-CNN): each bin the mean of ``g_h x g_w`` bilinear samples,

  .. math::
      y_{k,c,i,j} = \frac{1}{g_h g_w} \sum_{a < g_h,\, b < g_w}
      \operatorname{bilinear}\big(x_{n_k, c},\ y_1 + (i + \tfrac{a + 0.5}{g_h}) \beta_h,\
      x_1 + (j + \tfrac{b + 0.5}{g_w}) \beta_w\big),

  with the box ``(x_1, y_1, x_2, y_2)`` scaled by ``spatial_scale`` (minus 0.5 when
  ``aligned``), bin sizes :math:`\beta = (\text{end} - \text{start}) / P` and
  :math:`g = \lceil \text{roi} / P \rceil` unless ``sampling_ratio > 0``;
- :func:`roi_pool` (Fast R-CNN): the maximum over quantised bins; the gradient goes to the
  first maximum of each bin;
- :func:`ps_roi_align` (R-FCN): bin ``(i, j)`` of output channel ``c`` reads channel
  ``(c PH + i) PW + j``.

The sampling weights of each box factor into rows and columns (``A_y (PH, H)``,
``A_x (PW, W)``, built by the NumPy engine's :func:`poolkit.numpy.roi.align_plan` from the
boxes, which carry no gradient, as in torchvision). RoI Align is then one sparse matrix (a row
per output bin, ``A_y[h] A_x[w] / count`` at each position it reads) times the channels-last
map; PS RoI Align computes ``A_y X A_x^T / count`` per image with two einsums. Autograd gives
the exact backward (and double backward). :class:`MultiScaleRoIAlign` assigns each box to a
feature-pyramid level as torchvision's ``LevelMapper`` (Lin et al., FPN, 2017, eq. 1).

Shape:
    - input ``(N, C, H, W)``; boxes ``(K, 5)`` ``[batch_index, x1, y1, x2, y2]`` or a list of
      ``N`` tensors ``(K_i, 4)``; output ``(K, C, PH, PW)`` (``(K, C / (PH PW), PH, PW)`` for
      PS RoI Align).

Example::

    >>> feats = torch.randn(2, 16, 32, 32)
    >>> boxes = [torch.tensor([[0.0, 0, 64, 64]]), torch.tensor([[8.0, 8, 40, 72]])]
    >>> RoIAlign(7, spatial_scale=0.5, sampling_ratio=2, aligned=True)(feats, boxes).shape
    torch.Size([2, 16, 7, 7])
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from poolkit.geometry import roi_args
from poolkit.numpy.roi import FLT_MAX, align_plan, as_rois, pool_bins

#: Upper bound on the elements of one intermediate (boxes are processed in chunks under it).
_CHUNK_ELEMENTS = 1 << 24
_NUMPY_DTYPE = {torch.float64: np.float64}


def _check_input(input: object, fn_name: str) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"input of {fn_name} must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input of {fn_name} must be floating point, got {input.dtype}")
    if input.dim() != 4 or input.shape[2] == 0 or input.shape[3] == 0:
        raise ValueError(
            f"input of {fn_name} must be 4-d (N, C, H, W) with H, W >= 1, got shape "
            f"{tuple(input.shape)}"
        )
    return input


def _boxes_numpy(boxes):
    """Boxes as NumPy (they carry no gradient); a list stays a list."""
    def convert(b):
        return b.detach().cpu().double().numpy() if isinstance(b, Tensor) else np.asarray(b)
    if isinstance(boxes, (list, tuple)):
        return [convert(b) for b in boxes]
    return convert(boxes)


def _rois(input: Tensor, boxes):
    """Validated boxes in the input's compute dtype (float32 for half types)."""
    np_dtype = _NUMPY_DTYPE.get(input.dtype, np.float32)
    return as_rois(_boxes_numpy(boxes), input.shape[0], np_dtype)


def _compute(input: Tensor) -> Tensor:
    return input if input.dtype in (torch.float32, torch.float64) else input.float()


def _chunks(indices: Tensor, per_box: int):
    """Split the box indices of one image into chunks whose intermediates stay bounded."""
    size = max(1, _CHUNK_ELEMENTS // max(per_box, 1))
    return indices.split(size)


def _by_image(batch_index: np.ndarray, device):
    for n in np.unique(batch_index):
        yield int(n), torch.as_tensor(np.flatnonzero(batch_index == n), device=device)


def _in_box_order(pieces: list[Tensor], order: list[Tensor], empty: Tensor) -> Tensor:
    if not pieces:
        return empty
    inverse = torch.argsort(torch.cat(order))
    return torch.cat(pieces)[inverse]


def roi_align(input: Tensor, boxes, output_size, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """RoI Align (module doc): ``(K, C, PH, PW)``, differentiable in ``input``."""
    _check_input(input, "roi_align")
    args = roi_args(output_size, spatial_scale, sampling_ratio)
    rois = _rois(input, boxes)
    x = _compute(input)
    plan = align_plan(rois, args, tuple(input.shape[2:]), bool(aligned))
    (n, c, h, w), (ph, pw) = x.shape, args.output_size
    row, column, weight = (torch.as_tensor(a, device=x.device) for a in plan.entries())
    # one sparse (K PH PW, N H W) matrix times the channels-last map (N H W, C)
    matrix = torch.sparse_coo_tensor(torch.stack([row, column]), weight.to(x.dtype),
                                     (len(plan.count) * ph * pw, n * h * w), is_coalesced=True,
                                     check_invariants=False)
    out = torch.sparse.mm(matrix, x.permute(0, 2, 3, 1).reshape(n * h * w, c))
    return out.view(-1, ph, pw, c).permute(0, 3, 1, 2).contiguous().to(input.dtype)


def _ps_apply_plan(x: Tensor, plan, output_size) -> Tensor:
    """PS RoI Align: ``A_y X A_x^T / count`` per box, channel ``(c, i, j)`` only meeting bin
    ``(i, j)``, image by image in bounded chunks."""
    (ph, pw), (_, c, h, w) = output_size, x.shape
    c_out = c // (ph * pw)
    ay = torch.as_tensor(plan.ay, device=x.device, dtype=x.dtype)
    ax = torch.as_tensor(plan.ax, device=x.device, dtype=x.dtype)
    count = torch.as_tensor(plan.count, device=x.device, dtype=x.dtype)
    pieces, order = [], []
    for n, indices in _by_image(plan.batch_index, x.device):
        plane = x[n].view(c_out, ph, pw, h, w)
        for chunk in _chunks(indices, c * h):
            by_col = torch.einsum("cpqhw,kqw->kcpqh", plane, ax[chunk])
            pooled = torch.einsum("kcpqh,kph->kcpq", by_col, ay[chunk])
            pieces.append(pooled / count[chunk].view(-1, 1, 1, 1))
            order.append(chunk)
    return _in_box_order(pieces, order, x.new_zeros((0, c_out, ph, pw)))


def ps_roi_align(input: Tensor, boxes, output_size, spatial_scale: float = 1.0,
                 sampling_ratio: int = -1) -> Tensor:
    """Position-sensitive RoI Align (module doc): ``(K, C / (PH PW), PH, PW)``."""
    _check_input(input, "ps_roi_align")
    args = roi_args(output_size, spatial_scale, sampling_ratio)
    bins = args.output_size[0] * args.output_size[1]
    if input.shape[1] % bins:
        raise ValueError(
            f"input channels ({input.shape[1]}) of ps_roi_align must be a multiple of "
            f"output_size[0] * output_size[1] ({bins})"
        )
    rois = _rois(input, boxes)
    plan = align_plan(rois, args, tuple(input.shape[2:]), True, position_sensitive=True)
    return _ps_apply_plan(_compute(input), plan, args.output_size).to(input.dtype)


def roi_pool(input: Tensor, boxes, output_size, spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling (module doc): ``(K, C, PH, PW)``; the gradient of each bin goes to its
    first maximum (row-major), none from an empty bin (value 0)."""
    _check_input(input, "roi_pool")
    args = roi_args(output_size, spatial_scale)
    rois = _rois(input, boxes)
    (hs, he), (ws, we) = pool_bins(rois, args, tuple(input.shape[2:]))
    x = _compute(input)
    index = _roi_pool_argmax(x.detach(), rois.batch_index, (hs, he, ws, we))
    flat = x.flatten(2)
    batch = torch.as_tensor(rois.batch_index, device=x.device).view(-1, 1, 1, 1)
    channel = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    picked = flat[batch, channel, index.clamp(min=0)]
    empty = torch.as_tensor((he <= hs)[:, :, None] | (we <= ws)[:, None, :], device=x.device)
    fill = torch.where(empty, 0.0, -FLT_MAX).to(x.dtype).unsqueeze(1)
    return torch.where(index >= 0, picked, fill).to(input.dtype)


def _roi_pool_argmax(x: Tensor, batch_index: np.ndarray, bins) -> Tensor:
    """The flat position of each bin's first maximum (-1: empty, or nothing > -FLT_MAX)."""
    hs, he, ws, we = (torch.as_tensor(b, device=x.device) for b in bins)
    n_boxes, (ph, pw), (_, c, _, w) = len(batch_index), hs.shape[1:] + ws.shape[1:], x.shape
    index = torch.full((n_boxes, c, ph, pw), -1, dtype=torch.long, device=x.device)
    if n_boxes == 0 or c == 0:
        return index
    tall = int((he - hs).clamp(min=0).max())
    wide = int((we - ws).clamp(min=0).max())
    if tall == 0 or wide == 0:
        return index
    flat, plane_size = x.contiguous(), x.shape[2] * x.shape[3]
    batch = torch.as_tensor(batch_index, device=x.device)
    for chunk in torch.arange(n_boxes, device=x.device).split(
            max(1, _CHUNK_ELEMENTS // (c * ph * pw * tall * wide))):
        rows = hs[chunk, :, None] + torch.arange(tall, device=x.device)  # (k, PH, tall)
        cols = ws[chunk, :, None] + torch.arange(wide, device=x.device)  # (k, PW, wide)
        inside = (rows < he[chunk, :, None])[:, :, None, :, None] \
            & (cols < we[chunk, :, None])[:, None, :, None, :]
        where = rows[:, :, None, :, None] * w + cols[:, None, :, None, :]  # (k, PH, PW, t, w)
        where = torch.where(inside, where, 0).flatten(1)
        planes = batch[chunk, None] * c + torch.arange(c, device=x.device)  # (k, C)
        values = flat.reshape(-1)[planes[:, :, None] * plane_size + where[:, None, :]]
        values = values.view(len(chunk), c, ph * pw, tall * wide)
        values = torch.where(inside.view(len(chunk), 1, ph * pw, -1) & ~values.isnan(), values,
                             -math.inf)
        best, arg = values.max(dim=3)  # first maximum on ties
        position = where.view(len(chunk), 1, ph * pw, -1).expand(-1, c, -1, -1)
        position = position.gather(3, arg.unsqueeze(3)).squeeze(3)
        found = best > -FLT_MAX
        index[chunk] = torch.where(found, position, -1).view(len(chunk), c, ph, pw)
    return index


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class _RoIModule(nn.Module):
    def __init__(self, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1):
        super().__init__()
        args = roi_args(output_size, spatial_scale, sampling_ratio)
        self.output_size, self.spatial_scale = args.output_size, args.spatial_scale
        self.sampling_ratio = args.sampling_ratio

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}")


class RoIAlign(_RoIModule):
    r"""RoI Align (He et al., Mask R-CNN, ICCV 2017), ``torchvision.ops.RoIAlign``'s arguments.

    Each of the ``PH x PW`` bins of box ``k`` is the mean of ``g_h x g_w`` bilinear samples,

    .. math::
        y_{k,c,i,j} = \frac{1}{g_h g_w} \sum_{a < g_h,\, b < g_w}
        \operatorname{bilinear}\big(x_{n_k, c},\ y_1 + (i + \tfrac{a + 0.5}{g_h}) \beta_h,\
        x_1 + (j + \tfrac{b + 0.5}{g_w}) \beta_w\big),

    the box scaled by ``spatial_scale`` (minus 0.5 when ``aligned``), :math:`\beta` the bin
    size, :math:`g` = ``sampling_ratio`` or :math:`\lceil \beta \rceil` when it is ``-1``
    (see :mod:`poolkit.nn.roi`).

    Shape:
        - input: ``(N, C, H, W)``; boxes: ``(K, 5)`` ``[batch_index, x1, y1, x2, y2]`` or a
          list of ``N`` tensors ``(K_i, 4)``.
        - output: ``(K, C, PH, PW)``.
    """

    def __init__(self, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
                 aligned: bool = False):
        super().__init__(output_size, spatial_scale, sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: Tensor, boxes) -> Tensor:
        return roi_align(input, boxes, self.output_size, self.spatial_scale, self.sampling_ratio,
                         self.aligned)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", aligned={self.aligned}"


class PSRoIAlign(_RoIModule):
    """Position-sensitive RoI Align (Dai et al., R-FCN, NeurIPS 2016, with RoI Align's
    sampling), ``torchvision.ops.PSRoIAlign``'s arguments.

    Bin ``(i, j)`` of output channel ``c`` is RoI Align's mean of bilinear samples (see
    :class:`RoIAlign`) read from input channel ``(c PH + i) PW + j`` only, so each bin has its
    own group of channels.

    Shape:
        - input: ``(N, C, H, W)``, ``C`` a multiple of ``PH * PW``; boxes as :class:`RoIAlign`.
        - output: ``(K, C / (PH PW), PH, PW)``.
    """

    def forward(self, input: Tensor, boxes) -> Tensor:
        return ps_roi_align(input, boxes, self.output_size, self.spatial_scale,
                            self.sampling_ratio)


class RoIPool(_RoIModule):
    r"""RoI max pooling (Girshick, Fast R-CNN, ICCV 2015), ``torchvision.ops.RoIPool``'s
    arguments.

    The box is scaled by ``spatial_scale`` and rounded to whole cells; bin ``(i, j)`` is the
    maximum over its quantised cells,

    .. math::
        y_{k,c,i,j} = \max_{h \in [h_s + \lfloor i \beta_h \rfloor,\, h_s + \lceil (i + 1)
        \beta_h \rceil),\ w \in [\dots)} x_{n_k, c, h, w}

    (0 for an empty bin); the gradient of each bin goes to its first maximum.

    Shape:
        - input: ``(N, C, H, W)``; boxes as :class:`RoIAlign`.
        - output: ``(K, C, PH, PW)``.
    """

    def __init__(self, output_size, spatial_scale: float = 1.0):
        super().__init__(output_size, spatial_scale)

    def forward(self, input: Tensor, boxes) -> Tensor:
        return roi_pool(input, boxes, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


def fpn_levels(boxes: Sequence[Tensor], k_min: int, k_max: int, canonical_scale: int = 224,
               canonical_level: int = 4, eps: float = 1e-6) -> Tensor:
    r"""FPN's level of each box (Lin et al., CVPR 2017, eq. 1), counted from ``k_min``:
    :math:`\lfloor k_0 + \log_2(\sqrt{wh} / 224) + \epsilon \rfloor` clamped to
    ``[k_min, k_max]``, minus ``k_min`` (torchvision's ``LevelMapper``)."""
    areas = [(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) for b in boxes]
    scale = torch.sqrt(torch.cat(areas)) if areas else torch.zeros(0)
    levels = torch.floor(canonical_level + torch.log2(scale / canonical_scale) + eps)
    return (levels.clamp(min=k_min, max=k_max) - k_min).to(torch.int64)


class MultiScaleRoIAlign(nn.Module):
    """RoI Align over a feature pyramid (``torchvision.ops.MultiScaleRoIAlign``).

    ``forward(x, boxes, image_shapes)``: ``x`` maps names to feature maps (only
    ``featmap_names`` are used, in that order, finest first), ``boxes`` is a list of ``(K_i, 4)``
    tensors in image coordinates, ``image_shapes`` the ``(height, width)`` of each image. Each
    map's scale is ``2 ** round(log2(map size / image size))`` (from the largest image); a box
    goes to level :func:`fpn_levels` and is pooled there with ``aligned=False``.

    Shape:
        - x: maps ``(N, C, H_l, W_l)``, one per level, the same ``C``; boxes: ``N`` tensors
          ``(K_i, 4)``.
        - output: ``(K, C, PH, PW)``, ``K = sum K_i``, boxes in order.
    """

    def __init__(self, featmap_names: Sequence[str], output_size, sampling_ratio: int, *,
                 canonical_scale: int = 224, canonical_level: int = 4):
        super().__init__()
        if isinstance(featmap_names, str) or not featmap_names:
            raise ValueError(f"featmap_names ({featmap_names!r}) must be a non-empty list of names")
        args = roi_args(output_size, 1.0, sampling_ratio)
        self.featmap_names = list(featmap_names)
        self.output_size, self.sampling_ratio = args.output_size, args.sampling_ratio
        self.canonical_scale, self.canonical_level = canonical_scale, canonical_level

    @staticmethod
    def infer_scale(feature: Tensor, image_size: Sequence[int]) -> float:
        """The power of two nearest ``feature height / image height``."""
        return 2.0 ** round(math.log2(feature.shape[-2] / image_size[0]))

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor],
                image_shapes: list[tuple[int, int]]) -> Tensor:
        missing = [name for name in self.featmap_names if name not in x]
        if missing:
            raise ValueError(f"feature maps {missing} are missing from x (keys {list(x)})")
        if len(image_shapes) != len(boxes):
            raise ValueError(f"image_shapes has {len(image_shapes)} entries, boxes "
                             f"{len(boxes)}; give one (height, width) per image")
        features = [x[name] for name in self.featmap_names]
        image_size = tuple(max(s[d] for s in image_shapes) for d in range(2))
        scales = [self.infer_scale(f, image_size) for f in features]
        if len(features) == 1:
            return roi_align(features[0], boxes, self.output_size, scales[0],
                             self.sampling_ratio)
        k_min, k_max = round(-math.log2(scales[0])), round(-math.log2(scales[-1]))
        levels = fpn_levels(boxes, k_min, k_max, self.canonical_scale, self.canonical_level)
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1)
                          for i, b in enumerate(boxes)])
        first = features[0]
        out = first.new_zeros((len(rois), first.shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, scales, strict=True)):
            chosen = torch.nonzero(levels == level).flatten()
            if len(chosen):
                out = out.index_copy(0, chosen.to(out.device), roi_align(
                    feature, rois[chosen], self.output_size, scale, self.sampling_ratio))
        return out

    def extra_repr(self) -> str:
        return (f"featmap_names={self.featmap_names}, output_size={self.output_size}, "
                f"sampling_ratio={self.sampling_ratio}")


# --------------------------------------------------------------------------------------------
# Registry: the RoI layers by name (box-wise pools, apart from create_pool's plane pools)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoIPoolInfo:
    """One entry of the RoI registry (:func:`create_roi_pool`, :func:`list_roi_pools`).

    Attributes:
        name: the registry name (``"roi_pool"``, ``"roi_align"``, ``"roi_align_aligned"``,
            ``"ps_roi_align"``).
        title: the human name (``"RoI Align (aligned)"``).
        paper: where the op comes from (authors, venue, year).
        summary: what it computes, one line.
        cls: the module class it builds.
        defaults: constructor arguments the name fixes, as ``(name, value)`` pairs (e.g.
            ``aligned=True`` for ``roi_align_aligned``).
    """

    name: str
    title: str
    paper: str
    summary: str
    cls: type
    defaults: tuple[tuple[str, object], ...] = ()  # constructor arguments the name fixes


ROI_POOLS: dict[str, RoIPoolInfo] = {
    info.name: info for info in (
        RoIPoolInfo(name="roi_pool", title="RoI pooling", paper="Girshick, ICCV 2015",
                    summary="max over quantised bins of the rounded box", cls=RoIPool),
        RoIPoolInfo(name="roi_align", title="RoI Align", paper="He et al., ICCV 2017",
                    summary="mean of bilinear samples per bin, no rounding (aligned=False)",
                    cls=RoIAlign),
        RoIPoolInfo(name="roi_align_aligned", title="RoI Align (aligned)",
                    paper="He et al., ICCV 2017; Wu et al., Detectron2, 2019",
                    summary="RoI Align with the half-pixel offset (pixel centres at i + 0.5)",
                    cls=RoIAlign, defaults=(("aligned", True),)),
        RoIPoolInfo(name="ps_roi_align", title="Position-sensitive RoI Align",
                    paper="Dai et al., NeurIPS 2016", cls=PSRoIAlign,
                    summary="bin (i, j) of channel c reads channel (c PH + i) PW + j"),
    )
}


def list_roi_pools() -> list[str]:
    """The names :func:`create_roi_pool` accepts (sorted)."""
    return sorted(ROI_POOLS)


def create_roi_pool(name, output_size=7, **kwargs) -> nn.Module:
    """The RoI layer called ``name`` (an ``nn.Module`` passes through): e.g.
    ``create_roi_pool("roi_align_aligned", 7, spatial_scale=1 / 8, sampling_ratio=2)``."""
    if isinstance(name, nn.Module):
        return name
    if name not in ROI_POOLS:
        raise ValueError(f"unknown RoI pool name {name!r}; valid names: {list_roi_pools()}")
    info = ROI_POOLS[name]
    fixed = dict(info.defaults)
    clash = sorted(set(fixed) & set(kwargs))
    if clash:
        raise TypeError(f"RoI pool {name!r} fixes {clash}; use another name to change them")
    accepted = [p for p in inspect.signature(info.cls.__init__).parameters
                if p not in ("self", "output_size", *fixed)]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"RoI pool {name!r} got unexpected argument(s) {unknown}; it accepts "
                        f"{accepted}")
    return info.cls(output_size, **fixed, **kwargs)
