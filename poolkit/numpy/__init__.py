r"""poolkit.numpy: every pooling op of ``torch.nn.functional``, from scratch in NumPy.

Same names, arguments, defaults and semantics as PyTorch (to float tolerance, with identical
indices), no torch import. For every forward ``f`` there is ``f_backward(grad_output, input,
*same arguments)`` returning the gradient with respect to ``input``.

==========================  =====================================================
forward (and ``_backward``)  what it computes
==========================  =====================================================
``max_pool{1,2,3}d``         max over each window (``return_indices`` for unpooling)
``avg_pool{1,2,3}d``         mean over each window (``count_include_pad``,
                             ``divisor_override`` for 2-d and 3-d)
``lp_pool{1,2,3}d``          :math:`(\sum x^p)^{1/p}` over each window
``adaptive_max_pool{1,2,3}d`` max over bins that fit a given output size
``adaptive_avg_pool{1,2,3}d`` mean over those bins
``fractional_max_pool{2,3}d`` max over pseudo-randomly placed windows
``max_unpool{1,2,3}d``       the partial inverse of max pooling
``roi_pool``, ``roi_align``, each box of a feature map to a fixed-size feature
``ps_roi_align``             (``torchvision.ops``' detection ops, :mod:`poolkit.numpy.roi`)
==========================  =====================================================

Formulas, output sizes, index semantics and worked examples: ``docs/numpy-engine.md``. The
windowing primitive every op reduces on is :mod:`poolkit.numpy.windows` (the families of
:mod:`poolkit.numpy.families` compose those ops); :mod:`poolkit.numpy.examples` holds the
worked examples as data. Optional numba kernels (``poolkit[fast]``) speed up the windowed
max/avg ops; choose with ``POOLKIT_NUMPY_BACKEND=auto|numpy|numba`` (see
:mod:`poolkit.numpy._backend`). They run on :func:`get_num_threads` threads (set with
:func:`set_num_threads`, default ``NUMBA_NUM_THREADS`` or the CPUs available); max and average
pooling, forward and backward, take ``out=`` to write into a buffer of yours.

Example::

    >>> import numpy as np
    >>> import poolkit.numpy as pnp
    >>> x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    >>> pnp.max_pool2d(x, 2)[0, 0]
    array([[ 6.,  8.],
           [14., 16.]])
    >>> pnp.avg_pool2d(x, 2)[0, 0]
    array([[ 3.5,  5.5],
           [11.5, 13.5]])
"""

from __future__ import annotations

from poolkit.numpy import families  # noqa: F401 -- families PyTorch lacks (nn engineer)
from poolkit.numpy._backend import get_num_threads, set_backend, set_num_threads, use_backend
from poolkit.numpy.adaptive import (
    adaptive_avg_pool1d,
    adaptive_avg_pool1d_backward,
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool3d,
    adaptive_avg_pool3d_backward,
    adaptive_max_pool1d,
    adaptive_max_pool1d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    adaptive_max_pool3d,
    adaptive_max_pool3d_backward,
)
from poolkit.numpy.fractional import (
    fractional_max_pool2d,
    fractional_max_pool2d_backward,
    fractional_max_pool3d,
    fractional_max_pool3d_backward,
)
from poolkit.numpy.pooling import (
    avg_divisor,
    avg_pool1d,
    avg_pool1d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    avg_pool3d,
    avg_pool3d_backward,
    lp_pool1d,
    lp_pool1d_backward,
    lp_pool2d,
    lp_pool2d_backward,
    lp_pool3d,
    lp_pool3d_backward,
    max_pool1d,
    max_pool1d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_pool3d,
    max_pool3d_backward,
)
from poolkit.numpy.roi import (
    ps_roi_align,
    ps_roi_align_backward,
    roi_align,
    roi_align_backward,
    roi_pool,
    roi_pool_backward,
)
from poolkit.numpy.unpool import (
    max_unpool1d,
    max_unpool1d_backward,
    max_unpool2d,
    max_unpool2d_backward,
    max_unpool3d,
    max_unpool3d_backward,
)

#: The ``torch.nn.functional`` pooling ops this engine reproduces (forward names).
FUNCTIONAL_OPS = (
    "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "fractional_max_pool2d", "fractional_max_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
)

__all__ = [
    "max_pool1d",
    "max_pool1d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool3d",
    "max_pool3d_backward",
    "avg_pool1d",
    "avg_pool1d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool3d",
    "avg_pool3d_backward",
    "lp_pool1d",
    "lp_pool1d_backward",
    "lp_pool2d",
    "lp_pool2d_backward",
    "lp_pool3d",
    "lp_pool3d_backward",
    "adaptive_max_pool1d",
    "adaptive_max_pool1d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool3d",
    "adaptive_max_pool3d_backward",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d",
    "adaptive_avg_pool3d_backward",
    "fractional_max_pool2d",
    "fractional_max_pool2d_backward",
    "fractional_max_pool3d",
    "fractional_max_pool3d_backward",
    "max_unpool1d",
    "max_unpool1d_backward",
    "max_unpool2d",
    "max_unpool2d_backward",
    "max_unpool3d",
    "max_unpool3d_backward",
    "roi_pool",
    "roi_pool_backward",
    "roi_align",
    "roi_align_backward",
    "ps_roi_align",
    "ps_roi_align_backward",
    "FUNCTIONAL_OPS",
    "avg_divisor",
    "set_backend",
    "set_num_threads",
    "get_num_threads",
    "use_backend",
]
