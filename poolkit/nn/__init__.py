"""PyTorch pooling layers for every pooling family, masked sequence pooling, the factory.

``create_pool(name, dims=2, **kwargs)`` builds any family by name (see
:mod:`poolkit.nn.factory`); ``poolkit.nn.functional`` holds the functional forms; the module
classes are importable from here. ``docs/pooling-families.md`` has the table of families.
"""

from __future__ import annotations

from poolkit.nn._base import PoolModule
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
from poolkit.nn.factory import PoolInfo, create_pool, list_pools, pool_info, register_pool
from poolkit.nn.kmax import DynamicKMaxPool1d, KMaxPool1d, KMaxPool2d, KMaxPool3d

# Masked sequence pooling (poolkit/nn/sequence.py) is imported below this line.
from poolkit.nn.sequence import LEARNED_MODES, POOLING_MODES, SequencePool, prompt_exclude_mask

__all__ = [  # grouped by family
    "PoolModule", "PoolInfo", "create_pool", "list_pools", "pool_info", "register_pool",
    "Identity",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "AvgMaxPool1d", "AvgMaxPool2d", "AvgMaxPool3d",
    "CatAvgMaxPool1d", "CatAvgMaxPool2d", "CatAvgMaxPool3d",
    "KMaxPool1d", "KMaxPool2d", "KMaxPool3d", "DynamicKMaxPool1d",
    # sequence pooling
    "LEARNED_MODES", "POOLING_MODES", "SequencePool", "prompt_exclude_mask",
]
