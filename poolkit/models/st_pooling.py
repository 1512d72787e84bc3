"""poolkit pooling inside sentence-transformers: a module that ``SentenceTransformer`` runs,
saves and loads, and the writer of whole sentence-transformers model folders.

``SentenceTransformerPool(SequencePool(...))`` is a sentence-transformers module (the "old
style" every version since 2.x loads: ``forward(features) -> features`` with
``"sentence_embedding"``, ``save(path)``, ``load(path)``), so any poolkit mode, including
``min``, ``kmax`` and the trained ``attention``/``latent_attention`` heads, can sit in
``SentenceTransformer(modules=[Transformer(...), SentenceTransformerPool(pool)])``.
:func:`save_sentence_transformer` writes a folder ``SentenceTransformer(path)`` loads: the
encoder and tokenizer, ``modules.json``, ``sentence_bert_config.json`` and the pooling, as
sentence-transformers' own ``Pooling`` where it can express the mode (then the folder loads
without poolkit), else as this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from poolkit._io import atomic_write_json
from poolkit.nn.sequence import SequencePool, sentence_transformers_config

__all__ = ["SentenceTransformerPool", "save_sentence_transformer"]

_CONFIG = "config.json"
_WEIGHTS = "model.safetensors"


class SentenceTransformerPool(nn.Module):
    """A :class:`~poolkit.nn.SequencePool` as a sentence-transformers module.

    ``forward(features)`` pools ``features["token_embeddings"]`` ``(B, T, H)`` over
    ``features["attention_mask"]`` into ``features["sentence_embedding"]``
    ``(B, H * feat_mult)``; with ``include_prompt=False`` the first ``prompt_length`` real tokens
    are left out, as sentence-transformers' ``Pooling`` does.
    """

    def __init__(self, pool: SequencePool, include_prompt: bool = True):
        super().__init__()
        if not isinstance(pool, SequencePool):
            raise TypeError(f"pool must be a poolkit SequencePool, got {type(pool).__name__}")
        if pool.hidden_size is None:
            raise ValueError("the SequencePool needs hidden_size (the width of the token states)")
        self.pool = pool
        self.include_prompt = bool(include_prompt)

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        from poolkit.nn.sequence import prompt_exclude_mask

        states: Tensor = features["token_embeddings"]
        mask = features["attention_mask"]
        exclude = None
        if not self.include_prompt and "prompt_length" in features:
            lengths = features["prompt_length"]
            lengths = lengths if torch.is_tensor(lengths) else torch.tensor(lengths)
            exclude = prompt_exclude_mask(mask, lengths.expand(mask.shape[0]))
        features["sentence_embedding"] = self.pool(states, mask, exclude)
        return features

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.pool.output_dim)

    get_embedding_dimension = get_sentence_embedding_dimension

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.pool.get_config(), "include_prompt": self.include_prompt}

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        """``config.json`` (the mode and its options) and, for learned modes, the weights."""
        folder = Path(output_path)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / _CONFIG, self.get_config_dict())
        state = {k: v.detach().cpu().contiguous() for k, v in self.pool.state_dict().items()}
        if state:
            from safetensors.torch import save_file

            save_file(state, str(folder / _WEIGHTS))

    @staticmethod
    def load(input_path: str) -> SentenceTransformerPool:
        folder = Path(input_path)
        config = json.loads((folder / _CONFIG).read_text(encoding="utf-8"))
        include_prompt = bool(config.pop("include_prompt", True))
        pool = SequencePool.from_config(config)
        if (folder / _WEIGHTS).is_file():
            from safetensors.torch import load_file

            pool.load_state_dict(load_file(str(folder / _WEIGHTS)))
        return SentenceTransformerPool(pool.eval(), include_prompt)


def save_sentence_transformer(
    folder: str | os.PathLike,
    tokenizer: Any,
    backbone: nn.Module,
    pool: SequencePool,
    *,
    normalize: bool,
    max_length: int,
) -> Path:
    """Write a sentence-transformers model folder: ``SentenceTransformer(folder)`` loads it and
    encodes like the embedder it came from (Transformer -> pooling -> Normalize)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    atomic_write_json(folder / "sentence_bert_config.json",
                      {"max_seq_length": int(max_length), "do_lower_case": False})
    native = sentence_transformers_config(pool)
    if native is not None:  # sentence-transformers' own Pooling: loads without poolkit
        atomic_write_json(folder / "1_Pooling" / _CONFIG, native)
        pooling_type = "sentence_transformers.models.Pooling"
    else:
        SentenceTransformerPool(pool).save(str(folder / "1_Pooling"))
        pooling_type = f"{SentenceTransformerPool.__module__}.SentenceTransformerPool"
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": pooling_type},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir(exist_ok=True)
    atomic_write_json(folder / "modules.json", modules)
    return folder
