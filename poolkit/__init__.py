"""poolkit: pooling in deep learning, from the formula to fine-tuned large models.

Layers, imports flowing downward only::

    poolkit.cli            command line
    poolkit.experiments    compare pooling types over seeds, tables, plots
    poolkit.train          trainer, metrics, checkpoints, resume, DDP
    poolkit.models         TextCNN, ConvNet, transformer pooling heads, Embedder
    poolkit.data           text and image data sets, tokenisers, splits
    poolkit.nn             PyTorch pooling layers, sequence pooling, the factory
    poolkit.numpy          the from-scratch NumPy engine (no torch)
    poolkit.geometry       pure argument handling and window arithmetic

Importing ``poolkit`` imports nothing heavy; import the layer you need.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
