"""Global pools for image models: timm's global-pool contract and a one-line swap.

:class:`GlobalPool` is any global pool of the registry behind timm's ``SelectAdaptivePool2d``
interface: ``GlobalPool(pool_type, flatten=True, input_fmt="NCHW", **kwargs)``,
``is_identity()``, ``feat_mult()``, NHWC input with ``input_fmt="NHWC"``.

:func:`set_global_pool` swaps the global pooling of a model in place and resizes the layers fed
by it (classifier, and the head's norm where there is one) by the new ``feat_mult()``: poolkit's
``ConvNet``, transformers' ``ResNetForImageClassification`` and
``ConvNextForImageClassification``, and timm models (``global_pool`` + ``get_classifier()``).
Resized layers are freshly initialised; the rest of the model keeps its weights.

Example::

    >>> from poolkit.models import ConvNet, ConvNetConfig
    >>> model = ConvNet(ConvNetConfig(image_size=8, channels=(8,)))
    >>> set_global_pool(model, "catavgmax").classifier.in_features
    16
"""

from __future__ import annotations

from torch import Tensor, nn

from poolkit.geometry import check_choice, check_dims
from poolkit.nn._base import PoolModule
from poolkit.nn.factory import create_pool, list_pools, pool_info

_IDENTITY = ("", "identity")
_FORMATS = ("NCHW", "NHWC")


class GlobalPool(PoolModule):
    r"""A global pool by name with timm's ``SelectAdaptivePool2d`` interface.

    ``pool_type`` is a registry name with a global form (``"avg"``, ``"catavgmax"``, ``"gem"``,
    ...), ``''``/``"identity"`` (no pooling, :meth:`is_identity` is true) or an ``nn.Module``.
    ``input_fmt="NHWC"`` takes channels-last *layout* input ``(N, *S, C)`` (timm's NHWC models).
    ``**kwargs`` go to :func:`create_pool` (``channels=C`` for ``attention``/``lip``).

    Shape:
        - Input: :math:`(N, C, *S)` (or :math:`(N, *S, C)` with ``input_fmt="NHWC"``)
        - Output: :math:`(N, C \cdot \text{feat\_mult})`; ``flatten=False``:
          :math:`(N, C \cdot \text{feat\_mult}, 1, ...)`; identity: the input.

    Example::

        >>> pool = GlobalPool("catavgmax", input_fmt="NHWC")
        >>> pool(torch.rand(2, 7, 7, 64)).shape, pool.feat_mult(), pool.is_identity()
        (torch.Size([2, 128]), 2, False)
    """

    def __init__(self, pool_type="avg", flatten: bool = True, input_fmt: str = "NCHW",
                 dims: int = 2, **kwargs) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.input_fmt = check_choice(input_fmt, "input_fmt", _FORMATS)
        self.flatten = bool(flatten)
        self.pool_type = pool_type if isinstance(pool_type, str) else type(pool_type).__name__
        if isinstance(pool_type, str) and pool_type not in _IDENTITY:
            if pool_type in list_pools() and not pool_info(pool_type).global_:
                names = [n for n in list_pools() if pool_info(n).global_]
                raise ValueError(f"pool_type ({pool_type!r}) has no global form; "
                                 f"global pools: {names}")
            kwargs = {**kwargs, "flatten": self.flatten}
            if pool_type == "spp":
                kwargs.setdefault("global_pool", True)
        self.pool = create_pool(pool_type, dims=dims, **kwargs)

    def is_identity(self) -> bool:
        return self.pool_type in _IDENTITY

    def feat_mult(self) -> int:
        return self.pool.feat_mult() if hasattr(self.pool, "feat_mult") else 1

    def forward(self, input: Tensor) -> Tensor:
        if self.input_fmt == "NHWC":
            input = input.movedim(-1, 1)
        return self.pool(input)

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}, flatten={self.flatten}, input_fmt={self.input_fmt!r}"


def _resized_linear(old: nn.Linear, in_features: int) -> nn.Linear:
    """``old`` itself if it already takes ``in_features``, else a new Linear like it."""
    if old.in_features == in_features:
        return old
    weight = old.weight
    return nn.Linear(in_features, old.out_features, bias=old.bias is not None,
                     device=weight.device, dtype=weight.dtype)


def _new_pool(name, flatten: bool, width: int, like: nn.Module, kwargs: dict, **extra):
    """``GlobalPool(name, ...)`` on ``like``'s device and dtype; ``channels=width`` for the
    families that need it."""
    if isinstance(name, str) and name in list_pools() and pool_info(name).needs_channels:
        kwargs.setdefault("channels", width)
    pool = GlobalPool(name, flatten=flatten, **extra, **kwargs)
    weight = next(like.parameters(), None)
    return pool if weight is None else pool.to(device=weight.device, dtype=weight.dtype)


def _width(pool: nn.Module, features: int) -> int:
    """Channels before a pool that emits ``features`` (``C * feat_mult``)."""
    mult = pool.feat_mult() if hasattr(pool, "feat_mult") else 1
    return features // mult


def _swap_convnet(model, name, kwargs) -> None:
    """poolkit's ConvNet (``head_pool`` -> dropout -> ``classifier``)."""
    width = _width(model.head_pool, model.classifier.in_features)
    model.head_pool = _new_pool(name, True, width, model.classifier, kwargs)
    model.classifier = _resized_linear(model.classifier, width * model.head_pool.feat_mult())


def _swap_hf_resnet(model, name, kwargs) -> None:
    """transformers' ResNet: ``resnet.pooler`` (N, C, 1, 1) -> ``classifier`` (Flatten, Linear)."""
    width = model.config.hidden_sizes[-1]
    model.resnet.pooler = _new_pool(name, False, width, model.classifier, kwargs)
    if isinstance(model.classifier[-1], nn.Linear):
        model.classifier[-1] = _resized_linear(model.classifier[-1],
                                               width * model.resnet.pooler.feat_mult())


def _swap_hf_convnext(model, name, kwargs) -> None:
    """transformers' ConvNeXt: its model averages in ``forward``; the model's class is swapped
    for a subclass that pools with ``global_pool`` (the ToMe way), and the final LayerNorm and
    the classifier are resized."""
    backbone = model.convnext
    width = model.config.hidden_sizes[-1]
    backbone.global_pool = _new_pool(name, True, width, backbone.layernorm, kwargs)
    features = width * backbone.global_pool.feat_mult()
    if backbone.layernorm.normalized_shape != (features,):
        old = backbone.layernorm
        backbone.layernorm = nn.LayerNorm(features, eps=old.eps, device=old.weight.device,
                                          dtype=old.weight.dtype)
    if not getattr(type(backbone), "_poolkit_pooled", False):
        backbone.__class__ = _pooled_convnext_class(type(backbone))
    if isinstance(model.classifier, nn.Linear):
        model.classifier = _resized_linear(model.classifier, features)


_CONVNEXT_CLASSES: dict[type, type] = {}


def _pooled_convnext_class(base: type) -> type:
    """``base`` (transformers' ``ConvNextModel``) pooling with ``self.global_pool``."""
    if base not in _CONVNEXT_CLASSES:
        def forward(self, pixel_values=None, **kwargs):
            if pixel_values is None:
                raise ValueError("You have to specify pixel_values")
            encoded = self.encoder(self.embeddings(pixel_values), **kwargs)
            last_hidden_state = encoded.last_hidden_state  # (N, C, H, W)
            pooled = self.layernorm(self.global_pool(last_hidden_state))  # (N, C * feat_mult)
            from transformers.modeling_outputs import BaseModelOutputWithPoolingAndNoAttention

            return BaseModelOutputWithPoolingAndNoAttention(
                last_hidden_state=last_hidden_state, pooler_output=pooled,
                hidden_states=encoded.hidden_states,
            )

        _CONVNEXT_CLASSES[base] = type(f"Pooled{base.__name__}", (base,),
                                       {"forward": forward, "_poolkit_pooled": True})
    return _CONVNEXT_CLASSES[base]


def _swap_timm(model, name, kwargs) -> None:
    """timm: the module named ``global_pool`` (``model.global_pool`` or
    ``model.head.global_pool``), the head's norm where it follows the pool, and
    ``get_classifier()``."""
    owner = model.head if hasattr(model, "head") and hasattr(model.head, "global_pool") \
        else model
    old = owner.global_pool
    classifier = model.get_classifier()
    width = _width(old, classifier.in_features)
    flag = getattr(old, "flatten", True)  # timm: nn.Flatten / nn.Identity; GlobalPool: a bool
    flatten = flag if isinstance(flag, bool) else not isinstance(flag, nn.Identity)
    input_fmt = str(getattr(old, "input_fmt", "NCHW"))
    input_fmt = "NHWC" if input_fmt.endswith("NHWC") else "NCHW"  # timm's Format enum
    owner.global_pool = _new_pool(name, flatten, width, classifier, kwargs, input_fmt=input_fmt)
    features = width * owner.global_pool.feat_mult()
    norm = getattr(owner, "norm", None)
    if owner is not model and norm is not None and hasattr(norm, "normalized_shape") \
            and tuple(norm.normalized_shape) == (width,) and features != width:
        owner.norm = type(norm)(features, eps=norm.eps).to(norm.weight.device, norm.weight.dtype)
    for module_name, module in model.named_modules():
        if module is classifier and isinstance(module, nn.Linear):
            parent_name, _, attr = module_name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, _resized_linear(module, features))
    if hasattr(model, "num_features") and owner is model:
        model.num_features = features


def _family(model) -> str | None:
    kind = type(model).__name__
    if kind == "ResNetForImageClassification" and hasattr(model, "resnet"):
        return "hf_resnet"
    if kind == "ConvNextForImageClassification" and hasattr(model, "convnext"):
        return "hf_convnext"
    if hasattr(model, "head_pool") and isinstance(getattr(model, "classifier", None), nn.Linear):
        return "convnet"
    if hasattr(model, "get_classifier") and (
        hasattr(model, "global_pool") or hasattr(getattr(model, "head", None), "global_pool")
    ):
        return "timm"
    return None


_SWAPS = {"convnet": _swap_convnet, "hf_resnet": _swap_hf_resnet,
          "hf_convnext": _swap_hf_convnext, "timm": _swap_timm}


def set_global_pool(model: nn.Module, name, **kwargs) -> nn.Module:
    """Swap ``model``'s global pooling for ``GlobalPool(name, **kwargs)`` in place; returns it.

    The classifier (and a head norm that follows the pool) is resized to
    ``C * feat_mult()`` features and freshly initialised when its width changes; the new pool
    sits on the classifier's device and dtype. Families whose pool needs ``channels`` get the
    model's width. Raises ``TypeError`` for a
    model of another kind (listing the supported ones).
    """
    family = _family(model)
    if family is None:
        raise TypeError(
            f"set_global_pool does not know {type(model).__name__}; supported: poolkit ConvNet, "
            "transformers ResNetForImageClassification / ConvNextForImageClassification, timm "
            "models with global_pool and get_classifier()"
        )
    _SWAPS[family](model, name, dict(kwargs))
    return model


__all__ = ["GlobalPool", "set_global_pool"]
