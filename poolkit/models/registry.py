"""Model registry: a type name -> (model class, config dataclass), so that a checkpoint
(``model.safetensors`` + ``poolkit_config.json``) can be rebuilt with :func:`build_model`.

A model registers itself at the bottom of its module::

    register_model("textcnn", TextCNN, TextCNNConfig)

Each model class takes its config as the only constructor argument and keeps it as
``model.config``. Modules with heavy imports (the transformer classifier) are registered lazily:
:data:`LAZY_MODULES` names the module to import the first time the type is asked for.

Example:
    >>> model = build_model("textcnn", {"vocab_size": 100, "num_classes": 2, "embed_dim": 8})
    >>> model_type_of(model), config_to_dict(model.config)["embed_dim"]
    ('textcnn', 8)
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from poolkit._io import to_jsonable

__all__ = [
    "register_model",
    "build_model",
    "list_models",
    "model_type_of",
    "config_to_dict",
    "config_from_dict",
    "get_model_spec",
]


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the model registry (:func:`register_model`, :func:`get_model_spec`).

    Attributes:
        name: the model's type name, a checkpoint's ``model_type`` and ``poolkit train MODEL``
            (``"textcnn"``, ``"convnet"``...).
        model_cls: the model class; it takes the config as its only argument and keeps it as
            ``model.config``.
        config_cls: the config dataclass (JSON-ready fields, rebuilt by
            :func:`config_from_dict`).
        builder: a function ``config -> model`` to call instead of ``model_cls(config)``
            (``None``, the default: the class itself).
    """

    name: str
    model_cls: type
    config_cls: type
    builder: Callable[[Any], Any] | None = None  # config -> model (default: model_cls(config))


_REGISTRY: dict[str, ModelSpec] = {}
# type name -> module that registers it on import (kept out of `import poolkit.models`)
LAZY_MODULES: dict[str, str] = {
    "textcnn": "poolkit.models.textcnn",
    "convnet": "poolkit.models.convnet",
    "metaformer": "poolkit.models.metaformer",
    "transformer": "poolkit.models.transformer",
    "segnet": "poolkit.models.segnet",
    "roidet": "poolkit.models.roidet",
}


def register_model(
    name: str,
    model_cls: type,
    config_cls: type,
    *,
    builder: Callable[[Any], Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Register ``model_cls`` (built from a ``config_cls`` dataclass) under ``name``."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config_cls must be a dataclass, got {config_cls!r}")
    existing = _REGISTRY.get(name)
    if existing is not None and not overwrite and existing.model_cls is not model_cls:
        raise ValueError(f"model type {name!r} is already registered to {existing.model_cls}")
    _REGISTRY[name] = ModelSpec(name, model_cls, config_cls, builder)


def list_models() -> list[str]:
    """Registered and lazily registrable type names."""
    return sorted(set(_REGISTRY) | set(LAZY_MODULES))


def get_model_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY and name in LAZY_MODULES:
        try:
            importlib.import_module(LAZY_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name == LAZY_MODULES[name]:
                raise ValueError(f"model type {name!r} is not available yet ({exc})") from None
            raise
    if name not in _REGISTRY:
        raise ValueError(f"model type ({name!r}) must be one of {list_models()}")
    return _REGISTRY[name]


def build_model(name: str, config: Any):
    """Build the model ``name`` from a config dataclass or a dict of its fields."""
    spec = get_model_spec(name)
    if isinstance(config, dict):
        config = config_from_dict(spec.config_cls, config)
    elif not isinstance(config, spec.config_cls):
        raise TypeError(
            f"config for {name!r} must be a dict or {spec.config_cls.__name__}, "
            f"got {type(config).__name__}"
        )
    return spec.builder(config) if spec.builder is not None else spec.model_cls(config)


def model_type_of(model) -> str:
    """The registered type name of ``model`` (unwrapping DDP / ``torch.compile``)."""
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    for spec in _REGISTRY.values():
        if type(model) is spec.model_cls:
            return spec.name
    for spec in _REGISTRY.values():
        if isinstance(model, spec.model_cls):
            return spec.name
    raise ValueError(
        f"model of type {type(model).__name__} is not registered; use register_model(...)"
    )


def config_to_dict(config: Any) -> dict:
    """A config dataclass as a JSON-ready dict (tuples become lists)."""
    return {f.name: to_jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _coerce(annotation: Any, value: Any) -> Any:
    """Turn JSON lists back into tuples where the field is annotated as a tuple."""
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                coerced = _coerce(arg, value)
                if coerced is not value:
                    return coerced
        return value
    if (origin is tuple or annotation is tuple) and isinstance(value, list):
        return tuple(value)
    return value


def config_from_dict(config_cls: type, payload: dict) -> Any:
    """Build ``config_cls`` from a dict, rejecting unknown keys (naming the valid ones)."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    unknown = sorted(set(payload) - fields)
    if unknown:
        raise ValueError(
            f"unknown {config_cls.__name__} field(s) {unknown}; valid: {sorted(fields)}"
        )
    return config_cls(**{k: _coerce(hints.get(k), v) for k, v in payload.items()})
