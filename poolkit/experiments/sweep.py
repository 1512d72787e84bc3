"""Sweep axes of ``poolkit compare``: a grid over pooling types *and* settings.

``--sweep NAME=V1,V2`` (repeatable) adds an axis; the grid is every pooling type times every
combination of the axes' values, each cell run over the seeds. ``NAME`` is any model argument the
task accepts:

- a field of the model's config (``ConvNetConfig``: ``channels``, ``dropout``…;
  ``TextCNNConfig``: ``filter_widths`` (the region sizes), ``num_filters``…; ``TransformerConfig``:
  ``finetune``, ``reduce`` where it exists…), the fields the task derives from its data and the
  pooling name excepted;
- an argument of the pooling family (``kernel_size``, ``stride``, ``padding`` of a ConvNet's
  downsampling pool; ``k`` of k-max pooling over time in a TextCNN; ``p`` of Lp/GeM…). A pooling
  type that does not take the argument is run once, without that axis (``--pools max,kmax
  --sweep k=1,3`` gives ``max``, ``kmax k=1`` and ``kmax k=3``).

Values are separated by commas, or by semicolons when a value holds commas
(``--sweep 'reduce=none;strided:after=2,ratio=2'``); a list value is written in brackets
(``--sweep filter_widths=[3,4,5],[2,3]``). Each value is read as the type of the config field
(``none`` is ``None`` only where the field allows it and is not a string).

A cell is labelled ``"max kernel_size=3 stride=1"``: that label is its ``pool`` in
``results.jsonl`` (so the run key, and resume, tell cells apart) and its row in the tables and
plots; :func:`resolve_cell` turns the label back into the pooling name and the model arguments.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from poolkit.experiments.tasks import Task


@dataclass(frozen=True)
class ModelArguments:
    """What a model builder lets a sweep set: the fields of ``config`` but ``derived`` (set from
    the data or the pooling name), and arguments of the pool that ``pool_of(pool)`` names (built
    with ``pool_dims`` spatial dims and the defaults it returns); ``placeholders`` fill the
    required config fields when a value is checked."""

    config: type
    derived: tuple[str, ...] = ()
    pool_dims: int | None = None
    pool_of: Any = None  # pool name -> (pool that takes the arguments, its default kwargs)
    placeholders: dict[str, Any] = dataclasses.field(default_factory=dict)
    pool_hint: str = ""  # which pool the arguments go to, e.g. "kernel_size, stride… of ..."

    def fields(self) -> dict[str, dataclasses.Field]:
        return {
            f.name: f
            for f in dataclasses.fields(self.config)
            if f.name not in self.derived and not f.name.endswith("pool_kwargs")
        }


@dataclass(frozen=True)
class Axis:
    """One ``--sweep`` axis: a name, its values, and whether it goes to the model's config
    (``"model"``) or to the pooling type's arguments (``"pool"``)."""

    name: str
    values: tuple[Any, ...]
    target: str = "model"


def builtin_model_arguments() -> dict[Any, ModelArguments]:
    """What a sweep may set for each built-in model builder (imports the model configs)."""
    from poolkit.experiments import builtin_tasks as tasks
    from poolkit.models import ConvNetConfig, TextCNNConfig
    from poolkit.models.transformer import TransformerConfig

    return {
        tasks.build_convnet: ModelArguments(
            ConvNetConfig,
            derived=("in_channels", "num_classes", "image_size", "pool", "global_pool"),
            pool_dims=2,
            pool_of=tasks.convnet_sweep_pool,
            pool_hint="kernel_size, stride, padding… of every downsampling pool",
        ),
        tasks.build_textcnn: ModelArguments(
            TextCNNConfig,
            derived=("vocab_size", "num_classes", "pool", "padding_idx"),
            pool_dims=1,
            pool_of=tasks.textcnn_sweep_pool,
            placeholders={"vocab_size": 10},
            pool_hint="k of kmax, p of lp/gem… for the pooling over time",
        ),
        tasks.build_transformer: ModelArguments(
            TransformerConfig,
            derived=("base_model", "gguf_file", "max_length", "pool", "num_classes"),
        ),
    }


def model_arguments(task: Task) -> ModelArguments | None:
    """The :class:`ModelArguments` of a built-in model builder; ``None`` for a user's builder
    (whose keyword parameters are then the accepted names)."""
    builder = getattr(task.build_model, "func", task.build_model)
    return builtin_model_arguments().get(builder)


def _user_keywords(task: Task) -> tuple[list[str], bool]:
    """Keyword parameters of a user's builder after ``(pool, data)``, and whether it takes
    ``**kwargs`` (then any name goes)."""
    builder = getattr(task.build_model, "func", task.build_model)
    parameters = list(inspect.signature(builder).parameters.values())[2:]
    names = [p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return names, any(p.kind is p.VAR_KEYWORD for p in parameters)


def split_values(text: str) -> list[str]:
    """``"2,3"`` -> ``["2", "3"]``; ``"[3,4],[5]"`` -> ``["[3,4]", "[5]"]``; semicolons
    separate values that hold commas: ``"none;merge:r=4,start=2"``."""
    if ";" in text:
        parts = text.split(";")
    else:
        parts, depth, current = [], 0, ""
        for char in text:
            depth += (char in "[(") - (char in "])")
            if char == "," and depth == 0:
                parts.append(current)
                current = ""
            else:
                current += char
        parts.append(current)
    parts = [part.strip() for part in parts]
    if not all(parts):
        raise ValueError(f"sweep values ({text!r}) must not be empty")
    for part in parts:
        if any(space in part for space in " \t\n"):
            raise ValueError(f"sweep value ({part!r}) must not contain spaces")
    return parts


def _literal(raw: str) -> Any:
    """A value with no declared type: none/true/false, a number, a [list], else the text."""
    lowered = raw.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(raw) if raw[:1] in "-0123456789[" else raw
    except json.JSONDecodeError:
        return raw


def coerce(name: str, raw: str, field: dataclasses.Field | None = None) -> Any:
    """``raw`` read as the type of config ``field`` (by its annotation and default); a
    ``ValueError`` names the axis, the value and the type expected."""
    if field is None:
        return _literal(raw)
    annotation = str(field.type)
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        default = None
    kind = type(default).__name__ if default is not None else annotation.split("[")[0].split()[0]
    if raw.lower() == "none" and "None" in annotation and kind != "str":
        return None
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        if kind in ("int", "float"):
            return int(raw) if kind == "int" else float(raw)
        if kind in ("tuple", "list"):
            items = raw[1:-1].split(",") if raw.startswith("[") and raw.endswith("]") else [raw]
            values = [_literal(item.strip()) for item in items if item.strip()]
            if default and all(isinstance(item, int) for item in default):
                values = [int(item) for item in values]
            return tuple(values) if kind == "tuple" else values
    except ValueError:
        raise ValueError(
            f"sweep {name}: {raw!r} is not a valid {kind} ({name}: {annotation})"
        ) from None
    return raw if kind == "str" else _literal(raw)


def format_value(value: Any) -> str:
    """The label form of a value, read back by :func:`coerce`: ``[3,4,5]``, ``none``, ``0.5``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _pool_accepts(arguments: ModelArguments, pool: str, kwargs: dict[str, Any]) -> bool:
    """Whether the pool that ``pool`` puts in the model takes ``kwargs`` (``TypeError``: no);
    a ``ValueError`` (a bad value) propagates, naming the argument."""
    from poolkit.models._pools import make_pool

    target, defaults = arguments.pool_of(pool)
    try:
        make_pool(target, arguments.pool_dims, 4, **{**defaults, **kwargs})
    except TypeError:
        return False
    return True


def accepted_names(task: Task) -> str:
    """The names a sweep of ``task`` may use, for error messages and ``--help``."""
    arguments = model_arguments(task)
    if arguments is None:
        names, anything = _user_keywords(task)
        listed = ", ".join(names) or "none"
        return f"{listed}{' or any keyword of the model builder' if anything else ''}"
    text = ", ".join(arguments.fields())
    if arguments.pool_dims is not None:
        text += f"; or an argument of the pooling type ({arguments.pool_hint})"
    return text


def parse_sweep(items: Sequence[str], task: Task, pools: Sequence[str]) -> list[Axis]:
    """``["kernel_size=2,3", "stride=1,2"]`` -> the axes, values typed and checked.

    Raises ``ValueError`` for a malformed item, a name twice, a name the task does not accept
    (listing those it does) or a value its field or pool rejects.
    """
    arguments = model_arguments(task)
    axes: list[Axis] = []
    for item in items:
        name, equals, text = (part.strip() for part in str(item).partition("="))
        if not equals or not name or not text:
            raise ValueError(f"sweep ({item!r}) must be NAME=VALUE,VALUE…, e.g. kernel_size=2,3")
        if any(axis.name == name for axis in axes):
            raise ValueError(f"sweep {name} is given twice; put every value in one --sweep")
        raw_values = list(dict.fromkeys(split_values(text)))
        axes.append(_axis(name, raw_values, task, arguments, pools))
    return axes


def _axis(name, raw_values, task, arguments, pools) -> Axis:
    unknown = (
        f"sweep axis {name!r} is not a model argument of task {task.name!r}; it accepts: "
        f"{accepted_names(task)}"
    )
    if arguments is None:
        names, anything = _user_keywords(task)
        if name not in names and not anything:
            raise ValueError(unknown)
        return Axis(name, tuple(_literal(raw) for raw in raw_values))
    fields = arguments.fields()
    if name in fields:
        values = tuple(coerce(name, raw, fields[name]) for raw in raw_values)
        for value in values:
            try:
                arguments.config(**{**arguments.placeholders, name: value})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"sweep {name}={format_value(value)}: {exc}") from None
        return Axis(name, values)
    if arguments.pool_dims is None:
        raise ValueError(unknown)
    values = tuple(_literal(raw) for raw in raw_values)
    takers = []
    for pool in pools:
        try:
            if all(_pool_accepts(arguments, pool, {name: value}) for value in values):
                takers.append(pool)
        except ValueError as exc:
            raise ValueError(f"sweep {name} for pool {pool!r}: {exc}") from None
    if not takers:
        raise ValueError(f"{unknown} (none of the pooling types {', '.join(pools)} takes {name})")
    return Axis(name, values, target="pool")


def cell_label(pool: str, setting: dict[str, Any]) -> str:
    """``"max kernel_size=3 stride=1"``; the pool name alone without a setting."""
    return " ".join([pool, *(f"{name}={format_value(v)}" for name, v in setting.items())])


def sweep_cells(task: Task, pools: Sequence[str], axes: Sequence[Axis]) -> list[str]:
    """The grid's cell labels, pool by pool: every combination of the axes that apply to the
    pool (a pool argument applies only to the pools that take it)."""
    if not axes:
        return list(pools)
    arguments = model_arguments(task)
    cells: list[str] = []
    for pool in pools:
        mine = [
            axis
            for axis in axes
            if axis.target == "model" or _pool_accepts(arguments, pool, {axis.name: axis.values[0]})
        ]
        for values in itertools.product(*(axis.values for axis in mine)):
            label = cell_label(pool, {axis.name: v for axis, v in zip(mine, values, strict=True)})
            if label not in cells:
                cells.append(label)
    return cells


def resolve_cell(task: Task, label: str) -> tuple[str, dict[str, Any], Task]:
    """``(pool, setting, task)`` of a cell label: the pooling name, the swept arguments, and
    ``task`` with them set (config fields as model arguments, pool arguments in
    ``pool_kwargs``). A label without ``name=value`` parts is a plain pooling name."""
    pool, *parts = label.split(" ")
    if not parts or not all("=" in part for part in parts):
        return label, {}, task
    arguments = model_arguments(task)
    fields = arguments.fields() if arguments is not None else {}
    setting, model, pool_kwargs = {}, {}, {}
    for part in parts:
        name, _, raw = part.partition("=")
        setting[name] = coerce(name, raw, fields.get(name))
        if arguments is not None and name not in fields:
            pool_kwargs[name] = setting[name]
        else:
            model[name] = setting[name]
    if pool_kwargs:
        model["pool_kwargs"] = {**task.model.get("pool_kwargs", {}), **pool_kwargs}
    return pool, setting, task.with_settings(model=model)
