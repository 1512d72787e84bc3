"""Checkpoints without pickle: ``model.safetensors`` + ``poolkit_config.json``, written atomically.

A checkpoint folder is a model folder of :mod:`poolkit.models.pretrained` (Hugging Face's
layout):

- ``model.safetensors``: the model's ``state_dict`` (shared tensors stored once);
- ``poolkit_config.json``: ``{"format": "poolkit-checkpoint", "model_type": "textcnn",
  "model_config": {...}, ...metadata}``; the metadata of a trained classifier carries
  ``label_names``, the text encoder (``"text_encoder"``: tokeniser, vocabulary, max length) or
  the image shape, and the data set it was trained on. :func:`load_checkpoint` rebuilds the
  model through :func:`poolkit.models.registry.build_model`. Folders written before version 2
  keep this file as ``config.json``; they load as before;
- a transformer classifier's tokenizer files.

Trainer state for resuming (optimizer moments, RNG states, counters) is a nested structure of
tensors, numbers, strings, lists, tuples and dicts; :func:`save_state` writes its tensors to a
safetensors file and the rest to JSON, so that :func:`load_state` rebuilds it exactly (int dict
keys and tuples included). ``torch.save``/``torch.load`` (pickle) are never used.

Every file is written with :func:`poolkit._io.atomic_write` (a temporary name in the same folder,
moved into place with ``os.replace``), so a crash leaves either the old or the new file, never
half of one; ``atomic_write_text``/``atomic_write_json`` are re-exported from there.

Example:
    >>> import tempfile, torch
    >>> from poolkit.models import TextCNN, TextCNNConfig
    >>> model = TextCNN(TextCNNConfig(vocab_size=20, embed_dim=4, num_filters=2))
    >>> folder = save_checkpoint(tempfile.mkdtemp(), model, metadata={"label_names": ["-", "+"]})
    >>> loaded = load_checkpoint(folder)
    >>> loaded.config["label_names"], torch.equal(loaded.model.classifier.weight,
    ...                                          model.classifier.weight)
    (['-', '+'], True)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from poolkit._io import atomic_write, atomic_write_json, atomic_write_text
from poolkit.errors import DataFormatError
from poolkit.models import pretrained
from poolkit.models.pretrained import CONFIG_FILE, MODEL_FILE, load_weights

__all__ = [
    "MODEL_FILE",
    "CONFIG_FILE",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_config",
    "write_checkpoint_config",
    "save_state",
    "load_state",
    "load_tensors",
    "load_weights",
    "atomic_write_text",
    "atomic_write_json",
]

FORMAT = pretrained.FORMAT


# ---------------------------------------------------------------------------------------------
# Model checkpoints: the model folders of poolkit.models.pretrained


@dataclass
class Checkpoint:
    """A loaded checkpoint, as :func:`load_checkpoint` returns it.

    Attributes:
        model: the rebuilt model with its weights loaded.
        config: the whole checkpoint config (``poolkit_config.json``: format, model_type,
            model_config, label_names, text encoder, data, train settings...).
        path: the checkpoint folder.
    """

    model: torch.nn.Module
    config: dict  # the whole poolkit_config.json
    path: Path

    @property
    def model_type(self) -> str:
        return self.config["model_type"]

    @property
    def label_names(self) -> list[str] | None:
        return self.config.get("label_names")


def save_checkpoint(
    directory: str | os.PathLike,
    model: torch.nn.Module,
    *,
    metadata: dict | None = None,
    model_type: str | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``poolkit_config.json`` into ``directory`` (created if
    needed): :func:`poolkit.models.pretrained.save_pretrained`.

    ``model`` must be registered (:func:`poolkit.models.register_model`) and keep its config
    dataclass as ``model.config``; ``metadata`` (JSON-ready) is merged into the config file.
    """
    return pretrained.save_pretrained(directory, model, metadata=metadata, model_type=model_type)


def read_checkpoint_config(directory: str | os.PathLike) -> dict:
    """The checked config of a checkpoint folder (``poolkit_config.json``, or ``config.json``
    in a folder written before poolkit's checkpoint version 2)."""
    return pretrained.read_config(directory)


def write_checkpoint_config(directory: str | os.PathLike, config: dict) -> Path:
    """Rewrite the config of a checkpoint folder (``poolkit_config.json``, atomically),
    removing the ``config.json`` of a folder written before version 2."""
    return pretrained.write_config(directory, config)


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu"
                 ) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a corrupt file raises :class:`DataFormatError`
    naming it (safetensors alone says only "Error while deserializing header")."""
    from safetensors import SafetensorError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(path, device=str(device))
    except SafetensorError as exc:
        raise DataFormatError(path, None, f"not a readable safetensors file ({exc})") from None


def load_checkpoint(directory: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> Checkpoint:
    """Rebuild the model of a checkpoint folder (in eval mode) with its config."""
    directory = Path(directory)
    if directory.is_file():
        directory = directory.parent
    model, config = pretrained.from_pretrained(directory, device)
    return Checkpoint(model, config, directory)


# ---------------------------------------------------------------------------------------------
# Nested state (optimizer, RNG, counters): tensors -> safetensors, the rest -> JSON


def _flatten(value: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    if isinstance(value, torch.Tensor):
        key = prefix or "tensor"
        tensors[key] = value.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and "__tensor__" not in value:
            return {k: _flatten(v, tensors, f"{prefix}.{k}" if prefix else k)
                    for k, v in value.items()}
        return {"__items__": [[_key(k), _flatten(v, tensors, f"{prefix}.{k}")]
                              for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist"):  # NumPy arrays / scalars
        return {"__numpy__": value.tolist(), "dtype": str(value.dtype)}
    raise TypeError(f"cannot store {type(value).__name__} at {prefix!r} in trainer state")


def _key(key: Any) -> Any:
    if isinstance(key, (bool, int, float, str)) or key is None:
        return key
    raise TypeError(f"cannot store a dict key of type {type(key).__name__}")


def _unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__items__" in value:
            return {k: _unflatten(v, tensors) for k, v in value["__items__"]}
        if "__tuple__" in value:
            return tuple(_unflatten(v, tensors) for v in value["__tuple__"])
        if "__numpy__" in value:
            import numpy as np

            return np.asarray(value["__numpy__"], dtype=value["dtype"])
        return {k: _unflatten(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_unflatten(v, tensors) for v in value]
    return value


def save_state(path_stem: str | os.PathLike, state: Any) -> None:
    """Write ``state`` as ``<stem>.safetensors`` (tensors) + ``<stem>.json`` (everything else)."""
    stem = Path(path_stem)
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(state, tensors, "")
    atomic_write(stem.with_suffix(".safetensors"), write_path=lambda temp: save_file(tensors, temp))
    # Python's own JSON (NaN and Infinity kept): the state must come back exactly as it was.
    atomic_write_text(stem.with_suffix(".json"), json.dumps(structure, indent=2) + "\n")


def load_state(path_stem: str | os.PathLike) -> Any:
    """Read what :func:`save_state` wrote (tensors on the CPU)."""
    stem = Path(path_stem)
    tensors = load_tensors(stem.with_suffix(".safetensors"))
    path = stem.with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"trainer state file not found: {path}")
    try:
        structure = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, None, f"not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    try:
        return _unflatten(structure, tensors)
    except KeyError as exc:
        raise DataFormatError(path, None, f"names tensor {exc} that {stem.name}.safetensors "
                                          "lacks (files from two different saves?)") from None
