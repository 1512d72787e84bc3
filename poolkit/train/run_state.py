"""A training run's state on disk: the loop's counters, epoch checkpoints, resume, the log.

:class:`LoopState` is everything the training loop carries from one epoch to the next (and
what a resumed run must get back). With ``out_dir`` set, the end of each epoch writes

- ``out_dir/checkpoints/epoch-NNNN/``: the model, the optimizer moments (and EMA / fp16 scaler),
  the :class:`LoopState`, the RNG states and the train config, made complete in a temporary
  folder and renamed into place; the newest ``save_total_limit`` are kept;
- ``out_dir/log.jsonl``: one JSON line per epoch and one at the end.

:func:`load_last_checkpoint` restores all of it from the newest complete checkpoint, after
:func:`resume_differences` has checked that the settings defining the model, its data and its
training match the checkpoint's. :func:`check_run_folder` keeps a new run out of a folder that
holds another one. The functions take the :class:`~poolkit.train.trainer.Trainer` as their
first argument and read its ``config``, ``model``, ``optimizer``, ``average``, ``scaler``,
``metadata``, ``dist`` and ``device``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poolkit._io import dumps
from poolkit.errors import PoolkitError
from poolkit.train import checkpoint as ckpt

__all__ = ["LoopState", "RunFolderError", "check_run_folder", "checkpoint_metadata",
           "save_epoch_checkpoint", "load_last_checkpoint", "resume_differences",
           "best_weights_at_start", "write_log", "RESUME_KEYS", "RESUME_METADATA", "STATE_STEM",
           "BEST_FILE", "LOG_FILE", "RESULT_FILE"]

STATE_STEM = "trainer_state"
BEST_FILE = "best.safetensors"  # inside a checkpoint: the best model up to that epoch
LOG_FILE = "log.jsonl"
RESULT_FILE = "result.json"

#: Train settings a resumed run must share with its checkpoint (others, like ``epochs`` or
#: ``patience``, may change: a run can be extended).
RESUME_KEYS = ("batch_size", "lr", "optimizer", "weight_decay", "schedule", "warmup", "monitor",
               "grad_clip", "seed", "group_by_length", "layer_lr_decay", "ema", "grad_accum",
               "precision")
#: ... and the parts of the checkpoint config (``poolkit_config.json``) that describe the model
#: and its data.
RESUME_METADATA = ("model_type", "model_config", "label_names", "data", "text_encoder", "image")
#: Values of train settings in checkpoints written before the setting existed.
_RESUME_DEFAULTS = {"layer_lr_decay": 1.0, "ema": None, "grad_accum": 1, "precision": "fp32"}


class RunFolderError(PoolkitError, RuntimeError):
    """``out_dir`` holds another run: refused without ``overwrite``, or a resume whose settings
    differ from the checkpoint's without ``force_resume``."""


@dataclass
class LoopState:
    """The training loop's state between epochs (saved as ``"trainer"`` in each checkpoint).

    Attributes:
        epoch: epochs completed.
        step: optimizer steps taken (skipped non-finite batches included).
        best_score: the best dev ``monitor`` value so far (None before the first dev score).
        best_epoch: 1-based epoch of the best model (0: none yet).
        best_metrics: dev accuracy, macro-F1 and loss of ``best_epoch`` ({} without dev data).
        bad_epochs: epochs since the last better dev score (for ``patience``).
        stopped_early: ``patience`` ran out.
        train_time_s: wall time of all epochs, across resumes.
        nonfinite_skipped: batches skipped for a NaN/inf loss over the whole run.
        history: one record per epoch (train loss and accuracy, lr, dev metrics, time).
    """

    epoch: int = 0
    step: int = 0
    best_score: float | None = None
    best_epoch: int = 0
    best_metrics: dict = field(default_factory=dict)
    bad_epochs: int = 0
    stopped_early: bool = False
    train_time_s: float = 0.0
    nonfinite_skipped: int = 0
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> LoopState:
        """The state of a checkpoint (keys it lacks, from older versions, keep their default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})


def check_run_folder(config: Any) -> None:
    """Refuse to start a new run (no ``resume``) in an ``out_dir`` that holds a trained model or
    checkpoints, unless ``config.overwrite``."""
    if config.out_dir is None or config.resume or config.overwrite:
        return
    out_dir = Path(config.out_dir)
    found = [name for name in (ckpt.MODEL_FILE, "cv_result.json") if (out_dir / name).is_file()]
    found += sorted(str(p.relative_to(out_dir)) for pattern in ("checkpoints/epoch-*", "fold-*")
                    for p in out_dir.glob(pattern))[:3]
    if found:
        raise RunFolderError(
            f"{out_dir} already holds a run ({', '.join(found)}); pass --resume to continue it, "
            "--overwrite to replace it, or another --out"
        )


def checkpoint_metadata(trainer: Any, state: LoopState) -> dict:
    """The trainer's metadata plus ``"train"``: its config and the best epoch's dev metrics."""
    return {
        **trainer.metadata,
        "train": {
            "config": trainer.config.to_dict(),
            "best_epoch": state.best_epoch,
            "best_metrics": {k: state.best_metrics[k] for k in
                             ("accuracy", "macro_f1", "loss") if k in state.best_metrics},
        },
    }


def save_epoch_checkpoint(trainer: Any, out_dir: Path, state: LoopState) -> None:
    """Write ``checkpoints/epoch-NNNN`` complete or not at all; keep the newest
    ``save_total_limit``."""
    root = out_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch-{state.epoch:04d}"
    temp = root / f".epoch-{state.epoch:04d}.tmp{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    ckpt.save_checkpoint(temp, trainer.model, metadata=checkpoint_metadata(trainer, state))
    rng = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002 -- the global one set_seed seeds
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    ckpt.save_state(temp / STATE_STEM, {
        "optimizer": trainer.optimizer.state_dict(),
        **({"ema": trainer.average.state_dict()} if trainer.average is not None else {}),
        **({"scaler": trainer.scaler.state_dict()} if trainer.scaler is not None else {}),
        "trainer": state.to_dict(),
        "rng": rng,
        "train_config": trainer.config.to_dict(),
    })
    best = out_dir / ckpt.MODEL_FILE
    if state.best_epoch and best.is_file():
        try:  # a hard link costs no space; out_dir's file is replaced, never rewritten
            os.link(best, temp / BEST_FILE)
        except OSError:
            shutil.copyfile(best, temp / BEST_FILE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temp, final)  # the folder appears complete or not at all
    # the newest save_total_limit of this run's epochs; a later epoch of an older run that
    # this one overwrites goes now, at this run's first save
    ours = sorted(p for p in root.glob("epoch-*") if p.is_dir() and p.name <= final.name)
    kept = ours[-trainer.config.save_total_limit:]
    for old in root.iterdir():
        if old not in kept and old.name.startswith(("epoch-", ".epoch-")):
            shutil.rmtree(old, ignore_errors=True)


def load_last_checkpoint(trainer: Any, out_dir: Path, state: LoopState) -> LoopState:
    """Restore the model, optimizer, EMA, scaler and RNG states from the newest checkpoint and
    return its loop state (``state`` itself when there is none)."""
    root = out_dir / "checkpoints"
    found = sorted(p for p in root.glob("epoch-*") if p.is_dir()) if root.is_dir() else []
    if not found:
        if trainer.dist.is_main and trainer.config.progress:
            print(f"poolkit: no checkpoint in {root}; starting from scratch", file=sys.stderr)
        return state
    last = found[-1]
    try:
        saved = ckpt.load_state(last / STATE_STEM)
    except (OSError, ValueError, KeyError) as exc:  # JSON, safetensors header, missing key
        raise RunFolderError(f"cannot resume from {last}: its trainer state is unreadable "
                             f"({type(exc).__name__}: {exc})") from exc
    differences = resume_differences(trainer, saved["train_config"], last)
    if differences and not trainer.config.force_resume:
        raise RunFolderError(
            f"cannot resume {last}: this run differs from it in {'; '.join(differences)} "
            "(--force-resume to continue anyway, --overwrite to start again)"
        )
    ckpt.load_weights(trainer.model, last / ckpt.MODEL_FILE, trainer.device)
    trainer.optimizer.load_state_dict(_to_optimizer_device(saved["optimizer"], trainer.device))
    if trainer.average is not None:
        trainer.average.load_state_dict(saved["ema"])
    if trainer.scaler is not None and "scaler" in saved:
        trainer.scaler.load_state_dict(saved["scaler"])
    _restore_rng(saved["rng"])
    restored = LoopState.from_dict({**state.to_dict(), **saved["trainer"]})
    if trainer.dist.is_main and (last / BEST_FILE).is_file():
        # the best model of the checkpoint becomes out_dir's model again (a crash between
        # writing a new best model and its checkpoint may have left a newer one there)
        shutil.copyfile(last / BEST_FILE, out_dir / f".{ckpt.MODEL_FILE}.resume")
        os.replace(out_dir / f".{ckpt.MODEL_FILE}.resume", out_dir / ckpt.MODEL_FILE)
        config = ckpt.read_checkpoint_config(last)
        config.update(checkpoint_metadata(trainer, restored))
        ckpt.write_checkpoint_config(out_dir, config)
    return restored


def _restore_rng(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    np.random.set_state(tuple(rng["numpy"]))  # noqa: NPY002
    random.setstate(_as_tuple(rng["python"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def resume_differences(trainer: Any, previous: dict, last: Path) -> list[str]:
    """``["lr 0.001 -> 0.01", "model_config.pool 'max' -> 'avg'", ...]``: the settings of this
    run that differ from the checkpoint's (model, data, training)."""
    current = trainer.config.to_dict()
    differences = [
        f"{key} {previous.get(key, _RESUME_DEFAULTS.get(key))!r} -> {current[key]!r}"
        for key in RESUME_KEYS
        if key in previous or key in _RESUME_DEFAULTS
        if previous.get(key, _RESUME_DEFAULTS.get(key)) != current[key]
    ]
    saved = ckpt.read_checkpoint_config(last)
    ours = _jsonable({**trainer.metadata, "model_type": saved["model_type"],
                      "model_config": _model_config_dict(trainer.model)})
    for key in RESUME_METADATA:
        if key in saved or key in ours:
            differences += _dict_differences(key, saved.get(key), ours.get(key))
    return differences


def best_weights_at_start(trainer: Any, out_dir: Path | None, state: LoopState) -> dict | None:
    """The best weights so far of a resumed run (from its newest checkpoint), or None."""
    if state.best_epoch == 0 or not trainer.config.restore_best:
        return None
    last = out_dir / "checkpoints" / f"epoch-{state.epoch:04d}"
    best = ckpt.load_tensors(last / BEST_FILE)
    reference = trainer.model.state_dict()
    # safetensors stores shared tensors once; fill the aliases back from the live model
    return {k: best[k] if k in best else reference[k].detach().cpu().clone()
            for k in reference}


def write_log(out_dir: Path, records: list[dict]) -> None:
    """``out_dir/log.jsonl``, one JSON line per record, replaced whole."""
    ckpt.atomic_write_text(out_dir / LOG_FILE, "".join(dumps(r) + "\n" for r in records))


def _model_config_dict(model: torch.nn.Module) -> dict:
    from poolkit.models.registry import config_to_dict

    return config_to_dict(getattr(model, "module", model).config)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _dict_differences(prefix: str, old, new, limit: int = 6) -> list[str]:
    """Dotted keys whose values differ (a vocabulary or other long list as one entry)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += _dict_differences(f"{prefix}.{key}", old.get(key), new.get(key), limit)
        return found[:limit]
    if old == new:
        return []
    if isinstance(old, list) and isinstance(new, list) and max(len(old), len(new)) > 8:
        sizes = (f"{len(old)} items -> {len(new)}" if len(old) != len(new)
                 else f"other items, {len(old)} in both")
        return [f"{prefix} ({sizes})"]
    return [f"{prefix} {old!r} -> {new!r}"]


def _to_optimizer_device(state: dict, device: torch.device) -> dict:
    """Optimizer moments onto the model's device (``step`` counters stay on the CPU)."""
    moved = {}
    for index, values in state["state"].items():
        moved[index] = {k: v.to(device) if torch.is_tensor(v) and k != "step" else v
                        for k, v in values.items()}
    return {"state": moved, "param_groups": state["param_groups"]}


def _as_tuple(value):
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value
