"""Model folders in Hugging Face's layout: ``model.safetensors`` + ``poolkit_config.json``.

A folder written by :func:`save_pretrained` (and by every ``poolkit train`` run) holds

- ``model.safetensors``: the model's ``state_dict`` (shared tensors stored once);
- ``poolkit_config.json``: ``{"format": "poolkit-checkpoint", "version": 2, "model_type":
  "textcnn", "model_config": {...}, ...metadata}``. poolkit's own file name, so that it never
  clashes with transformers' ``config.json`` (whose ``AutoConfig`` refuses a ``model_type`` it
  does not know, such as ``textcnn``);
- whatever the model adds through a ``save_extra_files(folder)`` method: a transformer
  classifier writes its tokenizer's files (``tokenizer.json``, ``tokenizer_config.json``...),
  which ``AutoTokenizer.from_pretrained(folder)`` reads.

Folders written before version 2 keep their poolkit config in ``config.json``; every reader
here still finds it there, and a new save into such a folder removes it.

Every model class registered with :func:`poolkit.models.register_model` has the methods too
(:class:`PretrainedMixin`): ``model.save_pretrained(folder)``,
``TextCNN.from_pretrained(folder)``.

Example:
    >>> import tempfile, torch
    >>> from poolkit.models import TextCNN, TextCNNConfig
    >>> model = TextCNN(TextCNNConfig(vocab_size=20, embed_dim=4, num_filters=2))
    >>> folder = model.save_pretrained(tempfile.mkdtemp())
    >>> sorted(p.name for p in folder.iterdir())
    ['model.safetensors', 'poolkit_config.json']
    >>> loaded = TextCNN.from_pretrained(folder)
    >>> torch.equal(loaded.classifier.weight, model.classifier.weight)
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from poolkit._io import atomic_write, atomic_write_json
from poolkit.errors import DataFormatError
from poolkit.models.registry import build_model, config_to_dict, model_type_of

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "LEGACY_CONFIG_FILE",
    "MODEL_FILE",
    "PretrainedMixin",
    "config_file",
    "from_pretrained",
    "is_model_folder",
    "load_weights",
    "read_config",
    "save_pretrained",
    "write_config",
]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "poolkit_config.json"
LEGACY_CONFIG_FILE = "config.json"  # poolkit folders written before version 2
FORMAT = "poolkit-checkpoint"
VERSION = 2


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside ``DistributedDataParallel`` and ``torch.compile`` wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _folder_of(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    if directory.is_file() and directory.name in (MODEL_FILE, CONFIG_FILE, LEGACY_CONFIG_FILE):
        return directory.parent
    return directory


def _is_legacy_config(path: Path) -> bool:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def config_file(directory: str | os.PathLike) -> Path:
    """The poolkit config of a model folder: ``poolkit_config.json``, else (a folder written
    before version 2) ``config.json``; the new name when neither is there."""
    folder = _folder_of(directory)
    if not (folder / CONFIG_FILE).is_file() and (folder / LEGACY_CONFIG_FILE).is_file():
        return folder / LEGACY_CONFIG_FILE
    return folder / CONFIG_FILE


def is_model_folder(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` is a poolkit model folder (a run folder or ``save_pretrained``)."""
    folder = Path(directory)
    if not folder.is_dir() or not (folder / MODEL_FILE).is_file():
        return False
    return (folder / CONFIG_FILE).is_file() or _is_legacy_config(folder / LEGACY_CONFIG_FILE)


def save_pretrained(
    directory: str | os.PathLike,
    model: torch.nn.Module,
    *,
    metadata: dict | None = None,
    model_type: str | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``poolkit_config.json`` into ``directory`` (created if
    needed), each atomically, then the model's extra files (its tokenizer).

    ``model`` must be registered (:func:`poolkit.models.register_model`) and keep its config
    dataclass as ``model.config``; ``metadata`` (JSON-ready) is merged into the config file.
    """
    from safetensors.torch import save_model

    directory = Path(directory)
    model = unwrap(model)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model_type": model_type or model_type_of(model),
        "model_config": config_to_dict(model.config),
        **(metadata or {}),
    }
    atomic_write(directory / MODEL_FILE, write_path=lambda temp: save_model(model, temp))
    write_config(directory, config)
    save_extra = getattr(model, "save_extra_files", None)
    if callable(save_extra):
        save_extra(directory)
    return directory


def write_config(directory: str | os.PathLike, config: dict) -> Path:
    """Write a model folder's ``poolkit_config.json`` atomically; a ``config.json`` that an
    older poolkit wrote there goes (transformers' ``AutoConfig`` would trip over it)."""
    directory = Path(directory)
    path = atomic_write_json(directory / CONFIG_FILE, config)
    legacy = directory / LEGACY_CONFIG_FILE
    if legacy.is_file() and _is_legacy_config(legacy):
        legacy.unlink()
    return path


def read_config(directory: str | os.PathLike) -> dict:
    """The checked poolkit config of a model folder (``poolkit_config.json`` or, for folders
    written before version 2, ``config.json``)."""
    folder = _folder_of(directory)
    path = config_file(folder)
    if not path.is_file() or not (folder / MODEL_FILE).is_file():
        raise FileNotFoundError(f"no checkpoint in {folder} (needs {MODEL_FILE} and "
                                f"{CONFIG_FILE})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, getattr(exc, "lineno", None), f"invalid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise DataFormatError(path, None, f"not a poolkit checkpoint config (format != {FORMAT!r})")
    for key in ("model_type", "model_config"):
        if key not in config:
            raise DataFormatError(path, None, f"missing key {key!r}")
    return config


def load_weights(model: torch.nn.Module, path: str | os.PathLike,
                 device: str | torch.device = "cpu") -> None:
    """Load a safetensors file into ``model`` (strict); errors name the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        load_model(model, path, strict=True, device=str(device))
    except SafetensorError as exc:
        raise DataFormatError(path, None, f"not a readable safetensors file ({exc})") from None
    except RuntimeError as exc:  # missing/unexpected keys or shapes: not this model's weights
        reason = " ".join(str(exc).split())
        raise DataFormatError(path, None, f"weights do not fit the model: {reason}") from None


def from_pretrained(directory: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[torch.nn.Module, dict]:
    """``(model, config)``: the model of a folder rebuilt (in eval mode) and its whole config."""
    folder = _folder_of(directory)
    config = read_config(folder)
    model = build_model(config["model_type"], config["model_config"])
    load_weights(model, folder / MODEL_FILE, device)
    loaded = getattr(model, "loaded_from_folder", None)
    if callable(loaded):
        loaded(folder)
    model.to(device)
    model.eval()
    return model, config


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for a registered poolkit model class."""

    def save_pretrained(self, directory: str | os.PathLike, metadata: dict | None = None
                        ) -> Path:
        """Write this model to ``directory`` (:func:`save_pretrained`); returns the folder."""
        return save_pretrained(directory, self, metadata=metadata)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu"
                        ) -> Any:
        """The model saved in ``directory`` (in eval mode); it must be of this class."""
        model, config = from_pretrained(directory, device)
        if not isinstance(model, cls):
            raise ValueError(f"{_folder_of(directory)} holds a {config['model_type']!r} model, "
                             f"not a {cls.__name__}")
        return model
