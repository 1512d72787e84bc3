"""Run the grid pooling types x seeds of ``poolkit compare``: in parallel, resumable.

Each run trains one model (the task's model with one pooling type, one seed), evaluates it on the
test split, times inference (with the same thread count for every run), measures the peak memory
of one forward pass (:mod:`poolkit.experiments.cost`), and measures accuracy under the task's
perturbation at each level.
A finished run is one file in ``runs/`` (merged into ``results.jsonl``, see
:mod:`poolkit.experiments.results`); a finished run is not repeated, a run that was killed (no
record) is done again, a run that another process is training is left to it, and ``shard=(K, N)``
runs one slice of the grid, so that any number of processes or machines can share one folder.

Parallelism: ``jobs`` worker processes (``forkserver`` or ``spawn``, so no thread pool is
inherited from the parent), each limited to ``threads`` torch threads with
``jobs * threads <= cores``; small models train faster as several one-thread processes than as one
multi-thread process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from poolkit._io import to_jsonable
from poolkit.experiments.results import RESULTS_FILE, ResultStore, grid_records
from poolkit.experiments.tasks import FitResult, Task, TaskData


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def plan_workers(
    runs: int, jobs: int | None = None, cores: int | None = None, threads: int | None = None
) -> tuple[int, int]:
    """``(jobs, threads)`` for ``runs`` runs.

    ``jobs <= min(cores, runs)`` and ``jobs * threads <= cores`` unless ``threads`` is given.
    """
    cores = available_cores() if cores is None else cores
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int)):
        raise TypeError(f"jobs must be an int, got {type(jobs).__name__}")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs ({jobs}) must be >= 1")
    jobs = min(cores, max(1, runs)) if jobs is None else jobs
    jobs = max(1, min(jobs, max(1, runs)))
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
        raise TypeError(f"threads must be an int, got {type(threads).__name__}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads ({threads}) must be >= 1")
    return jobs, threads or max(1, cores // jobs)


@dataclass
class CompareSpec:
    """One grid: a task, pooling types, seeds, and the training settings shared by every run.

    Attributes:
        task: the :class:`~poolkit.experiments.tasks.Task` (data, model builder, metric).
        pools: the pooling types compared, names of :func:`poolkit.nn.list_pools`; at least one.
        seeds: the seeds each pooling type runs with; at least one.
        train: :class:`~poolkit.train.TrainConfig` fields on top of the task's own (``None``
            values leave the task's); after construction, the merged settings.
        out_dir: the folder of the results (one record per run; shared safely by several
            processes; default ``runs/compare``).
        command: the command line shown in the report (default ``""``).
        sweep: ``--sweep`` axes (:class:`~poolkit.experiments.sweep.Axis`): the grid is every
            pooling type times every combination of the axes' values (:meth:`cells`; default
            none).
    """

    task: Task
    pools: list[str]
    seeds: list[int]
    train: dict[str, Any] = field(default_factory=dict)
    out_dir: Path = Path("runs/compare")
    command: str = ""
    # --sweep axes (poolkit.experiments.sweep.Axis): each grid cell is a pool and a setting
    sweep: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if not self.pools:
            raise ValueError("pools must name at least one pooling type")
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed")
        self.train = {**self.task.train, **{k: v for k, v in self.train.items() if v is not None}}

    @property
    def config(self) -> dict[str, Any]:
        """Everything but pool and seed that decides a run's result."""
        return {
            "task": self.task.name,
            "options": {k: _jsonable_str(v) for k, v in sorted(self.task.options.items())},
            "model": {k: _jsonable_str(v) for k, v in sorted(self.task.model.items())},
            "train": {
                k: _jsonable_str(v) for k, v in sorted(self.train.items()) if k not in _TIMING_ONLY
            },
            "perturbation": self.task.perturbation,
            "levels": list(self.task.levels),
        }

    @property
    def config_id(self) -> str:
        text = json.dumps(self.config, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def run_key(self, pool: str, seed: int) -> str:
        return f"{self.task.name}|{pool}|{seed}|{self.config_id}"

    def cells(self) -> list[str]:
        """The grid's cells: the pooling types, or with a sweep the labels
        ``"max kernel_size=3 stride=1"`` of every (pool, setting) pair."""
        from poolkit.experiments.sweep import sweep_cells

        return sweep_cells(self.task, self.pools, self.sweep)

    def grid(self) -> list[tuple[str, int]]:
        return [(cell, seed) for cell in self.cells() for seed in self.seeds]


# Settings that change how a run is timed, not its result: outside the config (and the run key).
_TIMING_ONLY = ("throughput_threads",)


def _jsonable_str(value: Any) -> Any:
    return to_jsonable(value, default=str)


# ---------------------------------------------------------------------------------------------
# One run (executed in a worker process, or in-process with jobs=1)

_DATA_CACHE: dict[str, TaskData] = {}


def load_task_data(task: Task) -> TaskData:
    """Load a task's data once per process (every run of a grid shares the split)."""
    key = json.dumps([task.name, _jsonable_str(task.options)], sort_keys=True)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one task per grid: keep memory flat
        _DATA_CACHE[key] = task.load(**task.options)
    return _DATA_CACHE[key]


def versions() -> dict[str, str]:
    import numpy

    import poolkit

    found = {
        "poolkit": poolkit.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
    }
    try:
        import torch

        found["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - compare needs torch
        pass
    return found


def evaluate(
    model,
    dataset,
    collate_fn: Callable,
    *,
    batch_size: int = 256,
    num_classes: int | None = None,
    perturb: Callable[[dict], dict] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and wall time of ``model`` on ``dataset`` (optionally perturbed).

    ``perturb(batch) -> batch`` is applied to each collated batch before the forward pass.
    """
    import numpy as np
    import torch

    from poolkit.train.metrics import classification_metrics

    model.eval()
    predictions, labels = [], []
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(dataset), batch_size):
            last = min(first + batch_size, len(dataset))
            batch = collate_fn([dataset[i] for i in range(first, last)])
            if perturb is not None:
                batch = perturb(batch)
            targets = batch["labels"]
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            logits = model(**inputs)
            predictions.append(logits.argmax(dim=-1))
            labels.append(targets)
    seconds = time.perf_counter() - start
    predicted = torch.cat(predictions).numpy() if predictions else np.zeros(0, np.int64)
    actual = torch.cat(labels).numpy() if labels else np.zeros(0, np.int64)
    result = classification_metrics(actual, predicted, num_classes=num_classes)
    # The majority-class baseline ("chance"): always predicting the most frequent test label.
    result["majority_accuracy"] = (
        float(np.bincount(actual).max() / actual.size) if actual.size else float("nan")
    )
    result["time_s"] = seconds
    result["n"] = len(dataset)
    return result


def default_fit(model, data: TaskData, train: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train with :class:`poolkit.train.Trainer` (early stopping on ``data.dev``)."""
    from poolkit.experiments._trainer import fit_with_trainer

    return fit_with_trainer(model, data, train, seed)


def run_one(task: Task, pool: str, seed: int, train: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (pool, seed); returns the results.jsonl record (without keys).

    ``pool`` may be a sweep's cell label (``"max kernel_size=3"``, see
    :func:`poolkit.experiments.sweep.resolve_cell`)."""
    import torch

    from poolkit.experiments.sweep import resolve_cell

    pool, setting, task = resolve_cell(task, pool)  # a sweep's cell: pool + model arguments
    data = load_task_data(task)
    torch.manual_seed(seed)
    model = task.build_model(pool, data, **task.model)
    fit = task.fit or default_fit
    fitted = FitResult.coerce(
        fit(model, data, {k: v for k, v in train.items() if k not in _TIMING_ONLY}, seed)
    )
    eval_batch = int(train.get("eval_batch_size", 256))
    pools_used = getattr(model, "pools_used", None)
    common = {
        "train_time_s": float(fitted.train_time_s),
        "epochs": int(train.get("epochs", 0) if fitted.epochs is None else fitted.epochs),
        f"best_dev_{task.metric}": fitted.best_dev_score,
        "params": int(sum(p.numel() for p in model.parameters())),
        "trainable_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "model_pools": pools_used() if callable(pools_used) else {"pool": pool},
        **({"setting": setting} if setting else {}),
    }
    sizes = {"n_train": len(data.train), "n_dev": len(data.dev) if data.dev is not None else 0}
    if task.evaluate is not None:  # a task with its own metric (Spearman for STS-B)
        return {**task.evaluate(model, data, eval_batch), **common, **sizes}
    clean = evaluate(
        model, data.test, data.collate_fn, batch_size=eval_batch, num_classes=data.num_classes
    )
    cost = _cost(model, data, eval_batch, train)
    pass_s = cost.pop("pass_s")
    return {
        "accuracy": clean["accuracy"],
        "macro_f1": clean["macro_f1"],
        **{k: common[k] for k in ("train_time_s", "epochs", "best_dev_accuracy")},
        "inference_time_s": clean["time_s"],
        "throughput_samples_s": clean["n"] / pass_s if pass_s > 0 else None,
        **cost,
        **{k: common[k] for k in ("params", "trainable_params", "model_pools", "setting")
           if k in common},
        **_robustness(task, model, data, eval_batch),
        "chance_accuracy": clean["majority_accuracy"],
        **sizes,
        "n_test": clean["n"],
        "num_classes": data.num_classes,
    }


def _cost(model, data: TaskData, eval_batch: int, train: dict[str, Any]) -> dict[str, Any]:
    """Inference time of one pass over the test set (``pass_s``, at the same thread count for
    every run) and the peak memory of one forward pass."""
    from poolkit.experiments.cost import (
        DEFAULT_THROUGHPUT_THREADS,
        inference_clock,
        memory_batch,
        peak_forward_bytes,
        time_inference,
        torch_threads,
    )

    threads = int(train.get("throughput_threads") or DEFAULT_THROUGHPUT_THREADS)
    clock_name, clock = inference_clock(threads)
    with torch_threads(threads):  # every throughput figure at the same thread count
        pass_s, repeats = time_inference(
            model, data.test, data.collate_fn, batch_size=eval_batch, clock=clock
        )
    batch = memory_batch(data.test, data.collate_fn, eval_batch)
    return {
        "pass_s": pass_s,
        "throughput_threads": threads,
        "throughput_repeats": repeats,
        "throughput_clock": clock_name,
        "peak_memory_bytes": peak_forward_bytes(model, batch),
        "memory_batch_size": min(eval_batch, len(data.test)),
    }


def _robustness(task: Task, model, data: TaskData, eval_batch: int) -> dict[str, Any]:
    """Test accuracy under the task's perturbation at each level (``robustness``), and for
    shifts the share of predictions that stay the same (``shift_consistency``)."""
    import torch

    from poolkit.experiments.robustness import PERTURBATIONS, perturbation_label

    robustness: dict[str, float] = {}
    if task.perturbation:
        perturb_fn = PERTURBATIONS[task.perturbation]
        for level in task.levels:
            # Seeded by the level only: every pool and seed sees the same perturbed test set.
            generator = torch.Generator().manual_seed(1000 + int(round(float(level) * 100)))

            def perturb(batch, level=level, generator=generator):
                return perturb_fn(batch, level, generator, data)

            shifted = evaluate(model, data.test, data.collate_fn, batch_size=eval_batch,
                               num_classes=data.num_classes, perturb=perturb)
            robustness[perturbation_label(task.perturbation, level)] = shifted["accuracy"]
    if task.perturbation != "shift" or not task.levels:
        return {"robustness": robustness}
    from poolkit.experiments.robustness import shift_consistency

    max_shift = int(max(task.levels))
    consistency = shift_consistency(
        model, data.test, data.collate_fn, max_shift=max_shift, batch_size=eval_batch
    )
    return {"robustness": robustness, "shift_consistency": consistency,
            "consistency_max_shift": max_shift}


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    os.environ["POOLKIT_PROGRESS"] = "0"  # no nested progress bars from worker processes


def _run_job(task: Task, pool: str, seed: int, train: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        record = {"status": "ok", **run_one(task, pool, seed, train)}
    except Exception as exc:  # recorded and reported; the rest of the grid goes on
        record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    record["wall_time_s"] = time.perf_counter() - started
    return record


# ---------------------------------------------------------------------------------------------
# The grid


@dataclass
class GridOutcome:
    """What :func:`run_grid` did.

    ``records``: the finished records of the whole grid (this process's, earlier calls' and
    other processes' or shards'), in grid order; ``total``: the grid's size. ``reused``/``ran``/
    ``failed``/``busy`` count this call's share: runs found finished, run here, failed here, and
    skipped because another process was running them.
    """

    records: list[dict[str, Any]]
    reused: int
    ran: int
    failed: int
    jobs: int
    threads: int
    wall_time_s: float
    total: int = 0
    busy: int = 0
    shard: tuple[int, int] | None = None

    @property
    def unfinished(self) -> int:
        """Runs of the grid with no record yet (in flight elsewhere, or in another shard)."""
        return self.total - len(self.records)


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (1 <= K <= N) as ``(K, N)``: this process runs the K-th of N slices."""
    parts = str(text).split("/")
    try:
        index, count = (int(part) for part in parts)
    except ValueError:
        raise ValueError(f"shard ({text!r}) must be K/N with whole numbers, e.g. 1/4") from None
    if not 1 <= index <= count:
        raise ValueError(f"shard ({text!r}) must be K/N with 1 <= K <= N")
    return index, count


def shard_from_env(environ: dict[str, str] | None = None) -> tuple[int, int] | None:
    """The shard of a SLURM array task (``SLURM_ARRAY_TASK_ID`` among
    ``SLURM_ARRAY_TASK_COUNT``, counted from ``SLURM_ARRAY_TASK_MIN`` in steps of
    ``SLURM_ARRAY_TASK_STEP``), or ``None`` outside an array job."""
    environ = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in environ or "SLURM_ARRAY_TASK_COUNT" not in environ:
        return None
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
             "SLURM_ARRAY_TASK_STEP")
    try:
        defaults = zip(names, "0001", strict=True)
        task, count, first, step = (int(environ.get(name, d)) for name, d in defaults)
    except ValueError:
        shown = ", ".join(f"{n}={environ.get(n)!r}" for n in names if n in environ)
        raise ValueError(f"SLURM array variables must be whole numbers: {shown}") from None
    index = (task - first) // max(step, 1) + 1
    return parse_shard(f"{index}/{count}")


def shard_of(grid: list[tuple[str, int]], shard: tuple[int, int] | None) -> list[tuple[str, int]]:
    """The runs of ``grid`` in shard ``(K, N)``: every N-th run from the K-th (all for None)."""
    if shard is None:
        return list(grid)
    index, count = shard
    return list(grid)[index - 1 :: count]


def finished_records(spec: CompareSpec, records=None) -> dict[str, dict[str, Any]]:
    """The successful records of ``spec``'s grid already in ``spec.out_dir``, by run key."""
    wanted = {spec.run_key(pool, seed) for pool, seed in spec.grid()}
    records = ResultStore(spec.out_dir).records() if records is None else records
    return {
        record["run_key"]: record
        for record in records
        if record.get("status") == "ok" and record.get("run_key") in wanted
    }


def run_grid(
    spec: CompareSpec,
    *,
    jobs: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    console=None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    shard: tuple[int, int] | None = None,
) -> GridOutcome:
    """Run every (pool, seed) of ``spec`` (of its ``shard``, see :func:`shard_of`) that
    ``spec.out_dir`` holds no successful record of and no other process is running.

    Any number of processes may share ``spec.out_dir`` (see :mod:`poolkit.experiments.results`).
    Failed runs are recorded with ``status="failed"`` and their error, and retried by the next
    call.
    """
    started = time.perf_counter()
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    store = ResultStore(spec.out_dir)
    done = finished_records(spec, store.records())
    mine = shard_of(spec.grid(), shard)
    todo = [(pool, seed) for pool, seed in mine if spec.run_key(pool, seed) not in done]
    n_jobs, threads = plan_workers(len(todo), jobs, threads=threads)
    bar = _Progress(spec, len(todo), len(done), n_jobs, threads, enabled=progress, console=console)
    book = _Bookkeeper(spec, store, bar, (n_jobs, threads), on_record)
    book.tally["reused"] = len(mine) - len(todo)
    try:
        with bar:
            if todo and n_jobs == 1:
                _run_serial(spec, todo, threads, book.claim, book.finish, bar)
            elif todo:
                _run_parallel(spec, todo, n_jobs, threads, book.claim, book.finish, bar)
    finally:
        book.release_all()  # interrupted: the runs in flight are free again
    keys = [spec.run_key(pool, seed) for pool, seed in spec.grid()]
    return GridOutcome(
        records=grid_records(store.records(), keys),
        jobs=n_jobs,
        threads=threads,
        wall_time_s=time.perf_counter() - started,
        total=len(keys),
        shard=shard,
        **book.tally,
    )


class _Bookkeeper:
    """Claims runs before they start and records them when they finish (one grid, one call)."""

    def __init__(self, spec: CompareSpec, store: ResultStore, bar, workers, on_record) -> None:
        self.spec, self.store, self.bar, self.on_record = spec, store, bar, on_record
        self.jobs, self.threads = workers
        self.config = spec.config
        self.claims: dict[str, Any] = {}
        self.tally = {"reused": 0, "ran": 0, "failed": 0, "busy": 0}

    def claim(self, pool: str, seed: int) -> bool:
        """Whether this process runs (pool, seed) now: not running or finished elsewhere."""
        key = self.spec.run_key(pool, seed)
        lock = self.store.claim(key)
        if lock is None:
            self.tally["busy"] += 1
            self.bar.skipped(pool, seed, "running in another process")
            return False
        found = self.store.read_run(key)
        if found is not None and found.get("status") == "ok":  # finished meanwhile
            lock.release()
            self.tally["reused"] += 1
            self.bar.skipped(pool, seed, "finished by another process")
            return False
        self.claims[key] = lock
        return True

    def finish(self, pool: str, seed: int, outcome: dict[str, Any]) -> dict[str, Any]:
        """Save the record of a finished (or failed) run, free its claim, refresh the merge."""
        key = self.spec.run_key(pool, seed)
        record = {
            "task": self.spec.task.name,
            "pool": pool,
            "seed": seed,
            **outcome,
            "run_key": key,
            "config_id": self.spec.config_id,
            "config": self.config,
            "jobs": self.jobs,
            "threads": self.threads,
            "versions": versions(),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self.store.save(record)
        self.claims.pop(key).release()
        self.store.publish()
        self.tally["ran"] += 1
        self.tally["failed"] += record["status"] != "ok"
        if self.on_record is not None:
            self.on_record(record)
        return record

    def release_all(self) -> None:
        for lock in self.claims.values():
            lock.release()
        self.claims.clear()


def _run_serial(spec, todo, threads, claim, finish, bar) -> None:
    import torch

    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for pool, seed in todo:
            if claim(pool, seed):
                bar.starting(pool, seed)
                bar.advance(finish(pool, seed, _run_job(spec.task, pool, seed, spec.train)))
    finally:
        torch.set_num_threads(saved_threads)


def _run_parallel(spec, todo, n_jobs, threads, claim, finish, bar) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # forkserver: one fresh server process imports torch once and forks the workers (no thread
    # pool inherited from this process, no torch import per worker); spawn where there is none.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "poolkit.experiments.runner"])
    else:
        context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(
        max_workers=n_jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)
    )
    restore = _interrupt_on_sigterm()
    pending = {}
    queue = list(todo)
    try:
        while queue or pending:
            while queue and len(pending) < n_jobs:
                pool, seed = queue.pop(0)
                if not claim(pool, seed):
                    continue
                future = executor.submit(_run_job, spec.task, pool, seed, spec.train)
                pending[future] = (pool, seed)
                bar.starting(pool, seed)
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                pool, seed = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # a worker died (killed, out of memory)
                    outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                bar.advance(finish(pool, seed, outcome))
    except BaseException:
        # Interrupted: stop the runs in flight now (their lines were never written, so the next
        # call redoes them) instead of waiting minutes for them to finish.
        for process in list(getattr(executor, "_processes", {}).values()):
            process.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        executor.shutdown(wait=True)
    finally:
        restore()


def _interrupt_on_sigterm():
    """Turn SIGTERM into KeyboardInterrupt while a grid runs (main thread only), so that a
    killed ``compare`` stops its workers too; returns a function restoring the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


class _Progress:
    """A rich progress bar on stderr: runs done / total, the runs in flight, the last result."""

    def __init__(self, spec, todo, reused, jobs, threads, *, enabled=True, console=None):
        self.enabled = enabled and os.environ.get("POOLKIT_PROGRESS", "1") != "0"
        self.spec = spec
        self.todo = todo
        self.reused = reused
        self.jobs = jobs
        self.threads = threads
        self.console = console
        self.running: list[str] = []
        self.progress = None
        self.done = 0

    def __enter__(self):
        if not self.enabled:
            return self
        from poolkit._console import progress_bar, stderr_console

        console = self.console or stderr_console()
        if self.reused:
            console.print(
                f"[dim]{self.spec.task.name}: {self.reused} finished run(s) found in "
                f"{self.spec.out_dir / RESULTS_FILE}, not repeated[/dim]"
            )
        self.progress = progress_bar(
            "[bold]{task.fields[name]}[/bold]", "{task.fields[status]}", console=console,
            transient=False,
        )
        self.progress.__enter__()
        self.bar = self.progress.add_task(
            "runs",
            total=max(self.todo, 1) if self.todo else 1,
            completed=0 if self.todo else 1,
            name=f"{self.spec.task.name} ({self.jobs} job(s) x {self.threads} thread(s))",
            status="",
        )
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False

    def starting(self, pool: str, seed: int) -> None:
        self.running.append(f"{pool}/{seed}")
        self._update("")

    def skipped(self, pool: str, seed: int, why: str) -> None:
        """A run of the plan that this process does not run after all."""
        self.done += 1
        if self.progress is not None:
            self.progress.advance(self.bar)
        self._update(f"[dim]{pool}/{seed}: {why}[/dim]")

    def advance(self, record: dict[str, Any]) -> None:
        label = f"{record['pool']}/{record['seed']}"
        if label in self.running:
            self.running.remove(label)
        metric = self.spec.task.metric
        if record["status"] == "ok" and metric == "accuracy":
            last = f"{label}: acc {100 * record['accuracy']:.1f}%"
        elif record["status"] == "ok":
            last = f"{label}: {metric} {100 * record[metric]:.1f}"
        else:
            last = f"[red]{label} failed[/red]"
        self.done += 1
        if self.progress is not None:
            self.progress.advance(self.bar)
            if not self.progress.console.is_terminal:  # a log: one line per run, no live bar
                self.progress.console.print(
                    f"{self.spec.task.name}: run {self.done}/{self.todo} {last}"
                    f" ({record.get('wall_time_s', 0):.1f} s)"
                )
        self._update(last)

    def _update(self, last: str) -> None:
        if self.progress is None:
            return
        running = ", ".join(self.running[:4])
        parts = [last, f"[dim]running {running}[/dim]" if running else ""]
        status = "  ".join(part for part in parts if part)
        self.progress.update(self.bar, status=status)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed (for the summary), ``poolkit`` + arguments."""
    import shlex

    args = list(sys.argv[1:] if argv is None else argv)
    return "poolkit " + " ".join(shlex.quote(a) for a in args)
