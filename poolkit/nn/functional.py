"""Functional forms of every pooling family (``poolkit.nn.functional as PF``).

Each family has ``<name>1d``/``2d``/``3d`` (input ``(N, C, *spatial)``); windowed functions take
``kernel_size``/``stride``/``padding`` and ``kernel_size=None`` pools each whole plane to
``(N, C, 1, ...)``. The N-d forms (``soft_pool(input, ..., dims=2)``) are here too, and the RoI
ops of detection heads, ``roi_pool``/``roi_align``/``ps_roi_align(input, boxes, output_size, ...)``
with ``torchvision.ops``' arguments.
"""

from __future__ import annotations

from poolkit.nn.basic import (
    avg_pool,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    avgmax_pool,
    avgmax_pool1d,
    avgmax_pool2d,
    avgmax_pool3d,
    catavgmax_pool,
    catavgmax_pool1d,
    catavgmax_pool2d,
    catavgmax_pool3d,
    lp_pool,
    lp_pool1d,
    lp_pool2d,
    lp_pool3d,
    max_pool,
    max_pool1d,
    max_pool2d,
    max_pool3d,
)
from poolkit.nn.blur import (
    binomial_filter,
    blur_pool,
    blur_pool1d,
    blur_pool2d,
    blur_pool3d,
    max_blur_pool,
    max_blur_pool1d,
    max_blur_pool2d,
    max_blur_pool3d,
)
from poolkit.nn.exponential import (
    lip_pool,
    lip_pool1d,
    lip_pool2d,
    lip_pool3d,
    lse_pool,
    lse_pool1d,
    lse_pool2d,
    lse_pool3d,
    soft_pool,
    soft_pool1d,
    soft_pool2d,
    soft_pool3d,
)
from poolkit.nn.fractional import (
    fractional_max_pool,
    fractional_max_pool1d,
    fractional_max_pool2d,
    fractional_max_pool3d,
    fractional_output_size,
    fractional_sequence,
    random_fractional_sequence,
)
from poolkit.nn.kmax import (
    dynamic_k,
    dynamic_kmax_pool1d,
    global_kmax_pool,
    kmax_pool,
    kmax_pool1d,
)
from poolkit.nn.mixed import (
    gated_pool,
    gated_pool1d,
    gated_pool2d,
    gated_pool3d,
    mixed_pool,
    mixed_pool1d,
    mixed_pool2d,
    mixed_pool3d,
    tree_pool,
    tree_pool1d,
    tree_pool2d,
    tree_pool3d,
)
from poolkit.nn.power import (
    gem_pool,
    gem_pool1d,
    gem_pool2d,
    gem_pool3d,
    lp_abs_pool,
    lp_abs_pool1d,
    lp_abs_pool2d,
    lp_abs_pool3d,
)
from poolkit.nn.pyramid import (
    pyramid_bins,
    spatial_pyramid_pool,
    spatial_pyramid_pool1d,
    spatial_pyramid_pool2d,
    spatial_pyramid_pool3d,
)
from poolkit.nn.roi import ps_roi_align, roi_align, roi_pool
from poolkit.nn.stochastic import (
    stochastic_indices,
    stochastic_pool,
    stochastic_pool1d,
    stochastic_pool2d,
    stochastic_pool3d,
)

__all__ = [
    "avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d", "avgmax_pool", "avgmax_pool1d",
    "avgmax_pool2d", "avgmax_pool3d", "catavgmax_pool", "catavgmax_pool1d", "catavgmax_pool2d",
    "catavgmax_pool3d", "lp_pool", "lp_pool1d", "lp_pool2d", "lp_pool3d", "max_pool",
    "max_pool1d", "max_pool2d", "max_pool3d", "binomial_filter", "blur_pool", "blur_pool1d",
    "blur_pool2d", "blur_pool3d", "max_blur_pool", "max_blur_pool1d", "max_blur_pool2d",
    "max_blur_pool3d", "lip_pool", "lip_pool1d", "lip_pool2d", "lip_pool3d", "lse_pool",
    "lse_pool1d", "lse_pool2d", "lse_pool3d", "soft_pool", "soft_pool1d", "soft_pool2d",
    "soft_pool3d", "fractional_max_pool", "fractional_max_pool1d", "fractional_max_pool2d",
    "fractional_max_pool3d", "fractional_output_size", "fractional_sequence",
    "random_fractional_sequence", "dynamic_k", "dynamic_kmax_pool1d", "global_kmax_pool",
    "kmax_pool", "kmax_pool1d", "gated_pool", "gated_pool1d", "gated_pool2d", "gated_pool3d",
    "mixed_pool", "mixed_pool1d", "mixed_pool2d", "mixed_pool3d", "tree_pool", "tree_pool1d",
    "tree_pool2d", "tree_pool3d", "gem_pool", "gem_pool1d", "gem_pool2d", "gem_pool3d",
    "lp_abs_pool", "lp_abs_pool1d", "lp_abs_pool2d", "lp_abs_pool3d", "pyramid_bins",
    "spatial_pyramid_pool", "spatial_pyramid_pool1d", "spatial_pyramid_pool2d",
    "spatial_pyramid_pool3d", "stochastic_indices", "stochastic_pool", "stochastic_pool1d",
    "stochastic_pool2d", "stochastic_pool3d", "roi_pool", "roi_align", "ps_roi_align",
]
