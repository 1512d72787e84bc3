"""What a run of ``compare`` costs beside its accuracy: peak memory and timed threads.

- :func:`peak_forward_bytes`: the most bytes of tensors that one forward pass holds alive at once,
  counting only the tensors it allocates (not the weights, not the input batch). Counted op by
  op, not sampled: a :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees every ATen
  op's outputs, adds the bytes of each storage it has not seen yet, and subtracts them when the
  last tensor on that storage is freed. The same model and batch give the same number on every
  run and machine (the process RSS would not: allocator caching, other threads, the page size).
  PyTorch has no CPU counterpart of ``torch.cuda.max_memory_allocated``; the profiler's memory
  events attach allocations to ops and need the full trace to pair them with frees.
- :func:`time_inference` and :func:`inference_clock`: the fastest of repeated passes over the
  test set; at one thread timed by the thread's CPU time, so other processes on the same cores
  (other jobs of the grid, other users) do not slow the figure down.
- :func:`torch_threads`: run a block with a given number of torch threads, restoring the old
  count, so that every throughput figure of a grid is timed with the same count whatever
  ``--jobs``/``--threads`` trained it.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> peak_forward_bytes(model, {"input": torch.zeros(3, 4)})  # 3x8 + 3x8 float32 alive
    192
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator
from typing import Any

#: Throughput is timed with this many torch threads unless ``--throughput-threads`` says more.
DEFAULT_THROUGHPUT_THREADS = 1


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block, the previous count after it."""
    import torch

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads ({threads!r}) must be a positive integer")
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _storage_key(tensor) -> tuple[int, int] | None:
    storage = tensor.untyped_storage()
    nbytes = storage.nbytes()
    return (storage.data_ptr(), nbytes) if nbytes else None


def _live_bytes_mode(existing: set[int]):
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveBytes(TorchDispatchMode):
        """Tracks the bytes of the storages that ops allocate while the mode is on."""

        def __init__(self) -> None:
            super().__init__()
            self.references: dict[int, int] = {}  # storage address -> tensors alive on it
            self.sizes: dict[int, int] = {}
            self.live = 0
            self.peak = 0

        def _release(self, address: int) -> None:
            self.references[address] -= 1
            if self.references[address] == 0:
                del self.references[address]
                self.live -= self.sizes.pop(address)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            import torch

            out = func(*args, **(kwargs or {}))
            for tensor in tree_flatten(out)[0]:
                if not isinstance(tensor, torch.Tensor):
                    continue
                key = _storage_key(tensor)
                if key is None or key[0] in existing:
                    continue  # empty, or a view of a weight or of the input
                address, nbytes = key
                if address not in self.references:
                    self.references[address] = 0
                    self.sizes[address] = nbytes
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                self.references[address] += 1
                weakref.finalize(tensor, self._release, address)
            return out

    return LiveBytes()


def peak_forward_bytes(model, inputs: dict[str, Any]) -> int:
    """Peak bytes of the tensors one ``model(**inputs)`` allocates and holds at once
    (inference mode; weights, buffers and ``inputs`` themselves are not counted).

    Deterministic: it counts storages op by op (see the module docstring), so it does not depend
    on the allocator, the thread count or the machine. The output counts while it is alive.
    """
    import torch

    tensors = [*model.parameters(), *model.buffers()]
    tensors += [value for value in inputs.values() if isinstance(value, torch.Tensor)]
    existing = {key[0] for key in map(_storage_key, tensors) if key is not None}
    model.eval()
    with torch.inference_mode():
        mode = _live_bytes_mode(existing)
        with mode:
            output = model(**inputs)
        del output
    return int(mode.peak)


def memory_batch(dataset, collate_fn, batch_size: int) -> dict[str, Any]:
    """The model inputs of the first ``batch_size`` examples of ``dataset`` (no labels): the
    fixed batch whose forward pass :func:`peak_forward_bytes` measures."""
    return _inputs(dataset, collate_fn, range(min(int(batch_size), len(dataset))))


def _inputs(dataset, collate_fn, indices) -> dict[str, Any]:
    batch = collate_fn([dataset[i] for i in indices])
    return {key: value for key, value in batch.items() if key != "labels"}

def inference_clock(threads: int) -> tuple[str, Any]:
    """``(name, clock)`` to time inference with ``threads`` torch threads: with one thread, the
    CPU time of the calling thread (``"cpu"``: torch runs its ops on that thread, and the time
    other processes take from the core is not counted, so a busy machine measures the same
    as an idle one); with more, wall time (``"wall"``: CPU time would add up the threads)."""
    return ("cpu", time.thread_time) if threads == 1 else ("wall", time.perf_counter)


def time_inference(
    model, dataset, collate_fn, *, batch_size: int = 256, budget_s: float = 1.0,
    max_repeats: int = 20, clock=time.perf_counter,
) -> tuple[float, int]:
    """``(seconds, repeats)``: the fastest of repeated forward passes over the whole ``dataset``
    (batches collated once, before the clock starts), repeated while the passes so far took less
    than ``budget_s`` by ``clock`` (at least once, at most ``max_repeats`` times).

    The fastest pass is the one least disturbed by other processes (the usual estimator of
    ``timeit``); a small model gets many passes, a large one a single long pass.
    """
    import torch

    batches = [
        _inputs(dataset, collate_fn, range(first, min(first + batch_size, len(dataset))))
        for first in range(0, len(dataset), batch_size)
    ]
    model.eval()
    fastest, spent, repeats = float("inf"), 0.0, 0
    with torch.inference_mode():
        while repeats < max_repeats and (repeats == 0 or spent < budget_s):
            start = clock()
            for batch in batches:
                model(**batch)
            seconds = clock() - start
            fastest, spent, repeats = min(fastest, seconds), spent + seconds, repeats + 1
    return fastest, repeats
