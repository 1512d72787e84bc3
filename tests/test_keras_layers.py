"""poolkit.keras against poolkit.nn: outputs and gradients to 1e-5, saving, masking, errors.

Runs on the Keras backend in ``KERAS_BACKEND`` (JAX by default here);
``tests/test_keras_backends.py`` runs this file again on every other installed backend.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

import poolkit.keras as pk  # noqa: E402
import poolkit.nn as pnn  # noqa: E402

BACKEND = keras.backend.backend()
TOL = {"rtol": 1e-5, "atol": 1e-5}


# ---------------------------------------------------------------------------------------------
# Helpers


def to_numpy(value) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def keras_forward_and_grads(layer, x: np.ndarray, upstream: np.ndarray, training=False):
    """Output, d(sum(out * upstream))/dx and /d(each trainable variable), on this backend."""
    variables = layer.trainable_variables
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss(trainable, inputs):
            out, _ = layer.stateless_call(trainable, non_trainable, inputs, training=training)
            return jnp.sum(out * upstream), out

        gradient = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
        (_, out), (grad_w, grad_x) = gradient([v.value for v in variables], jnp.asarray(x))
        return np.asarray(out), np.asarray(grad_x), [np.asarray(g) for g in grad_w]
    if BACKEND == "torch":
        inputs = torch.tensor(x, requires_grad=True)
        for v in variables:
            v.value.grad = None
        out = layer(inputs, training=training)
        (out * torch.tensor(upstream)).sum().backward()
        grads = [np.zeros(v.shape) if v.value.grad is None else v.value.grad.numpy()
                 for v in variables]
        return out.detach().numpy(), inputs.grad.numpy(), grads
    import tensorflow as tf

    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = layer(inputs, training=training)
        loss = tf.reduce_sum(out * upstream)
    grads = tape.gradient(loss, [inputs, *[v.value for v in variables]])
    return out.numpy(), grads[0].numpy(), [np.zeros(v.shape) if g is None else g.numpy()
                                           for v, g in zip(variables, grads[1:], strict=True)]


def torch_forward_and_grads(module, x: np.ndarray, upstream: np.ndarray):
    module.zero_grad()
    inputs = torch.tensor(x, requires_grad=True)
    out = module(inputs)
    (out * torch.tensor(upstream)).sum().backward()
    grads = {name: (p.grad.numpy() if p.grad is not None else np.zeros(tuple(p.shape)))
             for name, p in module.named_parameters()}
    return out.detach().numpy(), inputs.grad.numpy(), grads


def channels_last(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, 1, -1)


def channels_first(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, -1, 1)


# name, dims, kwargs, input shape (N, C, *S)
CASES = [
    ("max", 2, {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 9, 7)),
    ("max", 2, {"kernel_size": (3, 2), "stride": 2, "dilation": (2, 1), "ceil_mode": True},
     (2, 3, 10, 9)),
    ("max", 1, {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 9)),
    ("max", 3, {"kernel_size": 2}, (1, 2, 4, 5, 4)),
    ("max", 2, {}, (2, 3, 5, 6)),
    ("avg", 2, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 8, 9)),
    ("avg", 2, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                "count_include_pad": False}, (2, 3, 8, 9)),
    ("avg", 1, {"kernel_size": 3, "stride": 1, "padding": 1}, (2, 3, 7)),
    ("avg", 3, {}, (1, 2, 3, 4, 5)),
    ("lp", 2, {"norm_type": 2.0, "kernel_size": 2, "stride": 2, "ceil_mode": True},
     (2, 3, 7, 8)),
    ("lp", 1, {"norm_type": 3.0, "kernel_size": 3}, (2, 3, 9)),
    ("lp", 2, {"norm_type": 2.0}, (2, 3, 4, 4)),
    ("avgmax", 2, {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 8, 8)),
    ("avgmax", 2, {}, (2, 3, 5, 5)),
    ("catavgmax", 2, {"kernel_size": 2}, (2, 3, 6, 6)),
    ("catavgmax", 1, {}, (2, 3, 6)),
    ("kmax", 2, {"k": 3}, (2, 3, 5, 4)),
    ("kmax", 1, {"k": 4, "global_pool": False}, (2, 3, 9)),
    ("kmax", 1, {"k": 12}, (2, 3, 9)),
    ("dynamic_kmax", 1, {"k_top": 2, "layer": 1, "num_layers": 3}, (2, 3, 10)),
    ("dynamic_kmax", 1, {"k_top": 3}, (2, 3, 10)),
    ("lp_abs", 2, {"norm_type": 3.0, "kernel_size": 3, "stride": 2, "padding": 1},
     (2, 3, 9, 7)),
    ("lp_abs", 2, {"norm_type": 1.5}, (2, 3, 5, 5)),
    ("stochastic", 2, {"kernel_size": 2, "padding": 1}, (2, 3, 7, 7)),
    ("stochastic", 2, {}, (2, 3, 5, 5)),
    ("fractional_max", 2, {"output_size": 4}, (2, 3, 9, 7)),
    ("fractional_max", 2, {"output_ratio": 0.6, "overlapping": True}, (2, 3, 10, 9)),
    ("fractional_max", 2, {"kernel_size": 2, "output_size": (5, 4)}, (2, 3, 10, 9)),
    ("fractional_max", 1, {"output_size": 4}, (2, 3, 9)),
    ("mixed", 2, {"kernel_size": 3, "stride": 2, "padding": 1, "alpha": 0.3}, (2, 3, 8, 8)),
    ("mixed", 2, {"kernel_size": 2, "mode": "learned", "channels": 3, "alpha": 0.7},
     (2, 3, 6, 6)),
    ("mixed", 2, {"mode": "fixed", "alpha": 0.25}, (2, 3, 5, 5)),
    ("mixed", 2, {"kernel_size": 2, "mode": "random", "alpha": 0.4}, (2, 3, 6, 6)),
    ("gated", 2, {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 8, 8)),
    ("gated", 2, {"kernel_size": 2, "channels": 3}, (2, 3, 6, 6)),
    ("tree", 2, {"kernel_size": 3, "stride": 2, "depth": 3}, (2, 3, 9, 9)),
    ("tree", 1, {"kernel_size": 2, "channels": 3}, (2, 3, 8)),
    ("softpool", 2, {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 8, 9)),
    ("softpool", 2, {}, (2, 3, 5, 5)),
    ("lip", 2, {"channels": 3, "kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 8, 8)),
    ("lip", 1, {"channels": 3}, (2, 3, 7)),
    ("gem", 2, {"kernel_size": 3, "stride": 2, "padding": 1, "p": 2.5}, (2, 3, 8, 8)),
    ("gem", 2, {"p": 3.0, "channels": 3}, (2, 3, 5, 5)),
    ("lse", 2, {"kernel_size": 2, "r": 2.0}, (2, 3, 6, 6)),
    ("lse", 2, {"r": 0.5}, (2, 3, 5, 5)),
    ("blur", 2, {"kernel_size": 3, "stride": 2}, (2, 3, 8, 9)),
    ("blur", 1, {"kernel_size": 4, "stride": 2, "padding_mode": "replicate"}, (2, 3, 9)),
    ("blur", 2, {"kernel_size": 5, "stride": 2, "padding_mode": "zeros"}, (2, 3, 7, 7)),
    ("maxblur", 2, {"kernel_size": 2, "stride": 2}, (2, 3, 8, 8)),
    ("spp", 2, {"levels": (1, 2, 3)}, (2, 3, 7, 5)),
    ("spp", 2, {"levels": (1, 2), "mode": "avg", "global_pool": True}, (2, 3, 5, 6)),
    ("spp", 1, {}, (2, 3, 9)),
    ("attention", 2, {"channels": 4, "num_heads": 2}, (2, 4, 3, 5)),
    ("attention", 2, {"channels": 4, "spatial_size": (2, 3), "query": "mean",
                      "out_features": 8}, (2, 4, 3, 5)),
    ("attention", 1, {"channels": 4, "spatial_size": 6}, (2, 4, 6)),
]


def _case_id(case) -> str:
    name, dims, kwargs, _ = case
    return f"{name}-{dims}d-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


def _build(case, data_format):
    name, dims, kwargs, shape = case
    torch.manual_seed(0)
    module = pnn.create_pool(name, dims=dims, **kwargs).eval()
    if name == "attention" and kwargs.get("query") == "mean" or name == "lip":
        with torch.no_grad():  # non-trivial weights for the zero-initialised parts
            for parameter in module.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.3)
    if name in ("gated",):
        with torch.no_grad():
            module.gate_weight.normal_(0, 0.5)
    layer = pk.create_pool(name, dims=dims, data_format=data_format, **kwargs)
    rng = np.random.default_rng(len(_case_id(case)))
    x = rng.standard_normal(shape).astype(np.float32)
    if name == "lp":
        x = np.abs(x) + 0.1  # torch's lp pool: NaN on negative input
    keras_x = x if data_format == "channels_first" else channels_last(x)
    layer(keras_x)  # build
    layer.load_torch_weights(module)
    return module, layer, x, keras_x


def _compare_case(case, data_format):
    module, layer, x, keras_x = _build(case, data_format)
    shape = tuple(module(torch.tensor(x)).shape)
    upstream_ref = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    reference, ref_grad_x, ref_grads = torch_forward_and_grads(module, x, upstream_ref)
    spatial_out = data_format == "channels_last" and reference.ndim > 2
    upstream = channels_last(upstream_ref) if spatial_out else upstream_ref
    out, grad_x, grads = keras_forward_and_grads(layer, keras_x, upstream)
    if spatial_out:
        out = channels_first(out)
    if data_format == "channels_last":
        grad_x = channels_first(grad_x)
    np.testing.assert_allclose(out, reference, **TOL)
    np.testing.assert_allclose(grad_x, ref_grad_x, **TOL)
    by_variable = {id(var): (key, convert) for key, (var, convert)
                   in layer.torch_weight_map().items()}
    assert len(grads) == len(ref_grads), (list(ref_grads), layer.trainable_variables)
    for variable, grad in zip(layer.trainable_variables, grads, strict=True):
        key, convert = by_variable[id(variable)]
        np.testing.assert_allclose(grad, convert(ref_grads[key]), **TOL, err_msg=key)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_equals_poolkit_nn_channels_first(case):
    _compare_case(case, "channels_first")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_equals_poolkit_nn_channels_last(case):
    _compare_case(case, "channels_last")


def test_every_family_has_a_case_and_the_same_names():
    assert pk.list_pools() == pnn.list_pools()
    assert pk.list_pools(include_identity=True) == pnn.list_pools(include_identity=True)
    assert {case[0] for case in CASES} == set(pnn.list_pools())


@pytest.mark.parametrize("name", pnn.list_pools())
def test_feat_mult_matches(name):
    case = next(c for c in CASES if c[0] == name)
    module, layer, _, _ = _build(case, "channels_last")
    assert layer.feat_mult() == module.feat_mult()


def test_hand_worked_values():
    x = np.array([[[[1.0], [2.0]], [[3.0], [4.0]]]], np.float32)  # (1, 2, 2, 1)
    assert to_numpy(pk.MaxPool2D(2)(x)).ravel().tolist() == [4.0]
    assert to_numpy(pk.AvgPool2D(2)(x)).ravel().tolist() == [2.5]
    # avg 3x3/2 pad 1 ceil on a 3x3 ramp: window (1, 1) clips to 2x2 input cells + padding
    ramp = np.arange(1.0, 10.0, dtype=np.float32).reshape(1, 3, 3, 1)
    got = to_numpy(pk.AvgPool2D(3, stride=2, padding=1, ceil_mode=True)(ramp))[0, ..., 0]
    # torch: top-left (1+2+4+5)/9, ...; the divisor counts padding, not the part past it
    expected = torch.nn.functional.avg_pool2d(torch.tensor(ramp[..., 0])[None], 3, 2, 1, True)
    np.testing.assert_allclose(got, expected[0, 0].numpy(), rtol=1e-6)
    # SoftPool of (0, ln 2): (0 + 2 ln 2) / (1 + 2)
    soft = to_numpy(pk.SoftPool1D(2)(np.array([[[0.0], [np.log(2.0)]]], np.float32)))
    np.testing.assert_allclose(soft.ravel(), [2 * np.log(2.0) / 3], rtol=1e-6)


def test_nan_propagates_through_max_like_torch():
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 0, 0, 0] = np.nan
    out = to_numpy(pk.MaxPool2D(2)(x))[0, ..., 0]
    assert np.isnan(out[0, 0]) and not np.isnan(out[1, 1])


def test_stochastic_training_samples_a_window_value():
    layer = pk.StochasticPool2D(2, seed=3)
    x = np.abs(np.random.default_rng(0).standard_normal((2, 6, 6, 3))).astype(np.float32)
    out = to_numpy(layer(x, training=True))
    windows = x.reshape(2, 3, 2, 3, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 3, 3, 3, 4)
    assert np.all(np.any(np.isclose(windows, out[..., None]), axis=-1))
    evaluated = to_numpy(layer(x, training=False))
    np.testing.assert_allclose(evaluated, (windows**2).sum(-1) / windows.sum(-1), rtol=1e-5)


def test_stochastic_training_follows_the_probabilities():
    layer = pk.StochasticPool1D(2, seed=0)
    x = np.tile(np.array([[1.0], [3.0]], np.float32), (4000, 1, 1))  # P(3) = 3/4
    out = to_numpy(layer(x, training=True)).ravel()
    assert set(np.unique(out)) <= {1.0, 3.0}
    assert abs((out == 3.0).mean() - 0.75) < 0.03


def test_fractional_training_draws_other_grids():
    layer = pk.FractionalMaxPool2D(output_size=4, seed=0)
    x = np.random.default_rng(0).standard_normal((1, 9, 9, 1)).astype(np.float32)
    outs = {to_numpy(layer(x, training=True)).tobytes() for _ in range(8)}
    assert len(outs) > 1
    assert to_numpy(layer(x, training=True)).shape == (1, 4, 4, 1)


# ---------------------------------------------------------------------------------------------
# Sequence pooling


SEQUENCE_MODES = ["mean", "max", "min", "cls", "first", "last", "weighted_mean",
                  "mean_sqrt_len", "kmax", "attention", "latent_attention", "mean+max+last"]


def _sequence_pair(mode):
    options = {"num_latents": 5, "num_heads": 2} if mode == "latent_attention" else {}
    if mode == "attention":
        options = {"num_heads": 2, "num_queries": 2}
    if mode == "kmax":
        options = {"k": 3}
    torch.manual_seed(0)
    module = pnn.SequencePool(mode, hidden_size=8, **options)
    layer = pk.SequencePool(mode, hidden_size=8, **options)
    return module, layer


@pytest.mark.parametrize("mode", SEQUENCE_MODES)
def test_sequence_pool_equals_poolkit_nn(mode):
    module, layer = _sequence_pair(mode)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], np.int32)
    layer(x, attention_mask=mask)
    layer.load_torch_weights(module)
    expected = module(torch.tensor(x), torch.tensor(mask)).detach().numpy()
    np.testing.assert_allclose(to_numpy(layer(x, attention_mask=mask)), expected, **TOL)


@pytest.mark.parametrize("mode", SEQUENCE_MODES)
def test_sequence_pool_left_and_right_padding_agree(mode):
    _, layer = _sequence_pair(mode)
    rng = np.random.default_rng(1)
    real = rng.standard_normal((2, 4, 8)).astype(np.float32)
    pads = rng.standard_normal((2, 3, 8)).astype(np.float32)
    right = np.concatenate([real, pads], 1)
    left = np.concatenate([pads, real], 1)
    mask_right = np.array([[1] * 4 + [0] * 3] * 2)
    mask_left = mask_right[:, ::-1].copy()
    np.testing.assert_allclose(to_numpy(layer(right, attention_mask=mask_right)),
                               to_numpy(layer(left, attention_mask=mask_left)), **TOL)


def test_sequence_pool_uses_the_keras_mask_of_an_embedding():
    ids = np.array([[0, 0, 5, 6, 7], [5, 6, 7, 0, 0]])  # the same sentence, left / right padded
    inputs = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 8, mask_zero=True)(inputs)
    model = keras.Model(inputs, pk.SequencePool("mean+last")(embedded))
    out = to_numpy(model(ids))
    np.testing.assert_allclose(out[0], out[1], **TOL)


def test_sequence_pool_empty_rows_give_zeros():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    out = to_numpy(pk.SequencePool("mean+max+cls+last")(x, attention_mask=np.zeros((2, 3))))
    assert np.all(out == 0)


# ---------------------------------------------------------------------------------------------
# Saving and config


SAVE_CASES = [c for c in CASES if c[1] == 2 and c[0] != "dynamic_kmax"]


@pytest.mark.parametrize("case", SAVE_CASES, ids=[_case_id(c) for c in SAVE_CASES])
def test_model_saves_and_loads(case, tmp_path):
    name, dims, kwargs, shape = case
    inputs = keras.Input(shape[2:] + shape[1:2])
    layer = pk.create_pool(name, dims=dims, **kwargs)
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(0).standard_normal((2, *shape[2:], shape[1])).astype(np.float32)
    before = to_numpy(model(x, training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x, training=False)), before, **TOL)


@pytest.mark.parametrize("mode", SEQUENCE_MODES)
def test_sequence_model_saves_and_loads(mode, tmp_path):
    _, layer = _sequence_pair(mode)
    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    model.save(tmp_path / "seq.keras")
    loaded = keras.models.load_model(tmp_path / "seq.keras")
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), **TOL)


# ---------------------------------------------------------------------------------------------
# Errors: the same words as poolkit.nn


def _message(function):
    with pytest.raises((ValueError, TypeError)) as error:
        function()
    return type(error.value), str(error.value)


BAD = [
    ("unknown name", lambda m: m.create_pool("nope")),
    ("bad dims", lambda m: m.create_pool("max", dims=4)),
    ("negative kernel", lambda m: m.create_pool("max", kernel_size=-1)(_input(m))),
    ("padding too large", lambda m: m.create_pool("avg", kernel_size=2, padding=2)(_input(m))),
    ("unknown argument", lambda m: m.create_pool("gem", kernel_size=2, q=3)),
    ("p not positive", lambda m: m.create_pool("gem", p=-1.0)),
    ("alpha outside [0, 1]", lambda m: m.create_pool("mixed", alpha=2.0)),
    ("no global form", lambda m: m.create_pool("gated")),
    ("float kernel", lambda m: m.create_pool("max", kernel_size=2.5)),
    ("k zero", lambda m: m.create_pool("kmax", k=0)),
    ("sequence mode", lambda m: m.SequencePool("average")),
]


def _input(module):
    x = np.zeros((1, 3, 4, 4), np.float32)
    return torch.tensor(x) if module is pnn else channels_last(x)


@pytest.mark.parametrize("label,bad", BAD, ids=[b[0] for b in BAD])
def test_errors_match_poolkit_nn(label, bad):
    kind_nn, message_nn = _message(lambda: bad(pnn))
    kind_keras, message_keras = _message(lambda: bad(pk))
    assert kind_keras is kind_nn
    # the argument, its value and the rule are named the same way (class names may differ,
    # and Keras adds the call's arguments to an error raised inside call())
    assert message_nn.split(":")[-1].strip()[:40] in message_keras


@pytest.mark.parametrize("name,kwargs", [("max", {"kernel_size": 2}), ("gem", {}),
                                         ("kmax", {"k": 2}), ("spp", {"levels": (1, 2)}),
                                         ("softpool", {"kernel_size": 3, "stride": 2})])
def test_unknown_spatial_size_in_a_model(name, kwargs):
    inputs = keras.Input((None, None, 3))
    layer = pk.create_pool(name, **kwargs)
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(0).standard_normal((2, 9, 7, 3)).astype(np.float32)
    reference = pnn.create_pool(name, **kwargs)(torch.tensor(channels_first(x)))
    out = to_numpy(model(x))
    if out.ndim > 2:  # channels-last spatial or (N, bins, C)
        out = channels_first(out)
    np.testing.assert_allclose(out, reference.detach().numpy(), **TOL)


def test_import_poolkit_does_not_import_keras():
    import subprocess
    import sys

    code = "import sys, poolkit, poolkit.numpy; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
