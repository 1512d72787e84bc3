"""poolkit's pooling zoo as Keras 3 layers: ``keras.ops`` only, so every layer runs on the
TensorFlow, JAX and PyTorch backends (``pip install "poolkit[keras]"``).

Each layer is the twin of the :mod:`poolkit.nn` module of the same family, with the same
arguments, geometry and numbers (tested against it), Keras conventions on top: ``data_format``
(``"channels_last"`` by default), ``get_config`` and registration (a model saves to ``.keras``
and loads back), Keras weights for learned pools, ``training`` for the stochastic ones, masking
for :class:`SequencePool`. ``create_pool("gem", dims=2)`` is the same factory as
:func:`poolkit.nn.create_pool`; :meth:`load_torch_weights` copies a trained poolkit.nn pool's
weights. ``import poolkit`` never imports Keras; this package does.

Example::

    >>> import keras, poolkit.keras as pk
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(16, 3),
    ...                           pk.create_pool("gem"), keras.layers.Dense(10)])
"""

from __future__ import annotations

from poolkit.keras._base import PoolLayer, WindowPool
from poolkit.keras.factory import create_pool, list_pools, pool_class
from poolkit.keras.pooling import (
    AvgMaxPool,
    AvgPool,
    CatAvgMaxPool,
    GatedPool,
    GeMPool,
    LIPPool,
    LpAbsPool,
    LPPool,
    LSEPool,
    MaxPool,
    MixedPool,
    SoftPool,
    StochasticPool,
    TreePool,
)
from poolkit.keras.sequence import SequencePool
from poolkit.keras.shaped import (
    AttentionPool,
    BlurPool,
    DynamicKMaxPool,
    FractionalMaxPool,
    Identity,
    KMaxPool,
    MaxBlurPool,
    SpatialPyramidPool,
)
from poolkit.pools import LEARNED_MODES, POOLING_MODES

_FAMILY_CLASSES = (
    AvgMaxPool, AvgPool, CatAvgMaxPool, GatedPool, GeMPool, LIPPool, LPPool, LpAbsPool, LSEPool,
    MaxPool, MixedPool, SoftPool, StochasticPool, TreePool, AttentionPool, BlurPool,
    FractionalMaxPool, KMaxPool, MaxBlurPool, SpatialPyramidPool,
)


def _with_dims(cls: type, dims: int) -> type:
    """``MaxPool2D`` = ``MaxPool`` with ``dims=2`` fixed (registered for saving)."""
    import keras

    def __init__(self, *args, **kwargs):
        kwargs.pop("dims", None)
        cls.__init__(self, *args, dims=dims, **kwargs)

    name = f"{cls.__name__}{dims}D"
    sub = type(name, (cls,), {"__init__": __init__, "__doc__": f"{dims}-D :class:`{cls.__name__}`.",
                              "__module__": __name__})
    return keras.saving.register_keras_serializable(package="poolkit")(sub)


for _cls in _FAMILY_CLASSES:
    for _dims in (1, 2, 3):
        globals()[f"{_cls.__name__}{_dims}D"] = _with_dims(_cls, _dims)
DynamicKMaxPool1D = _with_dims(DynamicKMaxPool, 1)

__all__ = [
    "LEARNED_MODES", "POOLING_MODES", "AttentionPool", "AvgMaxPool", "AvgPool", "BlurPool",
    "CatAvgMaxPool", "DynamicKMaxPool", "FractionalMaxPool", "GatedPool", "GeMPool", "Identity",
    "KMaxPool", "LIPPool", "LPPool", "LSEPool", "LpAbsPool", "MaxBlurPool", "MaxPool",
    "MixedPool", "PoolLayer", "SequencePool", "SoftPool", "SpatialPyramidPool", "StochasticPool",
    "TreePool", "WindowPool", "create_pool", "list_pools", "pool_class",
    *(f"{c.__name__}{d}D" for c in _FAMILY_CLASSES for d in (1, 2, 3)), "DynamicKMaxPool1D",
]
