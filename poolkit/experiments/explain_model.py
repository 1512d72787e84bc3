"""Why did the model decide that? Max-like pooling points at the input that decided.

Pooling is usually called the opaque part of a CNN; max pooling is in fact the easiest place to
look: each pooled feature *is* one input position's activation (its "winner").

**TextCNN** (:func:`explain_text`): every feature :math:`z_j` of the classifier is the activation
of filter :math:`j` at the time step that won the pooling over time, so the n-gram under the
filter at that step is what the feature saw. Its push on class :math:`c` is its share of the
logit,

.. math::

    \\text{logit}_c = b_c + \\sum_j W_{c,j}\\, z_j, \\qquad \\text{push}_{j,c} = W_{c,j}\\, z_j,

(dropout is off in eval mode). Features are ranked by their push on the predicted class.

**ConvNet** (:func:`explain_image`): each max-like downsampling layer picks one winner per
channel and window. Counting, for every input pixel, how many windows it won gives a map of
where the network looked. A winner of a deeper layer is a position of the previous layer's output,
i.e. one of its windows; it is traced back through that window to the position that won it for
most channels, down to a pixel. Each layer's map sums to its number of windows
(channels x output height x output width).

Both work for pooling types with winners (``pool_info(name).has_winners``: max, k-max…) and say
plainly when the model's pooling has none (average: every position contributes a share).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class NoWinners:
    """The model's pooling has no winners; ``message`` says why (a normal result, not an error)."""

    pool: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"has_winners": False, "pool": self.pool, "message": self.message}


def _no_winners_message(pool: str, where: str) -> str:
    from poolkit.nn import pool_info

    title = pool_info(pool).title if pool else "no pooling"
    return (
        f"This model pools {where} with {pool!r} ({title}), which has no winners: every position "
        f"of a window contributes a share of the output, so no single "
        f"{'n-gram' if where == 'over time' else 'pixel'} decided a feature. Explanations by "
        f"winners need a max-like pooling (e.g. a model trained with --pool max or kmax)."
    )


# ---------------------------------------------------------------------------------------------
# TextCNN: which n-gram won max-over-time pooling


@dataclass
class TextExplanation:
    """Why a TextCNN predicted what it did for one text (:func:`explain_text`'s answer).

    Attributes:
        text: the text explained.
        tokens: its tokens, as the model's encoder splits them (cut at ``max_length``).
        unknown: positions of tokens not in the vocabulary (read as ``<unk>``).
        pool: the model's pooling over time (``config.pool``).
        label_names: the class names, in class-index order.
        probabilities: softmax of the logits, one per class.
        predicted: index of the predicted class (:attr:`predicted_label` is its name).
        logits: the classifier's output, one per class.
        bias: the classifier's bias, one per class; each logit is its bias plus the pushes of
            all features.
        features: the ``top`` strongest features, by push on the predicted class: ``rank``,
            ``width``, ``filter``, the window's ``position`` (first token; negative in the
            leading padding), ``ngram`` and ``ngram_text``, ``activation``, and ``push`` (its
            share ``W[c, j] * z_j`` of each class's logit, by class name); with ``"shares"``
            one entry per n-gram with its ``share`` of the average instead of a filter.
        truncated: the text had more tokens than the encoder's ``max_length``.
        explained_by: ``"winners"`` (max-like pooling: each feature is one n-gram's
            activation) or ``"shares"`` (average pooling: every n-gram's part of the mean).
    """

    text: str
    tokens: list[str]
    unknown: list[int]  # positions of tokens not in the vocabulary (read as <unk>)
    pool: str
    label_names: list[str]
    probabilities: list[float]
    predicted: int
    logits: list[float]
    bias: list[float]
    features: list[dict[str, Any]] = field(default_factory=list)  # ranked, strongest first
    truncated: bool = False
    explained_by: str = "winners"  # or "shares": average pooling, every n-gram's part

    @property
    def predicted_label(self) -> str:
        """The name of the predicted class."""
        return self.label_names[self.predicted]

    def to_json(self) -> dict[str, Any]:
        return {
            "has_winners": self.explained_by == "winners",
            "explained_by": self.explained_by,
            "text": self.text,
            "tokens": self.tokens,
            "unknown_positions": self.unknown,
            "pool": self.pool,
            "predicted": self.predicted_label,
            "probabilities": dict(zip(self.label_names, self.probabilities, strict=True)),
            "logits": dict(zip(self.label_names, self.logits, strict=True)),
            "bias": dict(zip(self.label_names, self.bias, strict=True)),
            "features": self.features,
            "truncated": self.truncated,
        }


def _winner_positions(activations: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """Time step of each pooled value: ``activations`` ``(F, L)``, ``pooled`` ``(F, m)`` ->
    positions ``(F, m)``. A value is matched to the earliest unused step holding exactly it, after
    the previous slot's step when possible (k-max keeps time order); -1 where none holds it
    (k-max zero-padding of a short text)."""
    filters, slots = pooled.shape
    positions = np.full((filters, slots), -1, dtype=np.int64)
    for j in range(filters):
        used: set[int] = set()
        previous = -1
        for s in range(slots):
            hits = np.flatnonzero(activations[j] == pooled[j, s])
            hits = [int(t) for t in hits if int(t) not in used]
            if not hits:
                continue
            later = [t for t in hits if t > previous]
            chosen = later[0] if later else hits[0]
            positions[j, s] = chosen
            used.add(chosen)
            previous = chosen
    return positions


def explain_text(model, encoder, text: str, label_names: list[str] | None = None, top: int = 5):
    """Explain a :class:`poolkit.models.TextCNN`'s prediction for ``text``.

    Returns a :class:`TextExplanation` whose ``features`` (the ``top`` strongest, by push on the
    predicted class) name the filter width, filter index, the winning window's ``position`` (the
    index of its first token; negative when it starts in the padding before the text), the
    n-gram under the filter there (``<pad>`` for padding), its activation, and its push on every
    class; or :class:`NoWinners` when the model's pooling over time has none. The feature maps
    are read from the model's own pooling layers (forward hooks), so the explanation follows the
    model's padding rules.

    ``encoder``: the checkpoint's :class:`poolkit.data.TextEncoder` (tokeniser + vocabulary).
    """
    import torch
    import torch.nn.functional as F

    from poolkit.nn import pool_info

    config = model.config
    shares = config.pool == "avg"  # linear: the logit splits exactly over the n-grams
    if not pool_info(config.pool).has_winners and not shares:
        return NoWinners(config.pool, _no_winners_message(config.pool, "over time"))
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top ({top!r}) must be a positive integer")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    tokens = list(encoder.tokenizer(text))
    truncated = encoder.max_length is not None and len(tokens) > encoder.max_length
    if truncated:
        tokens = tokens[: encoder.max_length]
    if not tokens:
        raise ValueError(f"text ({text!r}) has no tokens after tokenisation")
    ids = encoder.vocab.encode(tokens)
    unknown = [t for t, i in enumerate(ids) if i == encoder.vocab.unk_id]
    logits, captured = _forward_capturing(model, model.pools, torch.tensor([ids]))
    probabilities = F.softmax(logits, dim=-1)
    features = (_share_features if shares else _text_features)(model, captured, tokens)
    predicted = int(probabilities.argmax())
    names = list(label_names or [str(c) for c in range(len(logits))])
    features.sort(key=lambda f: -f["push"][predicted])
    for rank, feature in enumerate(features, start=1):
        feature["rank"] = rank
        feature["push"] = dict(zip(names, feature["push"], strict=True))
    return TextExplanation(
        text=text,
        tokens=tokens,
        unknown=unknown,
        pool=config.pool,
        label_names=names,
        probabilities=[float(p) for p in probabilities],
        predicted=predicted,
        logits=[float(v) for v in logits],
        bias=[float(v) for v in model.classifier.bias.detach()],
        features=features[:top],
        truncated=truncated,
        explained_by="shares" if shares else "winners",
    )


def _forward_capturing(model, modules, inputs) -> tuple[Any, list[tuple]]:
    """The model's logits for the one example in ``inputs`` and, for each of ``modules``, its
    ``(input, output)`` in that forward pass. Forward hooks, so whatever the model does before
    pooling (such as padding) is read, not re-implemented here."""
    import torch

    captured: list[tuple] = [()] * len(modules)

    def hook_for(number: int):
        def hook(module, args, out):
            captured[number] = (args[0].detach(), out.detach())

        return hook

    hooks = [module.register_forward_hook(hook_for(i)) for i, module in enumerate(modules)]
    model.eval()
    fused = getattr(model, "fused_max", None)  # a TextCNN's fused max skips its pool modules
    if fused is not None:
        model.fused_max = False
    try:
        with torch.no_grad():
            logits = model(inputs)[0]  # (num_classes,)
    finally:
        for hook in hooks:
            hook.remove()
        if fused is not None:
            model.fused_max = fused
    return logits, captured


def _text_features(model, captured: list[tuple], tokens: list[str]) -> list[dict[str, Any]]:
    """One entry per pooled feature of a TextCNN: the winning window's n-gram, its activation
    and its push on every class (classifier weight times activation)."""
    config = model.config
    # Time step t of a feature map covers the model's (padded) input positions t .. t + w - 1;
    # with Kim's edge padding, max(filter_widths) - 1 pads come before the first token.
    lead = model.min_length - 1 if getattr(config, "edge_padding", False) else 0
    weight = model.classifier.weight.detach()  # (num_classes, features)
    features, offset = [], 0
    for width, pool, (maps, pooled) in zip(
        config.filter_widths, model.pools, captured, strict=True
    ):
        mult = pool.feat_mult()
        pooled = pooled[0].reshape(config.num_filters, mult)  # channel-major (F, m)
        steps = _winner_positions(maps[0].numpy(), pooled.numpy())  # maps[0]: (F, L)
        for j in range(config.num_filters):
            for slot in range(mult):
                index = offset + j * mult + slot
                value = float(pooled[j, slot])
                step = int(steps[j, slot])
                window = [step - lead + k for k in range(width)] if step >= 0 else []
                gram = [tokens[t] if 0 <= t < len(tokens) else "<pad>" for t in window]
                features.append({
                    "feature": index,
                    "width": int(width),
                    "filter": j,
                    "slot": slot,
                    "position": step - lead if step >= 0 else None,
                    "ngram": gram,
                    "ngram_text": " ".join(t for t in gram if t != "<pad>"),
                    "activation": value,
                    "push": [float(w) * value for w in weight[:, index]],
                })
        offset += config.num_filters * mult
    return features


def _share_features(model, captured: list[tuple], tokens: list[str]) -> list[dict[str, Any]]:
    """Average pooling over time: one entry per n-gram (filter width, time step), its share of
    every feature (activation / number of windows) and its push on each class,
    ``sum_j W_cj a_jt / L``; the pushes of all n-grams and the bias add up to the logits."""
    config = model.config
    lead = model.min_length - 1 if getattr(config, "edge_padding", False) else 0
    weight = model.classifier.weight.detach().double()  # (num_classes, features)
    features, offset = [], 0
    for width, (maps, pooled) in zip(config.filter_widths, captured, strict=True):
        activations = maps[0].double()  # (F, L): the windows the pool saw
        if not np.allclose(activations.mean(-1).numpy(), pooled[0].double().numpy(), atol=1e-5):
            raise ValueError("the average pool's output is not the mean of the maps it saw; "
                             "cannot split it into n-gram shares")
        # The model averages over the windows that hold a token (a padded short text's other
        # windows are zero and do not count): window t covers tokens t - lead .. + width - 1.
        real = [t for t in range(activations.shape[-1])
                if t - lead <= len(tokens) - 1 and t - lead + width - 1 >= 0]
        steps = len(real)
        block = weight[:, offset : offset + config.num_filters]  # (classes, F)
        pushes = (block @ activations / steps).T  # (L, classes)
        for step in real:
            window = [step - lead + k for k in range(width)]
            gram = [tokens[t] if 0 <= t < len(tokens) else "<pad>" for t in window]
            features.append({
                "width": int(width),
                "position": step - lead,
                "ngram": gram,
                "ngram_text": " ".join(t for t in gram if t != "<pad>"),
                "share": 1.0 / steps,
                "activation": float(activations[:, step].mean()),
                "push": [float(v) for v in pushes[step]],
            })
        offset += config.num_filters
    return features


# ---------------------------------------------------------------------------------------------
# ConvNet: which pixels won the pooling windows


@dataclass
class ImageExplanation:
    """Where a ConvNet looked for one image: the pixels its max-like pools picked
    (:func:`explain_image`'s answer).

    Attributes:
        image: the input image ``(C, H, W)``.
        layers: one dict per pooling layer with winners, downsampling layers first, then the
            global pool when it has them: ``layer`` (``"pool 1"``... or ``"global"``),
            ``pool``, ``input_size``, ``output_size``, ``channels``, ``windows`` (how many
            windows it has: channels x output positions) and ``counts``, an ``(H, W)`` map of
            how many of them each pixel won (traced back through the earlier layers; it sums
            to ``windows``).
        label_names: the class names, in class-index order.
        probabilities: softmax of the logits, one per class.
        predicted: index of the predicted class.
        notes: remarks (layers that have no winners and are not mapped).
    """

    image: np.ndarray  # (C, H, W)
    layers: list[dict[str, Any]]  # per pooling layer: name, pool, windows, counts (H, W)
    label_names: list[str]
    probabilities: list[float]
    predicted: int
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> np.ndarray:
        """``(H, W)``: the sum of every layer's ``counts`` (zeros when no layer is mapped)."""
        maps = [layer["counts"] for layer in self.layers]
        return np.sum(maps, axis=0) if maps else np.zeros(self.image.shape[1:], dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        return {
            "has_winners": True,
            "image_shape": list(self.image.shape),
            "predicted": self.label_names[self.predicted],
            "probabilities": dict(zip(self.label_names, self.probabilities, strict=True)),
            "layers": [
                {
                    **{k: v for k, v in layer.items() if k != "counts"},
                    "counts": layer["counts"].tolist(),
                }
                for layer in self.layers
            ],
            "total": self.total.tolist(),
            "notes": self.notes,
        }


def _window_winners(module, layer_input, layer_output) -> np.ndarray:
    """Flat index (in the layer input's plane) of each window's winner: ``(C, Ho, Wo)``.

    Windows come from the module's ``kernel_size``/``stride``/``padding``/``dilation``; the winner
    is the first position of the window whose value equals the output (torch's tie rule),
    or the window's maximum when none equals it exactly.
    """
    import torch
    import torch.nn.functional as F

    _, channels, height, width = layer_input.shape
    out_h, out_w = layer_output.shape[-2:]
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride or module.kernel_size)
    padding = _pair(getattr(module, "padding", 0) or 0)
    dilation = _pair(getattr(module, "dilation", 1) or 1)
    # Padding positions get index -1 and value -inf so that they never win.
    index_plane = torch.arange(height * width, dtype=torch.float64).reshape(1, 1, height, width)
    index_plane = F.pad(index_plane, (padding[1], padding[1], padding[0], padding[0]), value=-1)
    values = F.pad(
        layer_input.double(), (padding[1], padding[1], padding[0], padding[0]), value=float("-inf")
    )
    unfold = {"kernel_size": kernel, "stride": stride, "dilation": dilation}
    window_index = F.unfold(index_plane, **unfold)[0]  # (k, L)
    window_values = F.unfold(values, **unfold)[0].reshape(channels, -1, window_index.shape[1])
    count = window_index.shape[1]
    if count != out_h * out_w:
        raise ValueError(
            f"cannot map the windows of {module.__class__.__name__} ({count}) onto its output "
            f"({out_h}x{out_w}); only regular windows are supported"
        )
    target = layer_output.double().reshape(channels, 1, count)
    equal = (window_values == target) & (window_index[None] >= 0)
    first_equal = equal.float().argmax(dim=1)  # (C, L)
    fallback = window_values.argmax(dim=1)
    chosen = torch.where(equal.any(dim=1), first_equal, fallback)
    winners = window_index.gather(0, chosen)  # (C, L): winner[c, l] = index[chosen[c, l], l]
    return winners.long().reshape(channels, out_h, out_w).numpy()


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def explain_image(model, image, label_names: list[str] | None = None) -> ImageExplanation:
    """Win maps of a :class:`poolkit.models.ConvNet` for one ``image`` ``(C, H, W)``.

    Returns an :class:`ImageExplanation` with one map per max-like pooling layer (``counts``,
    the input's ``(H, W)`` shape, summing to that layer's number of windows), or
    :class:`NoWinners` when none of the model's pooling layers has winners.
    """
    import torch

    from poolkit.nn import pool_info

    config = model.config
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] != config.in_channels:
        raise ValueError(
            f"image must be ({config.in_channels}, H, W) for this model, got shape {image.shape}"
        )
    down_winners = pool_info(config.pool).has_winners
    head_winners = pool_info(config.global_pool).has_winners if config.global_pool else False
    if not down_winners and not head_winners:
        return NoWinners(config.pool, _no_winners_message(config.pool, "its windows"))
    # Pool layers in order: the downsampling pools of model.features, then the head.
    pools = [
        m
        for m in model.features
        if not isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ReLU))
    ]
    logits, captured = _forward_capturing(
        model, [*pools, model.head_pool], torch.from_numpy(image)[None]
    )
    probabilities = torch.softmax(logits, dim=-1)
    layers, notes, trace_to_pixel = _downsampling_win_maps(
        config.pool, pools, captured, image.shape[1:], down_winners
    )
    if head_winners and trace_to_pixel is not None:
        layers.append(_head_win_map(config.global_pool, captured[len(pools)], trace_to_pixel,
                                    image.shape[1:]))
    elif config.global_pool and not head_winners:
        notes.append(f"the global pool ({config.global_pool!r}) has no winners (not mapped)")
    names = list(label_names or [str(c) for c in range(len(logits))])
    return ImageExplanation(
        image=image,
        layers=layers,
        label_names=names,
        probabilities=[float(p) for p in probabilities],
        predicted=int(probabilities.argmax()),
        notes=notes,
    )


def _downsampling_win_maps(pool: str, pools, captured, shape, has_winners: bool):
    """Win maps of the downsampling pools, traced back to the image's pixels:
    ``(layers, notes, trace)``; ``trace`` maps each position of the last pool's output to the
    pixel it traces back to, or is None where tracing broke off."""
    height, width = shape
    layers: list[dict[str, Any]] = []
    notes: list[str] = []
    # trace[l]: for each flat position of layer l's output, the image pixel it traces back to.
    trace_to_pixel = np.arange(height * width)  # layer 0's input is the image resolution
    traceable = True
    for level, module in enumerate(pools):
        layer_input, layer_output = captured[level]
        in_h, in_w = layer_input.shape[-2:]
        if trace_to_pixel is None or trace_to_pixel.size != in_h * in_w:
            traceable = False
        if not has_winners:
            notes.append(
                f"downsampling pool {level + 1} ({pool!r}) has no winners; "
                "later winners cannot be traced to pixels through it"
            )
            traceable = False
            break
        winners = _window_winners(module, layer_input, layer_output)  # (C, Ho, Wo) flat in-plane
        counts = np.zeros(height * width, dtype=np.int64)
        if traceable:
            np.add.at(counts, trace_to_pixel[winners.ravel()], 1)
        layers.append(
            {
                "layer": f"pool {level + 1}",
                "pool": pool,
                "input_size": [int(in_h), int(in_w)],
                "output_size": list(layer_output.shape[-2:]),
                "channels": int(winners.shape[0]),
                "windows": int(winners.size),
                "counts": counts.reshape(height, width),
            }
        )
        # Each output position -> the input position that won its window for most channels.
        channels = winners.shape[0]
        flat = winners.reshape(channels, -1)  # (C, Ho*Wo)
        majority = np.array([np.bincount(flat[:, o]).argmax() for o in range(flat.shape[1])])
        trace_to_pixel = trace_to_pixel[majority] if traceable else None
    return layers, notes, trace_to_pixel if traceable else None


def _head_win_map(pool: str, head_capture, trace_to_pixel, shape) -> dict[str, Any]:
    """The global pool's win map: each channel's maximum, traced back to its pixel."""
    head_input, _ = head_capture
    channels = head_input.shape[1]
    flat_input = head_input[0].reshape(channels, -1)  # (C, h*w)
    winners = flat_input.argmax(dim=1).numpy()  # first maximum, as torch
    counts = np.zeros(shape[0] * shape[1], dtype=np.int64)
    np.add.at(counts, trace_to_pixel[winners], 1)
    return {
        "layer": "global",
        "pool": pool,
        "input_size": list(head_input.shape[-2:]),
        "output_size": [1, 1],
        "channels": int(channels),
        "windows": int(channels),
        "counts": counts.reshape(shape),
    }


def plot_win_map(explanation: ImageExplanation, path, *, title: str = "") -> Any:
    """Draw the image and each layer's win map side by side (PNG, written atomically)."""
    import io

    from poolkit._io import atomic_write_bytes
    from poolkit.experiments.plots import pyplot

    plt = pyplot()
    panels = [("input", None)] + [(layer["layer"], layer) for layer in explanation.layers]
    if len(explanation.layers) > 1:
        panels.append(("all layers", {"counts": explanation.total, "windows": None}))
    figure, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.4), squeeze=False)
    gray = explanation.image.mean(axis=0)
    cmap = "gray_r" if gray.mean() < 0.5 else "gray"  # dark ink on a light background
    for ax, (name, layer) in zip(axes[0], panels, strict=True):
        ax.imshow(gray, cmap=cmap, interpolation="nearest", alpha=1.0 if layer is None else 0.35)
        if layer is None:
            label = explanation.label_names[explanation.predicted]
            ax.set_title(
                f"input (predicted {label},\n"
                f"p = {explanation.probabilities[explanation.predicted]:.2f})",
                fontsize=9,
            )
        else:
            counts = layer["counts"]
            masked = np.ma.masked_where(counts == 0, counts)
            shown = ax.imshow(masked, cmap="autumn_r", alpha=0.75, interpolation="nearest")
            figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
            if layer.get("windows"):
                ax.set_title(
                    f"{name} ({layer['pool']}): wins of\n{layer['channels']} ch x "
                    f"{layer['output_size'][0]}x{layer['output_size'][1]} windows",
                    fontsize=9,
                )
            else:
                ax.set_title(f"{name}: wins", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=10)
    figure.text(0.5, -0.04, "legend: grey is the image itself (faded in the win maps): a pixel "
                "left grey won no window of that layer; yellow to red: how many windows it won "
                "(colour bar)", ha="center", va="top", fontsize=8, wrap=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
