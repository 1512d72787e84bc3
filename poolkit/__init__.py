"""poolkit: pooling in deep learning, from the formula to fine-tuned large models.

Layers, top first; imports flow downward only: a module imports from its own layer and the
layers listed below it, never from one above (``tests/test_layers.py`` reads this list and
checks every import, function-level ones included; docs/architecture.md says more)::

    poolkit.cli            command line (poolkit.__main__ belongs here)
    poolkit.experiments    compare pooling types over seeds, tables, plots
    poolkit.train          trainer, metrics, checkpoints, resume, DDP
    poolkit.models         TextCNN, ConvNet, transformer pooling heads, Embedder
    poolkit.data           text and image data sets, tokenisers, splits
    poolkit.keras          the same pooling layers for Keras 3 (keras.ops, any backend)
    poolkit.nn             PyTorch pooling layers, sequence pooling, the factory
    poolkit.numpy          the from-scratch NumPy engine (no torch)
    poolkit.pools          pure: the catalogue of pooling types (names, titles, formulas)
    poolkit.geometry       pure argument handling and window arithmetic

Every other top-level module (``poolkit.errors``, ``poolkit._console``…) is a leaf below all
of them: anything may import it and it imports only other leaves.

Importing ``poolkit`` imports nothing heavy; import the layer you need.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
