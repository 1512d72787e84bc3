"""A LoRA run as a peft adapter folder plus its pooling head.

:func:`export_adapter` turns a transformer classifier trained with ``finetune="lora"`` (a
``poolkit train transformer --finetune lora`` run folder, or the model itself) into a folder
that the Hugging Face tools read without poolkit's classifier:

- ``adapter_config.json`` + ``adapter_model.safetensors``: the LoRA adapters, as peft writes
  them; ``PeftModel.from_pretrained(AutoModel.from_pretrained(base), folder)`` is the trained
  backbone (outputs equal to the run's to float tolerance, tested);
- ``pooling_head.safetensors`` + ``pooling_head.json``: the trained pooling (any
  :class:`~poolkit.nn.SequencePool` mode, the learned ``attention`` heads included) and the
  linear classifier; :func:`load_pooling_head` rebuilds them as a :class:`PoolingHead`;
- the tokenizer's files (``AutoTokenizer.from_pretrained(folder)``).

Example::

    export_adapter("runs/lora-sst2", "adapter")           # or: poolkit export-adapter RUN OUT
    base = AutoModel.from_pretrained(base_model_dir)
    backbone = PeftModel.from_pretrained(base, "adapter")
    head = load_pooling_head("adapter")
    batch = AutoTokenizer.from_pretrained("adapter")(["a joy"], return_tensors="pt")
    states = backbone(**batch).last_hidden_state              # (B, T, H)
    logits = head(states, batch["attention_mask"])            # (B, num_classes)
    embeddings = head.embed(states, batch["attention_mask"])  # (B, H * feat_mult)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from poolkit._io import atomic_write, atomic_write_json
from poolkit.errors import DataFormatError
from poolkit.nn.sequence import SequencePool

__all__ = ["HEAD_CONFIG_FILE", "HEAD_FILE", "PoolingHead", "export_adapter", "load_pooling_head"]

HEAD_FILE = "pooling_head.safetensors"
HEAD_CONFIG_FILE = "pooling_head.json"
HEAD_FORMAT = "poolkit-pooling-head"


class PoolingHead(nn.Module):
    """What a transformer classifier puts on its backbone: a ``SequencePool`` and a linear
    classifier (dropout is off at inference, so it is left out).

    Shape: ``hidden_states (B, T, H)``, ``attention_mask (B, T)`` -> ``embed``:
    ``(B, H * feat_mult)``, ``forward``: ``(B, num_classes)`` logits.
    """

    def __init__(self, pool: SequencePool, classifier: nn.Linear,
                 label_names: list[str] | None = None):
        super().__init__()
        self.pool = pool
        self.classifier = classifier
        self.label_names = label_names

    def embed(self, hidden_states: Tensor, attention_mask: Tensor) -> Tensor:
        return self.pool(hidden_states, attention_mask)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor) -> Tensor:
        return self.classifier(self.embed(hidden_states, attention_mask))


def _lora_classifier(run):
    """``(classifier, label_names)`` of a LoRA run folder or classifier, checked."""
    from poolkit.models.pretrained import from_pretrained
    from poolkit.models.transformer import TransformerClassifier

    if isinstance(run, TransformerClassifier):
        model, label_names = run, None
    else:
        model, config = from_pretrained(run)
        if config["model_type"] != "transformer":
            raise ValueError(f"{run} holds a {config['model_type']!r} model; a peft adapter "
                             "comes from a transformer run trained with --finetune lora")
        label_names = config.get("label_names")
    if model.config.finetune != "lora":
        raise ValueError(f"the run was trained with finetune={model.config.finetune!r}; only a "
                         "'lora' run has a peft adapter to export (save_pretrained writes the "
                         "others)")
    if model.config.reduce != "none":
        raise ValueError(f"the run reduces tokens inside the encoder (reduce="
                         f"{model.config.reduce!r}), which a plain peft backbone does not do")
    return model, label_names


def export_adapter(run: str | os.PathLike | nn.Module, out: str | os.PathLike) -> Path:
    """Write the peft adapter, the pooling head and the tokenizer of a LoRA run into ``out``
    (a new or empty folder, made complete in a temporary folder and renamed into place).

    ``run``: a ``poolkit train transformer --finetune lora`` run folder, a folder of a LoRA
    classifier's ``save_pretrained``, or a :class:`~poolkit.models.transformer.
    TransformerClassifier` with ``finetune="lora"``. Returns ``out``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not an empty folder")
    model, label_names = _lora_classifier(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.backbone.save_pretrained(staging)  # adapter_config.json, adapter_model.safetensors
        model.save_extra_files(staging)  # the tokenizer
        _save_head(staging, model, label_names)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _save_head(folder: Path, model, label_names: list[str] | None) -> None:
    from safetensors.torch import save_file

    state = {f"pool.{k}": v for k, v in model.pool.state_dict().items()}
    state |= {f"classifier.{k}": v for k, v in model.classifier.state_dict().items()}
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(folder / HEAD_FILE, write_path=lambda temp: save_file(state, temp))
    config = model.config
    atomic_write_json(folder / HEAD_CONFIG_FILE, {
        "format": HEAD_FORMAT,
        "base_model": config.base_model,
        "gguf_file": config.gguf_file,
        "pool": model.pool.get_config(),
        "num_classes": config.num_classes,
        "label_names": label_names,
        "max_length": config.max_length,
        "padding_side": config.padding_side,
        "append_eos": config.append_eos,
    })


def load_pooling_head(folder: str | os.PathLike, device: str | torch.device = "cpu"
                      ) -> PoolingHead:
    """The :class:`PoolingHead` of a folder written by :func:`export_adapter` (eval mode)."""
    from poolkit.models.pretrained import load_weights

    path = Path(folder) / HEAD_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no pooling head in {folder} (needs {HEAD_CONFIG_FILE} and "
                                f"{HEAD_FILE}, written by export_adapter)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, None, f"invalid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != HEAD_FORMAT:
        raise DataFormatError(path, None, f"not a pooling head config (format != "
                                          f"{HEAD_FORMAT!r})")
    pool = SequencePool.from_config(config["pool"])
    head = PoolingHead(pool, nn.Linear(pool.output_dim, config["num_classes"]),
                       config.get("label_names"))
    load_weights(head, Path(folder) / HEAD_FILE, device)
    return head.to(device).eval()
