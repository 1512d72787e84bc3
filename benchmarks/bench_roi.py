"""Speed of poolkit's RoI Align against onnxruntime's CPU kernel (not a test).

One process, one thread (numba, BLAS, torch and onnxruntime's ``intra_op_num_threads=1``):
RoI Align of 512 boxes on a float32 ``(2, 256, 64, 64)`` feature map, 7 x 7 output,
``spatial_scale=1/8`` (boxes in a 512 x 512 image frame: random centres, sides log-uniform in
[16, 256] pixels, i.e. 2 to 32 cells), ``sampling_ratio`` -1 (adaptive) and 2. Rows:

- onnxruntime ``RoiAlign`` (opset 16, mode avg, ``output_half_pixel`` = ``aligned=False``),
  forward only: onnxruntime has no RoiAlign gradient kernel, so the backward rows are shown
  against its forward time as the unit;
- poolkit.numpy with the numba kernels and in pure NumPy (``POOLKIT_NUMPY_BACKEND=numpy``),
  forward and backward (``roi_align_backward``);
- poolkit.nn's torch layer, forward and forward + backward (autograd).

Each time is the fastest of ``--repeats`` runs after one warm-up run (which also compiles the
numba kernels). Outputs are checked equal (1e-4) before timing. The machine may be shared:
read the ratios, and rerun when in doubt.

Run::

    python benchmarks/bench_roi.py                # 5 repeats
    python benchmarks/bench_roi.py --repeats 3 --json roi.json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/torch/numba are imported

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import poolkit.numpy as pnp  # noqa: E402
from poolkit.numpy._backend import numba_available, use_backend  # noqa: E402

SHAPE, N_BOXES, OUTPUT, SCALE = (2, 256, 64, 64), 512, (7, 7), 1 / 8


def fastest_ms(fn, repeats: int) -> float:
    fn()  # warm-up (and numba compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def make_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    image = SHAPE[2] / SCALE
    sides = np.exp(rng.uniform(np.log(16), np.log(256), size=(N_BOXES, 2)))
    centres = rng.uniform(0, image, size=(N_BOXES, 2))
    corners = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)
    batch = rng.integers(0, SHAPE[0], size=(N_BOXES, 1))
    rois = np.concatenate([batch, corners], axis=1).astype(np.float32)
    grad = rng.standard_normal((N_BOXES, SHAPE[1], *OUTPUT)).astype(np.float32)
    return x, rois, grad


def ort_roi_align(sampling_ratio: int):
    """An onnxruntime session running RoiAlign on one thread: ``run(x, rois) -> y``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node(
        "RoiAlign", ["X", "rois", "batch_indices"], ["Y"], mode="avg",
        output_height=OUTPUT[0], output_width=OUTPUT[1], sampling_ratio=max(sampling_ratio, 0),
        spatial_scale=SCALE, coordinate_transformation_mode="output_half_pixel")
    graph = helper.make_graph(
        [node], "roi_align",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("rois", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("batch_indices", TensorProto.INT64, None)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])

    def run(x, rois):
        feeds = {"X": x, "rois": np.ascontiguousarray(rois[:, 1:]),
                 "batch_indices": rois[:, 0].astype(np.int64)}
        return session.run(None, feeds)[0]

    return run


def rows_for(sampling_ratio: int, repeats: int, x, rois, grad) -> list[dict]:
    args = (OUTPUT, SCALE, sampling_ratio, False)
    ort_run = ort_roi_align(sampling_ratio)
    reference = ort_run(x, rois)
    unit = fastest_ms(lambda: ort_run(x, rois), repeats)
    rows = [{"impl": "onnxruntime RoiAlign (1 thread)", "op": "forward", "ms": unit}]
    backends = (["numba"] if numba_available() else []) + ["numpy"]
    for backend in backends:
        with use_backend(backend):
            out = pnp.roi_align(x, rois, *args)
            np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-4)
            fwd = fastest_ms(lambda: pnp.roi_align(x, rois, *args), repeats)
            bwd = fastest_ms(lambda: pnp.roi_align_backward(grad, x, rois, *args), repeats)
        rows.append({"impl": f"poolkit.numpy ({backend})", "op": "forward", "ms": fwd})
        rows.append({"impl": f"poolkit.numpy ({backend})", "op": "backward", "ms": bwd})
    rows += torch_rows(args, repeats, x, rois, grad, reference)
    for row in rows:
        row.update(sampling_ratio=sampling_ratio, ratio_to_ort_forward=row["ms"] / unit)
    return rows


def torch_rows(args, repeats, x, rois, grad, reference) -> list[dict]:
    import torch

    from poolkit.nn import functional as PF

    torch.set_num_threads(1)
    xt, rt, gt = torch.from_numpy(x), torch.from_numpy(rois), torch.from_numpy(grad)
    np.testing.assert_allclose(PF.roi_align(xt, rt, *args).numpy(), reference, 1e-4, 1e-4)

    def forward_backward():
        leaf = xt.clone().requires_grad_(True)
        PF.roi_align(leaf, rt, *args).backward(gt)

    with torch.no_grad():
        fwd = fastest_ms(lambda: PF.roi_align(xt, rt, *args), repeats)
    both = fastest_ms(forward_backward, repeats)
    return [{"impl": "poolkit.nn (torch)", "op": "forward", "ms": fwd},
            {"impl": "poolkit.nn (torch)", "op": "forward+backward", "ms": both}]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also save the rows here")
    options = parser.parse_args(argv)
    x, rois, grad = make_inputs()
    rows = []
    for sampling_ratio in (-1, 2):
        rows += rows_for(sampling_ratio, options.repeats, x, rois, grad)
    table = Table(title=f"RoI Align, {N_BOXES} boxes on float32 {SHAPE}, 7x7, 1 thread, "
                        f"fastest of {options.repeats}")
    for column in ("sampling_ratio", "implementation", "op", "ms", "x onnxruntime fwd"):
        table.add_column(column, justify="right" if column != "implementation" else "left")
    for row in rows:
        table.add_row(str(row["sampling_ratio"]), row["impl"], row["op"], f"{row['ms']:.1f}",
                      f"{row['ratio_to_ort_forward']:.2f}")
    Console(width=110).print(table)
    if options.json is not None:
        from poolkit.train.checkpoint import atomic_write_json

        atomic_write_json(options.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
