"""compare --sweep: axes over model and pool arguments, cell labels, resume, errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")

from test_compare import _fake_fit, _fake_load  # noqa: E402

from poolkit.cli import run  # noqa: E402
from poolkit.experiments import CompareSpec, Task, compare, get_task  # noqa: E402
from poolkit.experiments.sweep import (  # noqa: E402
    Axis,
    ModelArguments,
    coerce,
    format_value,
    parse_sweep,
    resolve_cell,
    split_values,
    sweep_cells,
)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("2,3", ["2", "3"]),
        ("[3,4,5],[2,3]", ["[3,4,5]", "[2,3]"]),
        ("none;merge:r=4", ["none", "merge:r=4"]),
        ("none;strided:after=2,ratio=2", ["none", "strided:after=2,ratio=2"]),
        ("merge:r=4", ["merge:r=4"]),
    ],
)
def test_split_values(text, values):
    assert split_values(text) == values


@pytest.mark.parametrize("text", ["2,,3", "", "2, 3 4"])
def test_split_values_rejects_empty_and_spaced_values(text):
    with pytest.raises(ValueError, match="sweep value"):
        split_values(text)


@dataclasses.dataclass
class _Config:
    width: int = 4
    rate: float = 0.5
    widths: tuple[int, ...] = (3, 4)
    norm: float | None = 3.0
    reduce: str = "none"
    flag: bool = False


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("width", "3", 3),
        ("rate", "0.25", 0.25),
        ("widths", "[2,3,5]", (2, 3, 5)),
        ("widths", "7", (7,)),
        ("norm", "none", None),
        ("reduce", "none", "none"),  # a string field keeps "none"
        ("reduce", "merge:r=4", "merge:r=4"),
        ("flag", "true", True),
    ],
)
def test_coerce_by_field_type_and_round_trip(name, raw, value):
    field = {f.name: f for f in dataclasses.fields(_Config)}[name]
    assert coerce(name, raw, field) == value
    assert coerce(name, format_value(value), field) == value


def test_coerce_names_the_axis_and_type():
    field = {f.name: f for f in dataclasses.fields(_Config)}["width"]
    with pytest.raises(ValueError, match=r"sweep width: 'wide' is not a valid int"):
        coerce("width", "wide", field)


def test_digits_axes_cells_and_resolution():
    task = get_task("digits")
    axes = parse_sweep(["kernel_size=2,3", "stride=1,2"], task, ["max", "avg"])
    assert axes == [Axis("kernel_size", (2, 3), "pool"), Axis("stride", (1, 2), "pool")]
    cells = sweep_cells(task, ["max", "avg"], axes)
    assert len(cells) == 8 and cells[0] == "max kernel_size=2 stride=1"
    pool, setting, resolved = resolve_cell(task, "avg kernel_size=3 stride=1")
    assert (pool, setting) == ("avg", {"kernel_size": 3, "stride": 1})
    assert resolved.model["pool_kwargs"] == {"kernel_size": 3, "stride": 1}
    assert resolve_cell(task, "max") == ("max", {}, task)
    # The model gets those windows at every downsampling step.
    from poolkit.experiments.builtin_tasks import build_convnet
    from poolkit.experiments.tasks import TaskData

    data = TaskData(None, None, None, None, 10, info={"image_shape": (1, 8, 8)})
    model = build_convnet(pool, data, **resolved.model)
    pools = [m for m in model.features if "Pool" in type(m).__name__]
    assert len(pools) == 2
    assert all(p.kernel_size in (3, (3, 3)) and p.stride in (1, (1, 1)) for p in pools)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_textcnn_region_sizes_and_k_apply_where_they_can():
    task = get_task("mr")
    axes = parse_sweep(["k=1,3", "filter_widths=[3,4,5],[2]"], task, ["max", "kmax"])
    assert axes[1] == Axis("filter_widths", ((3, 4, 5), (2,)), "model")
    cells = sweep_cells(task, ["max", "kmax"], axes)
    # max pooling takes no k: it runs once per region-size setting
    assert cells == [
        "max filter_widths=[3,4,5]",
        "max filter_widths=[2]",
        "kmax k=1 filter_widths=[3,4,5]",
        "kmax k=1 filter_widths=[2]",
        "kmax k=3 filter_widths=[3,4,5]",
        "kmax k=3 filter_widths=[2]",
    ]
    _, _, resolved = resolve_cell(task, "kmax k=3 filter_widths=[2]")
    assert resolved.model == {"filter_widths": (2,), "pool_kwargs": {"k": 3}}
    from poolkit.experiments.builtin_tasks import build_textcnn
    from poolkit.experiments.tasks import TaskData

    data = TaskData(None, None, None, None, 2, info={"vocab_size": 20, "pad_id": 0})
    model = build_textcnn("kmax", data, **resolved.model)
    assert model.config.filter_widths == (2,) and model.config.pool_kwargs == {"k": 3}
    # without a sweep k-max keeps its default k=2
    assert build_textcnn("kmax", data).config.pool_kwargs == {"k": 2}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["foo=1"], r"sweep axis 'foo' is not a model argument of task 'digits'; it accepts: "
                    r"channels, convs_per_stage, batch_norm, dropout; or an argument"),
        (["k=2"], "none of the pooling types max, avg takes k"),
        (["kernel_size=0"], r"sweep kernel_size for pool 'max': kernel_size \(0\)"),
        (["dropout=2"], r"sweep dropout=2: dropout \(2.0\) must be in \[0, 1\)"),
        (["channels=abc"], "sweep channels"),
        (["kernel_size"], "must be NAME=VALUE"),
        (["stride=1", "stride=2"], "given twice"),
        (["pool=max"], "not a model argument"),  # set from the pooling name, not sweepable
    ],
)
def test_bad_axes_are_clear_errors(items, message):
    with pytest.raises(ValueError, match=message):
        parse_sweep(items, get_task("digits"), ["max", "avg"])


def test_a_config_field_added_later_is_sweepable(monkeypatch):
    """A task whose model config gains ``reduce`` (token reducers) sweeps it with no change
    here: ``--sweep 'reduce=none;merge:r=4;strided:after=2,ratio=2'``."""
    from poolkit.experiments import sweep

    def build(pool, data, **config):
        return _Config(**config)

    original = sweep.builtin_model_arguments
    monkeypatch.setattr(
        sweep, "builtin_model_arguments",
        lambda: {**original(), build: ModelArguments(_Config, derived=("flag",))},
    )
    task = Task("tokens", "text", _fake_load, build)
    axes = parse_sweep(["reduce=none;merge:r=4;strided:after=2,ratio=2"], task, ["mean"])
    assert axes == [Axis("reduce", ("none", "merge:r=4", "strided:after=2,ratio=2"))]
    cells = sweep_cells(task, ["mean"], axes)
    assert cells == ["mean reduce=none", "mean reduce=merge:r=4",
                     "mean reduce=strided:after=2,ratio=2"]
    assert resolve_cell(task, cells[2])[2].model == {"reduce": "strided:after=2,ratio=2"}
    with pytest.raises(ValueError, match="it accepts: width, rate, widths, norm, reduce$"):
        parse_sweep(["flag=true"], task, ["mean"])


class _WideNet(torch.nn.Module):
    def __init__(self, pool: str, width: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, width, 3, padding=1)
        adaptive = torch.nn.AdaptiveMaxPool2d if pool == "max" else torch.nn.AdaptiveAvgPool2d
        self.pool = adaptive(1)
        self.head = torch.nn.Linear(width, 2)

    def forward(self, images):
        return self.head(self.pool(torch.relu(self.conv(images))).flatten(1))


def _wide_build(pool, data, *, width: int = 4):
    return _WideNet(pool, width)


WIDE = Task("fake-wide", "image", _fake_load, _wide_build, train={"epochs": 1, "lr": 0.5},
            fit=_fake_fit)


def test_a_swept_grid_runs_each_cell_and_resumes(tmp_path):
    axes = parse_sweep(["width=2,6"], WIDE, ["max", "avg"])
    spec = CompareSpec(WIDE, ["max", "avg"], [0, 1], out_dir=tmp_path / "cmp", sweep=axes)
    report = compare(spec, jobs=1, threads=1, progress=False)
    cells = ["max width=2", "max width=6", "avg width=2", "avg width=6"]
    assert spec.cells() == cells
    assert sorted(row["pool"] for row in report.rows) == sorted(cells)
    params = {row["pool"]: row["params"] for row in report.rows}
    assert params["max width=2"] == 2 * 9 + 2 + 2 * 2 + 2  # conv 2x1x3x3 + bias, head + bias
    assert params["max width=6"] == 6 * 9 + 6 + 6 * 2 + 2
    records = [json.loads(line) for line in (tmp_path / "cmp" / "results.jsonl").open()]
    assert {r["pool"] for r in records} == set(cells)
    assert {json.dumps(r["setting"]) for r in records} == {'{"width": 2}', '{"width": 6}'}
    assert report.to_json()["sweep"] == {"width": [2, 6]}
    assert "2 width (4 cells)" in report.markdown
    # Widening the axis: the 8 finished runs are reused, only the new cell's 4 run.
    wider = CompareSpec(WIDE, ["max", "avg"], [0, 1], out_dir=tmp_path / "cmp",
                        sweep=parse_sweep(["width=2,6,8"], WIDE, ["max", "avg"]))
    again = compare(wider, jobs=1, threads=1, progress=False)
    assert (again.outcome.reused, again.outcome.ran) == (8, 4)


def test_cli_sweep_and_its_errors(tmp_path, capsys):
    out = tmp_path / "digits"
    argv = ["compare", "--task", "digits", "--pools", "max", "--sweep", "kernel_size=2,3",
            "--train-size", "200", "--test-size", "100", "--seeds", "1", "--epochs", "1",
            "--jobs", "1", "--threads", "1", "--out", str(out), "--json"]
    assert run(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["cells"] == ["max kernel_size=2", "max kernel_size=3"]
    assert {row["pool"] for row in payload["summary"]} == set(payload["cells"])
    assert run([*argv[:5], "--sweep", "window=2", *argv[7:]]) == 2
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())  # unwrap the error box
    assert "sweep axis 'window'" in err and "kernel_size, stride, padding" in err
