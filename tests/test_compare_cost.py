"""compare's cost columns: peak forward memory (hand-counted bytes), the timing thread count,
the Pareto front and plot, and the console table."""

from __future__ import annotations

import io
import json

import pytest

torch = pytest.importorskip("torch")

from test_compare import _spec  # noqa: E402

from poolkit._io import read_jsonl  # noqa: E402
from poolkit.experiments import compare  # noqa: E402
from poolkit.experiments.cost import peak_forward_bytes, torch_threads  # noqa: E402
from poolkit.experiments.plots import pareto_front  # noqa: E402
from poolkit.experiments.summary import throughput_header  # noqa: E402


def _mlp(inplace: bool):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(inplace=inplace), torch.nn.Linear(8, 2)
    )


def test_peak_forward_bytes_by_hand():
    # Batch 3, float32 (4 bytes). Linear(4, 8) gives 3x8x4 = 96 bytes; a ReLU that is not in
    # place allocates 96 more while the first output is still alive: peak 192. In place, ReLU
    # reuses the 96, then Linear(8, 2) adds 3x2x4 = 24: peak 120.
    batch = {"input": torch.randn(3, 4)}
    assert peak_forward_bytes(_mlp(inplace=False), batch) == 192
    assert peak_forward_bytes(_mlp(inplace=True), batch) == 120
    # Weights and the input are not counted, however large.
    assert peak_forward_bytes(torch.nn.Identity(), {"input": torch.randn(1000, 1000)}) == 0


def test_peak_forward_bytes_of_a_pool_and_repeatable():
    # max_pool2d on (2, 3, 8, 8) float64 gives (2, 3, 4, 4) = 96 values x 8 bytes = 768 bytes
    # (the index tensor of max_pool2d_with_indices is not materialised by the inference path).
    pool = torch.nn.MaxPool2d(2)
    batch = {"input": torch.randn(2, 3, 8, 8, dtype=torch.float64)}
    first = peak_forward_bytes(pool, batch)
    assert first == 2 * 3 * 4 * 4 * 8
    assert all(peak_forward_bytes(pool, batch) == first for _ in range(3))
    batch_twice = {"input": torch.randn(4, 3, 8, 8, dtype=torch.float64)}
    assert peak_forward_bytes(pool, batch_twice) == 2 * first


def test_torch_threads_restores_and_rejects_bad_counts():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with torch_threads(0):
            pass


def test_pareto_front_hand_worked():
    # (samples/s, accuracy): b is fastest; a is slower but better; c and d are beaten.
    points = [(10, 90.0), (20, 80.0), (5, 85.0), (20, 70.0), (10, 90.0)]
    assert pareto_front(points) == [1, 0]
    assert pareto_front([(1, 1.0)]) == [0]
    assert pareto_front([]) == []


def test_records_carry_memory_and_timing_threads_and_the_table_shows_them(tmp_path):
    spec = _spec(tmp_path, seeds=(0,), throughput_threads=1)
    report = compare(spec, jobs=1, threads=2, progress=False)
    records = read_jsonl(tmp_path / "cmp" / "results.jsonl")
    for record in records:
        assert record["throughput_threads"] == 1  # not the 2 training threads
        assert record["throughput_clock"] == "cpu"
        assert record["peak_memory_bytes"] > 0
        assert record["memory_batch_size"] == 24  # the whole fake test split
    # The tiny net: conv (24, 4, 6, 6) float32 = 13,824 bytes, relu another 13,824 while the
    # conv output lives, then the pool and the head are smaller.
    assert {r["peak_memory_bytes"] for r in records} == {2 * 24 * 4 * 6 * 6 * 4}
    assert (tmp_path / "cmp" / "pareto.png").stat().st_size > 0
    assert report.files["pareto_png"].name == "pareto.png"
    markdown = (tmp_path / "cmp" / "summary.md").read_text()
    assert "samples/s (1 thread)" in markdown and "peak MiB" in markdown
    assert throughput_header(report.rows) == "samples/s (1 thread)"
    json.dumps(report.to_json())


def test_timing_threads_are_not_part_of_the_run_key(tmp_path):
    one = _spec(tmp_path, throughput_threads=1)
    four = _spec(tmp_path, throughput_threads=4)
    assert one.config_id == four.config_id
    assert "throughput_threads" not in one.config["train"]


def test_mixed_thread_counts_are_flagged():
    rows = [{"runs": 1, "throughput_threads": 1}, {"runs": 2, "throughput_threads": "mixed"}]
    assert throughput_header(rows) == "samples/s (threads differ!)"
    assert throughput_header([{"runs": 1, "throughput_threads": 4}]) == "samples/s (4 threads)"
    assert throughput_header([{"runs": 1}]) == "samples/s"


def test_console_table_has_throughput_and_memory(tmp_path):
    from rich.console import Console

    from poolkit.cli.compare import render_table

    report = compare(_spec(tmp_path, seeds=(0,)), jobs=1, threads=1, progress=False)
    console = Console(file=io.StringIO(), width=200)
    render_table(report.rows, console)
    text = console.file.getvalue()
    assert "samples/s" in text and "(1 thread)" in text and "MiB" in text
    assert "0.03" in text  # 27,648 bytes = 0.026 MiB


def test_time_inference_passes_over_every_example_and_stops():
    from poolkit.experiments.cost import time_inference

    seen = []

    class Counting(torch.nn.Module):
        def forward(self, images):
            seen.append(images.shape[0])
            return images.flatten(1)

    dataset = [{"images": torch.zeros(1, 2, 2), "labels": 0} for _ in range(10)]

    def collate(examples):
        return {"images": torch.stack([e["images"] for e in examples]),
                "labels": torch.tensor([e["labels"] for e in examples])}

    seconds, repeats = time_inference(Counting(), dataset, collate, batch_size=4, budget_s=0.0)
    assert repeats == 1 and seconds > 0 and seen == [4, 4, 2]
    seen.clear()
    _, repeats = time_inference(Counting(), dataset, collate, batch_size=4, budget_s=1e9,
                                max_repeats=3)
    assert repeats == 3 and seen == [4, 4, 2] * 3


# ---------------------------------------------------------------------------------------------
# Shift consistency (Zhang 2019)


def _images_dataset(n=40, size=6):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(n, 1, size, size, generator=generator)
    return [{"images": images[i], "labels": 0} for i in range(n)]


def _collate_images(examples):
    return {"images": torch.stack([e["images"] for e in examples]),
            "labels": torch.tensor([e["labels"] for e in examples])}


class _Probe(torch.nn.Module):
    """Class 1 when pixel (0, 0) is non-zero, else 0: sees the shift's zero fill."""

    def forward(self, images):
        corner = (images[:, 0, 0, 0] != 0).float()
        return torch.stack([1 - corner, corner], dim=1)


class _Invariant(torch.nn.Module):
    def forward(self, images):
        return torch.zeros(images.shape[0], 3)


def test_translate_images_against_a_naive_loop():
    from poolkit.experiments.robustness import translate_images

    images = torch.randn(12, 2, 5, 4)
    offsets = torch.randint(-5, 6, (12, 2), generator=torch.Generator().manual_seed(0))
    expected = torch.zeros_like(images)
    for n in range(12):
        dy, dx = offsets[n].tolist()
        for y in range(5):
            for x in range(4):
                if 0 <= y - dy < 5 and 0 <= x - dx < 4:
                    expected[n, :, y, x] = images[n, :, y - dy, x - dx]
    assert torch.equal(translate_images(images, offsets), expected)
    with pytest.raises(ValueError, match="offsets must be"):
        translate_images(images, offsets[:3])


def test_shift_consistency_by_hand():
    from poolkit.experiments.robustness import shift_consistency

    data = _images_dataset()
    assert shift_consistency(_Invariant(), data, _collate_images) == 1.0
    assert shift_consistency(_Probe(), data, _collate_images, max_shift=0) == 1.0
    # The probe's class is 1 exactly when the shift moves nothing into row 0 / column 0 from the
    # fill, i.e. dy <= 0 and dx <= 0 (pixels are uniform in (0, 1), never exactly 0): with
    # m = 1 that is 4 of 9 offsets, so two independent shifts agree with probability
    # (4/9)^2 + (5/9)^2 = 41/81. Check the exact count from the same draws.
    generator = torch.Generator().manual_seed(2019)
    offsets = torch.randint(-1, 2, (2, len(data), 2), generator=generator)
    keeps = (offsets <= 0).all(dim=2)  # (2, N)
    expected = (keeps[0] == keeps[1]).float().mean().item()
    got = shift_consistency(_Probe(), data, _collate_images, max_shift=1, batch_size=7)
    assert got == pytest.approx(expected)
    assert got == shift_consistency(_Probe(), data, _collate_images, max_shift=1, batch_size=40)
    with pytest.raises(ValueError, match="max_shift"):
        shift_consistency(_Probe(), data, _collate_images, max_shift=-1)


def test_consistency_column_in_records_summary_and_table(tmp_path):
    report = compare(_spec(tmp_path, seeds=(0,)), jobs=1, threads=1, progress=False)
    for record in read_jsonl(tmp_path / "cmp" / "results.jsonl"):
        assert 0.0 <= record["shift_consistency"] <= 1.0
        assert record["consistency_max_shift"] == 3
    assert all("consistency_mean" in row for row in report.rows)
    markdown = (tmp_path / "cmp" / "summary.md").read_text()
    assert "| shift 3px | consistency % |" in markdown and "Zhang 2019" in markdown
    assert (tmp_path / "cmp" / "robustness.png").is_file()  # not confused by the new column


# ---------------------------------------------------------------------------------------------
# Test-set resolution and the accuracy plot's seed dots


def test_accuracy_resolution_by_hand():
    from poolkit.experiments.summary import accuracy_resolution

    # n = 400, p = 0.9: one example 100/400 = 0.25 pp; SE = sqrt(0.09/400) = 0.015 -> 1.5 pp;
    # detectable 1.96 * sqrt(2) * 1.5 = 4.158 pp.
    r = accuracy_resolution(400, 0.9)
    assert r["one_example"] == pytest.approx(0.25)
    assert r["standard_error"] == pytest.approx(1.5)
    assert r["detectable"] == pytest.approx(4.1577, abs=1e-3)
    assert accuracy_resolution(100, 1.0)["detectable"] == 0.0
    with pytest.raises(ValueError, match="n_test"):
        accuracy_resolution(0, 0.5)


def test_small_test_sets_warn_in_console_and_summary():
    from poolkit.experiments.summary import resolution_notes, to_markdown

    rows = [
        {"pool": "max", "runs": 3, "accuracy_mean": 0.90, "accuracy_std": 0.01, "rank": 1,
         "macro_f1_mean": 0.9, "macro_f1_std": 0.01, "verdict": "best", "params": 1},
        {"pool": "avg", "runs": 3, "accuracy_mean": 0.88, "accuracy_std": 0.01, "rank": 2,
         "macro_f1_mean": 0.88, "macro_f1_std": 0.01, "verdict": "tie", "params": 1},
    ]
    notes, warnings = resolution_notes(rows, 400)
    assert "one example is 0.25 points" in notes[0] and "about 4.2 points" in notes[0]
    assert len(warnings) == 1
    assert "max leads avg by 2.0 points, under the ~4.2 points" in warnings[0]
    markdown = to_markdown(rows, title="t", notes=notes, warnings=warnings)
    assert "**Warning:** the test set (400 examples) is too small" in markdown
    # 40,000 examples resolve 0.42 points: a 2-point lead is no warning.
    assert resolution_notes(rows, 40_000)[1] == []
    assert resolution_notes(rows, None) == ([], [])


def test_grid_report_carries_the_warning(tmp_path):
    report = compare(_spec(tmp_path, seeds=(0,)), jobs=1, threads=1, progress=False)
    markdown = (tmp_path / "cmp" / "summary.md").read_text()
    assert "Test-set resolution: 24 test examples; one example is 4.17 points" in markdown
    from poolkit.experiments.summary import resolution_notes

    assert report.warnings == resolution_notes(report.rows, 24)[1]
    assert report.to_json()["warnings"] == report.warnings


def test_seed_offsets_separate_equal_seeds():
    from poolkit.experiments.plots import seed_offsets

    assert seed_offsets(0) == [] and seed_offsets(1) == [0.2]
    assert seed_offsets(3) == [0.12, 0.2, 0.28]  # none at 0, where the mean marker sits
    offsets = seed_offsets(5)
    assert len(set(offsets)) == 5 and max(offsets) - min(offsets) == pytest.approx(0.16)
    assert min(offsets) > 0.1 and max(offsets) < 0.5  # stays within its row


def test_one_thread_is_timed_by_cpu_time_more_threads_by_wall_time():
    import time

    from poolkit.experiments.cost import inference_clock

    assert inference_clock(1) == ("cpu", time.thread_time)
    assert inference_clock(4) == ("wall", time.perf_counter)
    # A pass that only sleeps costs (almost) no CPU time: other processes' time is not counted.
    from poolkit.experiments.cost import time_inference

    class Sleeper(torch.nn.Module):
        def forward(self, images):
            time.sleep(0.02)
            return images

    data = [{"images": torch.zeros(1), "labels": 0}]

    def collate(examples):
        return {"images": torch.zeros(1), "labels": torch.zeros(1)}

    cpu, _ = time_inference(Sleeper(), data, collate, max_repeats=1, clock=time.thread_time)
    wall, _ = time_inference(Sleeper(), data, collate, max_repeats=1)
    assert wall >= 0.02 and cpu < 0.015
