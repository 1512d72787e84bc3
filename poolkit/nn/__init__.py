"""PyTorch pooling layers for every pooling family, masked sequence pooling, the factory.

``create_pool(name, dims=2, **kwargs)`` builds any family by name (see
:mod:`poolkit.nn.factory`); ``poolkit.nn.functional`` holds the functional forms; the module
classes are importable from here. The box-wise RoI layers of detection heads (``RoIPool``,
``RoIAlign``, ``PSRoIAlign``, ``MultiScaleRoIAlign``) have their own registry,
``create_roi_pool(name, output_size, **kwargs)`` / ``list_roi_pools()`` (:mod:`poolkit.nn.roi`).
``GlobalPool`` / ``set_global_pool(model, name)`` put any global pool into an image model
(:mod:`poolkit.nn.swap`).
``docs/pooling-families.md`` has the table of families.
"""

from __future__ import annotations

from poolkit.nn import functional
from poolkit.nn._base import PoolModule
from poolkit.nn.attention import AttentionPool1d, AttentionPool2d, AttentionPool3d
from poolkit.nn.basic import (
    AvgMaxPool1d,
    AvgMaxPool2d,
    AvgMaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    CatAvgMaxPool1d,
    CatAvgMaxPool2d,
    CatAvgMaxPool3d,
    Identity,
    LPPool1d,
    LPPool2d,
    LPPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from poolkit.nn.blur import (
    BlurPool1d,
    BlurPool2d,
    BlurPool3d,
    MaxBlurPool1d,
    MaxBlurPool2d,
    MaxBlurPool3d,
)
from poolkit.nn.context import ASPP, ASPPPooling, PyramidPooling
from poolkit.nn.exponential import (
    LIPLogit,
    LIPPool1d,
    LIPPool2d,
    LIPPool3d,
    LSEPool1d,
    LSEPool2d,
    LSEPool3d,
    SoftPool1d,
    SoftPool2d,
    SoftPool3d,
)
from poolkit.nn.factory import PoolInfo, create_pool, list_pools, pool_info, register_pool
from poolkit.nn.fractional import FractionalMaxPool1d, FractionalMaxPool2d, FractionalMaxPool3d
from poolkit.nn.kmax import DynamicKMaxPool1d, KMaxPool1d, KMaxPool2d, KMaxPool3d
from poolkit.nn.mixed import (
    GatedPool1d,
    GatedPool2d,
    GatedPool3d,
    MixedPool1d,
    MixedPool2d,
    MixedPool3d,
    TreePool1d,
    TreePool2d,
    TreePool3d,
)
from poolkit.nn.power import GeMPool1d, GeMPool2d, GeMPool3d, LpAbsPool1d, LpAbsPool2d, LpAbsPool3d
from poolkit.nn.pyramid import SpatialPyramidPool1d, SpatialPyramidPool2d, SpatialPyramidPool3d
from poolkit.nn.roi import (
    ROI_POOLS,
    MultiScaleRoIAlign,
    PSRoIAlign,
    RoIAlign,
    RoIPool,
    RoIPoolInfo,
    create_roi_pool,
    fpn_levels,
    list_roi_pools,
)
from poolkit.nn.sequence import LEARNED_MODES, POOLING_MODES, SequencePool, prompt_exclude_mask
from poolkit.nn.stochastic import StochasticPool1d, StochasticPool2d, StochasticPool3d
from poolkit.nn.swap import GlobalPool, set_global_pool

__all__ = [  # grouped by family
    "functional",
    "PoolModule", "PoolInfo", "create_pool", "list_pools", "pool_info", "register_pool",
    "PyramidPooling", "ASPPPooling", "ASPP",
    # image models: timm's global-pool contract, swapping a model's global pool
    "GlobalPool", "set_global_pool",
    "Identity",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "AvgMaxPool1d", "AvgMaxPool2d", "AvgMaxPool3d",
    "CatAvgMaxPool1d", "CatAvgMaxPool2d", "CatAvgMaxPool3d",
    "KMaxPool1d", "KMaxPool2d", "KMaxPool3d", "DynamicKMaxPool1d",
    "AttentionPool1d", "AttentionPool2d", "AttentionPool3d", "BlurPool1d", "BlurPool2d",
    "BlurPool3d", "MaxBlurPool1d", "MaxBlurPool2d", "MaxBlurPool3d", "LIPLogit", "LIPPool1d",
    "LIPPool2d", "LIPPool3d", "LSEPool1d", "LSEPool2d", "LSEPool3d", "SoftPool1d", "SoftPool2d",
    "SoftPool3d", "FractionalMaxPool1d", "FractionalMaxPool2d", "FractionalMaxPool3d",
    "GatedPool1d", "GatedPool2d", "GatedPool3d", "MixedPool1d", "MixedPool2d", "MixedPool3d",
    "TreePool1d", "TreePool2d", "TreePool3d", "GeMPool1d", "GeMPool2d", "GeMPool3d",
    "LpAbsPool1d", "LpAbsPool2d", "LpAbsPool3d", "SpatialPyramidPool1d", "SpatialPyramidPool2d",
    "SpatialPyramidPool3d", "StochasticPool1d", "StochasticPool2d", "StochasticPool3d",
    # region-of-interest pooling (detection heads)
    "ROI_POOLS", "RoIPoolInfo", "create_roi_pool", "list_roi_pools", "RoIPool", "RoIAlign",
    "PSRoIAlign", "MultiScaleRoIAlign", "fpn_levels",
    # sequence pooling
    "LEARNED_MODES", "POOLING_MODES", "SequencePool", "prompt_exclude_mask",
]
