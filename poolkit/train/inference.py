"""Use a trained checkpoint: rebuild its inputs, evaluate on labelled data, predict.

:class:`Predictor` reads a checkpoint folder (``model.safetensors`` + ``poolkit_config.json``)
and the metadata the trainer stored there — the text encoder (tokeniser + vocabulary, or a
transformer's saved tokenizer) or the image shape, and the label names — so that raw texts or
image files go in and labels come out.

Example:
    >>> predictor = Predictor("runs/mr")                          # doctest: +SKIP
    >>> predictor.predict_texts(["a gorgeous , witty film"])[0]["label"]  # doctest: +SKIP
    'positive'
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from poolkit.data.images import ImageData, read_image_file
from poolkit.data.text import TextData
from poolkit.data.tokenize import TextEncoder
from poolkit.train.checkpoint import load_checkpoint
from poolkit.train.distributed import resolve_device
from poolkit.train.trainer import TrainConfig, Trainer

__all__ = ["Predictor", "align_labels"]


def align_labels(data: TextData | ImageData, names: list[str]) -> TextData | ImageData:
    """Express ``data``'s labels in the checkpoint's label order ``names``.

    Data whose names are a subset of ``names`` is remapped; data labelled ``"0".."K-1"`` (a
    file with integer labels) is taken as already in the checkpoint's order.
    """
    if data.label_names == names:
        return data
    if set(data.label_names) <= set(names):
        remap = np.asarray([names.index(n) for n in data.label_names], dtype=np.int64)
    elif data.label_names == [str(k) for k in range(len(data.label_names))] and len(
        data.label_names
    ) <= len(names):
        remap = np.arange(len(data.label_names))
    else:
        where = f" of {data.source}" if data.source else ""
        raise ValueError(
            f"data labels {data.label_names}{where} do not match the checkpoint's labels {names}"
        )
    if isinstance(data, TextData):
        return TextData(data.texts, [int(remap[y]) for y in data.labels], list(names), data.source)
    return ImageData(data.images, remap[data.labels], list(names), data.source)


class Predictor:
    """A checkpoint ready for :meth:`evaluate`, :meth:`predict_texts` or :meth:`predict_images`."""

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto"):
        self.device = resolve_device(device)
        loaded = load_checkpoint(checkpoint, device=self.device)
        self.path = loaded.path
        self.model = loaded.model
        self.config = loaded.config
        self.model_type = loaded.model_type
        num_classes = self._num_classes()
        self.label_names = list(self.config.get("label_names") or
                                [str(k) for k in range(num_classes)])
        self.kind = self.config.get("kind") or ("image" if self.model_type == "convnet" else "text")
        self.encoder = None
        if self.kind == "text":
            self._setup_text()
        else:
            from poolkit.data.dataset import collate_images

            self.collate_fn = collate_images
            image = self.config.get("image") or {}
            model_config = self.model.config
            size = getattr(model_config, "size", None)
            self.channels = image.get("channels", getattr(model_config, "in_channels", 1))
            self.size = (image["height"], image["width"]) if "height" in image else size

    def _num_classes(self) -> int:
        return int(getattr(self.model.config, "num_classes", 0) or 0)

    def _setup_text(self) -> None:
        from poolkit.data.dataset import TextCollator

        if self.model_type == "transformer":
            from poolkit.models.transformer import transformer_collate, transformer_text_encoder

            # the tokenizer saved in the run folder (else base_model's)
            self.encoder = transformer_text_encoder(self.model.config, self.model.tokenizer)
            self.collate_fn = transformer_collate(self.model.config, encoder=self.encoder)
            return
        spec = self.config.get("text_encoder")
        if not spec or "vocab" not in spec:
            raise ValueError(f"checkpoint {self.path} has no text encoder in its config")
        self.encoder = TextEncoder.from_dict(spec)
        widths = getattr(self.model.config, "filter_widths", (1,))
        self.collate_fn = TextCollator(
            pad_id=self.encoder.pad_id, max_length=self.encoder.max_length, min_length=max(widths)
        )

    # -----------------------------------------------------------------------------------------

    def dataset(self, data: TextData | ImageData):
        """The torch data set of ``data`` for this model (labels aligned to the checkpoint)."""
        from poolkit.data.dataset import ImageDataset, TextDataset

        data = align_labels(data, self.label_names)
        if self.kind == "text":
            if not isinstance(data, TextData):
                raise ValueError(f"checkpoint {self.path} is a text model; got image data")
            encode = getattr(self.encoder, "encode_all", None)
            ids = encode(data.texts) if encode else [self.encoder(t) for t in data.texts]
            return TextDataset(ids, data.labels)
        if not isinstance(data, ImageData):
            raise ValueError(f"checkpoint {self.path} is an image model; got text data")
        if data.image_shape[0] != self.channels:
            raise ValueError(
                f"images have {data.image_shape[0]} channels, the model takes {self.channels}"
            )
        return ImageDataset.from_data(data)

    def _trainer(self) -> Trainer:
        return Trainer(self.model, TrainConfig(progress=False, device=str(self.device)),
                       collate_fn=self.collate_fn)

    def evaluate(self, data: TextData | ImageData, batch_size: int | None = None) -> dict:
        """Accuracy, macro-F1, confusion matrix and loss on labelled ``data``."""
        return self._trainer().evaluate(self.dataset(data), batch_size)

    def logits(self, data: TextData | ImageData, batch_size: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(logits (N, K), labels (N,))`` of labelled ``data`` in order (labels in the
        checkpoint's label order)."""
        return self._trainer().predict_logits(self.dataset(data), batch_size)

    def _predict(self, dataset, batch_size: int | None = None) -> np.ndarray:
        logits, _ = self._trainer().predict_logits(dataset, batch_size)
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def _rows(self, probabilities: np.ndarray) -> list[dict]:
        rows = []
        for p in probabilities:
            best = int(p.argmax())
            rows.append({
                "label": self.label_names[best],
                "label_id": best,
                "probabilities": {n: float(v) for n, v in zip(self.label_names, p, strict=True)},
            })
        return rows

    def predict_texts(self, texts: list[str], batch_size: int | None = None) -> list[dict]:
        """``[{"text", "label", "label_id", "probabilities": {name: p}}]`` for each text."""
        if self.kind != "text":
            raise ValueError(f"checkpoint {self.path} is an image model; give image files")
        data = TextData(list(texts), [0] * len(texts), list(self.label_names))
        rows = self._rows(self._predict(self.dataset(data), batch_size)) if texts else []
        return [{"text": t, **row} for t, row in zip(texts, rows, strict=True)]

    def predict_images(self, paths: list[str | os.PathLike], batch_size: int | None = None
                       ) -> list[dict]:
        """``[{"file", "label", "label_id", "probabilities"}]`` for each image file (PNG/JPEG
        via Pillow or matplotlib, ``.npy``), converted to the model's channels and size."""
        if self.kind != "image":
            raise ValueError(f"checkpoint {self.path} is a text model; give texts")
        if not paths:
            return []
        images = np.stack([read_image_file(p, self.channels, self.size) for p in paths])
        data = ImageData(images, np.zeros(len(paths), np.int64), list(self.label_names))
        rows = self._rows(self._predict(self.dataset(data), batch_size))
        return [{"file": str(Path(p)), **row} for p, row in zip(paths, rows, strict=True)]
