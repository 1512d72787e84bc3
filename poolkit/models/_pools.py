"""Pools for the models: :func:`poolkit.nn.create_pool` plus what a model knows and a user
should not have to repeat (the channel count of families with per-channel weights)."""

from __future__ import annotations

from poolkit.nn import create_pool, list_pools, pool_info


def make_pool(name, dims: int, channels: int, **kwargs):
    """``create_pool(name, dims, **kwargs)``, adding ``channels=channels`` for the families whose
    constructor requires it (``pool_info(name).needs_channels``: attention, LIP) when the caller
    did not give it. A context module (``ppm``, ``aspp``), whose ``channels`` selects its only
    form, gets none: a model that wants one asks for it."""
    if (isinstance(name, str) and name in list_pools() and "channels" not in kwargs
            and pool_info(name).needs_channels and "channels" not in pool_info(name).size_args):
        kwargs["channels"] = channels
    return create_pool(name, dims=dims, **kwargs)


def downsampling_kwargs(name, **overrides) -> dict:
    """Arguments of a 2x downsampling pool: ``kernel_size=2, stride=2``; fractional max pooling
    has no stride and takes ``output_ratio=0.5`` instead. ``None`` values drop a default."""
    defaults = {"kernel_size": 2, "stride": 2}
    if name == "fractional_max":
        defaults = {"kernel_size": 2, "output_ratio": 0.5}
    merged = {**defaults, **overrides}
    return {key: value for key, value in merged.items() if value is not None}
