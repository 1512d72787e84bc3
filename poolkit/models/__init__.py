"""Models: classifiers whose pooling is chosen by name, and the registry that rebuilds them.

- :class:`TextCNN` (Kim 2014) — :mod:`poolkit.models.textcnn`
- :class:`ConvNet` (small VGG-style image CNN) — :mod:`poolkit.models.convnet`
- ``reduce_tokens(model, schedule)``: token merging / pooling / pruning between the layers of a
  BERT encoder — :mod:`poolkit.models.token_patch`
- :class:`MetaFormer` (PoolFormer-style blocks, token mixer by name: a pooling, self-attention
  or identity) — :mod:`poolkit.models.metaformer`
- the transformer pooling-head classifier — :mod:`poolkit.models.transformer` (imported on
  demand: ``build_model("transformer", ...)``)
- :class:`Embedder` (sentence embeddings from a pretrained transformer and a pooling mode) —
  :mod:`poolkit.models.embedder` (imported on first use of ``poolkit.models.Embedder``)
- ``save_pretrained`` / ``from_pretrained``: model folders in Hugging Face's layout
  (``model.safetensors`` + ``poolkit_config.json``) — :mod:`poolkit.models.pretrained`
- ``export_adapter`` / ``load_pooling_head``: a LoRA run as a peft adapter folder plus its
  pooling head — :mod:`poolkit.models.adapter`

Every classifier has a ``@dataclass`` config (``model.config``), ``forward(**inputs) -> logits
(B, num_classes)`` taking the keys of a batch from :mod:`poolkit.data` (``input_ids`` or
``images``), and is registered by type name so that :func:`build_model` rebuilds it from a
model folder's ``poolkit_config.json`` (``model.save_pretrained(folder)``,
``TextCNN.from_pretrained(folder)``).
"""

from __future__ import annotations

from poolkit.models.convnet import ConvNet, ConvNetConfig
from poolkit.models.metaformer import MetaFormer, MetaFormerConfig
from poolkit.models.pretrained import from_pretrained, save_pretrained
from poolkit.models.registry import (
    build_model,
    config_from_dict,
    config_to_dict,
    list_models,
    model_type_of,
    register_model,
)
from poolkit.models.textcnn import TextCNN, TextCNNConfig
from poolkit.models.token_patch import parse_schedule, reduce_tokens

__all__ = [
    "TextCNN",
    "TextCNNConfig",
    "ConvNet",
    "ConvNetConfig",
    "MetaFormer",
    "MetaFormerConfig",
    "build_model",
    "list_models",
    "model_type_of",
    "register_model",
    "config_to_dict",
    "config_from_dict",
    "Embedder",
    "parse_schedule",
    "reduce_tokens",
    "save_pretrained",
    "from_pretrained",
    "export_adapter",
    "load_pooling_head",
    "PoolingHead",
]

# imported on first use (the embedder pulls in the transformer module)
_LAZY = {"Embedder": "poolkit.models.embedder", "export_adapter": "poolkit.models.adapter",
         "load_pooling_head": "poolkit.models.adapter", "PoolingHead": "poolkit.models.adapter"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'poolkit.models' has no attribute {name!r}")
