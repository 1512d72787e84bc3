"""TextCNN's convolution as one matrix product and its fused max over time
(``poolkit/models/_time_conv.py``) against ``F.conv1d`` and against the previous formulation of
the model (Conv1d over the padded ids, ReLU, padding-only windows zeroed, the pool module)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from poolkit.models import TextCNN, TextCNNConfig
from poolkit.models._time_conv import (
    conv_max_over_time,
    conv_over_time,
    distinct_tokens,
    stack_conv_weights,
    windows_with_tokens,
)
from poolkit.nn import list_pools, pool_info

WIDTHS = (2, 3, 5)
E, NF = 6, 4


def _weights(seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(NF, E, w, generator=gen, dtype=dtype) for w in WIDTHS]
    biases = [torch.randn(NF, generator=gen, dtype=dtype) for _ in WIDTHS]
    return weights, biases


def _reference_maps(embedded, weights, biases, lead, trail, edge_row):
    """Conv1d over the embeddings padded with ``lead``/``trail`` copies of ``edge_row``."""
    B, T, _ = embedded.shape
    edge = torch.zeros(E, dtype=embedded.dtype) if edge_row is None else edge_row
    padded = torch.cat([edge.expand(B, lead, E), embedded, edge.expand(B, trail, E)], 1)
    x = padded.transpose(1, 2)  # (B, E, T')
    return [F.conv1d(x, w, b) for w, b in zip(weights, biases, strict=True)]


@pytest.mark.parametrize("lead,trail,with_edge", [(0, 0, False), (4, 4, False), (4, 4, True),
                                                  (1, 3, True)])
def test_conv_over_time_equals_conv1d_values_and_gradients(lead, trail, with_edge):
    weights, biases = _weights()
    gen = torch.Generator().manual_seed(1)
    embedded = torch.randn(3, 7, E, generator=gen, dtype=torch.float64)
    edge_row = torch.randn(E, generator=gen, dtype=torch.float64) if with_edge else None
    params = [t.clone().requires_grad_() for t in (embedded, *weights, *biases)]
    x, ws, bs = params[0], params[1:4], params[4:]

    got = conv_over_time(x, stack_conv_weights(ws), torch.cat(bs), WIDTHS, NF, lead, trail,
                         edge_row)
    want = _reference_maps(x, ws, bs, lead, trail, edge_row)
    cotangents = [torch.randn(m.shape, generator=gen, dtype=m.dtype) for m in want]
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.is_contiguous()
        torch.testing.assert_close(g, w)
    grads_got = torch.autograd.grad(got, params, cotangents)
    grads_want = torch.autograd.grad(want, params, cotangents)
    for g, w in zip(grads_got, grads_want, strict=True):
        torch.testing.assert_close(g, w)


def test_conv_over_time_gradcheck():
    weights, biases = _weights()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 6, E, generator=gen, dtype=torch.float64, requires_grad=True)
    edge_row = torch.randn(E, generator=gen, dtype=torch.float64)
    rows = stack_conv_weights(weights).requires_grad_()
    bias = torch.cat(biases).requires_grad_()

    def function(x, rows, bias):
        return tuple(conv_over_time(x, rows, bias, WIDTHS, NF, 4, 4, edge_row))

    assert torch.autograd.gradcheck(function, (x, rows, bias), fast_mode=True)


def _reference_max(embedded, real, weights, biases, lead, trail, edge_row):
    """max over time of relu(conv1d) * [window holds a real token]."""
    maps = _reference_maps(embedded, weights, biases, lead, trail, edge_row)
    real_padded = F.pad(real.to(embedded.dtype), (lead, trail)).unsqueeze(1)  # (B, 1, T')
    pooled = []
    for m, w in zip(maps, WIDTHS, strict=True):
        has_token = F.max_pool1d(real_padded, w, stride=1)
        pooled.append((F.relu(m) * has_token).amax(-1))
    return torch.cat(pooled, 1)


def _case(seed, B=4, T=9, vocab=11, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (B, T), generator=gen)
    ids[0, 5:] = 0  # right padding
    ids[1, :3] = 0  # left padding
    ids[2, :] = 0  # padding only
    table = torch.randn(vocab, E, generator=gen, dtype=dtype)
    return ids, table


@pytest.mark.parametrize("lead,trail", [(0, 0), (4, 4)])
@pytest.mark.parametrize("pad_row_zero", [True, False])
def test_conv_max_over_time_equals_reference_values_and_gradients(lead, trail, pad_row_zero):
    weights, biases = _weights(3)
    ids, table = _case(4)
    if pad_row_zero:
        table[0] = 0
    tokens, where = distinct_tokens(ids, 0)
    table = table.requires_grad_()
    ws = [w.clone().requires_grad_() for w in weights]
    bs = [b.clone().requires_grad_() for b in biases]
    real = ids != 0

    got = conv_max_over_time(table[tokens], where, stack_conv_weights(ws), torch.cat(bs), real,
                             WIDTHS, NF, lead, trail)
    want = _reference_max(table[ids], real, ws, bs, lead, trail, table[0] if lead else None)
    torch.testing.assert_close(got, want)
    assert (got[2] == 0).all()  # a text of padding only: every window zeroed
    cotangent = torch.randn(got.shape, generator=torch.Generator().manual_seed(5),
                            dtype=got.dtype)
    params = [table, *ws, *bs]
    for g, w in zip(torch.autograd.grad(got, params, cotangent),
                    torch.autograd.grad(want, params, cotangent), strict=True):
        torch.testing.assert_close(g, w)
    with torch.no_grad():  # the inference path (no indices) gives the same values
        torch.testing.assert_close(
            conv_max_over_time(table[tokens], where, stack_conv_weights(ws), torch.cat(bs), real,
                               WIDTHS, NF, lead, trail), got)


def test_conv_max_over_time_gradcheck():
    weights, biases = _weights(6)
    ids, table = _case(7)
    tokens, where = distinct_tokens(ids, 0)
    x = table[tokens].requires_grad_()
    rows = stack_conv_weights(weights).requires_grad_()
    bias = torch.cat(biases).requires_grad_()

    def function(x, rows, bias):
        return conv_max_over_time(x, where, rows, bias, ids != 0, WIDTHS, NF, 4, 4)

    assert torch.autograd.gradcheck(function, (x, rows, bias), fast_mode=True)


def test_distinct_tokens_hand_worked():
    tokens, where = distinct_tokens(torch.tensor([[5, 3, 5, 0], [3, 3, 9, 0]]), 0)
    assert tokens.tolist() == [0, 3, 5, 9, 0]  # distinct ids, then the padding id
    assert where.tolist() == [[2, 1, 2, 0], [1, 1, 3, 0]]


@given(T=st.integers(1, 8), lead=st.integers(0, 4), data=st.data())
def test_windows_with_tokens_match_max_pool(T, lead, data):
    trail = data.draw(st.integers(max(0, 5 - T - lead), 4))
    real = torch.tensor(data.draw(st.lists(st.booleans(), min_size=2 * T, max_size=2 * T)))
    real = real.view(2, T)
    padded = F.pad(real.double(), (lead, trail)).unsqueeze(1)
    for w, got in zip(WIDTHS, windows_with_tokens(real, WIDTHS, lead, trail), strict=True):
        want = F.max_pool1d(padded, w, stride=1).squeeze(1) > 0
        assert torch.equal(got, want)


# --- the whole model against its previous formulation ---------------------------------------


def previous_textcnn_logits(model: TextCNN, input_ids: torch.Tensor) -> torch.Tensor:
    """TextCNN's forward before the matrix-product formulation, one text at a time: pad the ids,
    embed, Conv1d per width, ReLU, then the pool module over the text's windows that hold a
    token (max and k-max: over every window, those of padding only zeroed), dropout, linear."""
    c = model.config
    pad = c.padding_idx
    if c.edge_padding:
        edge = model.min_length - 1
        input_ids = F.pad(input_ids, (edge, edge), value=pad)
    elif input_ids.shape[1] < model.min_length:
        input_ids = F.pad(input_ids, (0, model.min_length - input_ids.shape[1]), value=pad)
    x = model.embedding(input_ids).transpose(1, 2)  # (B, E, T)
    real = (input_ids != pad).unsqueeze(1).to(x.dtype)
    rows = []
    for b in range(len(input_ids)):
        features = []
        for conv, pool in zip(model.convs, model.pools, strict=True):
            has_token = F.max_pool1d(real[b:b + 1], conv.kernel_size[0], stride=1)  # (1, 1, L)
            maps = F.relu(conv(x[b:b + 1])) * has_token
            if c.pool not in ("max", "kmax", "dynamic_kmax"):
                keep = has_token[0, 0].nonzero().squeeze(1)
                maps = maps[:, :, keep] if len(keep) else maps[:, :, :1]
            features.append(pool(maps))
        rows.append(torch.cat(features, dim=1))
    return model.classifier(model.dropout(torch.cat(rows)))


POOL_KWARGS = {"kmax": {"k": 2}, "dynamic_kmax": {"k_top": 2}}
TIME_POOLS = [p for p in list_pools() if pool_info(p).global_ and 1 in pool_info(p).dims]


@pytest.mark.parametrize("edge_padding", [True, False])
@pytest.mark.parametrize("pool", TIME_POOLS)
def test_textcnn_equals_previous_formulation(pool, edge_padding):
    torch.manual_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=30, embed_dim=8, num_filters=4, pool=pool,
                                  pool_kwargs=POOL_KWARGS.get(pool, {}), dropout=0.0,
                                  edge_padding=edge_padding)).eval()
    ids = torch.randint(1, 30, (5, 10), generator=torch.Generator().manual_seed(1))
    ids[0, 4:] = 0
    ids[1, :2] = 0
    for batch in (ids, ids[:, :3]):  # also shorter than the widest filter
        got = model(batch)
        want = previous_textcnn_logits(model, batch)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        cotangent = torch.randn(got.shape, generator=torch.Generator().manual_seed(2))
        params = [p for p in model.parameters() if p.requires_grad]
        for g, w in zip(torch.autograd.grad(got, params, cotangent, allow_unused=True),
                        torch.autograd.grad(want, params, cotangent, allow_unused=True),
                        strict=True):
            if w is None:
                continue
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool", TIME_POOLS)
def test_textcnn_logits_of_a_text_do_not_depend_on_its_batch(pool):
    """With Kim's edge padding, every pool over time gives a text the same logits alone and in
    a right-padded batch with longer texts."""
    torch.manual_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=30, embed_dim=8, num_filters=4, pool=pool,
                                  pool_kwargs=POOL_KWARGS.get(pool, {}), dropout=0.0)).eval()
    gen = torch.Generator().manual_seed(3)
    texts = [torch.randint(1, 30, (n,), generator=gen) for n in (1, 4, 9, 4)]
    batch = torch.zeros(len(texts), 9, dtype=torch.long)
    for row, text in zip(batch, texts, strict=True):
        row[: len(text)] = text
    alone = torch.cat([model(text[None]) for text in texts])
    torch.testing.assert_close(model(batch), alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("edge_padding", [True, False])
def test_textcnn_with_a_nonzero_padding_embedding_equals_previous(edge_padding):
    """Edge padding adds the padding embedding's products (not embedded per position)."""
    torch.manual_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=30, embed_dim=8, num_filters=4, dropout=0.0,
                                  edge_padding=edge_padding)).double().eval()
    with torch.no_grad():
        model.embedding.weight[0] = torch.linspace(-1.0, 1.0, 8)
    ids = torch.randint(1, 30, (3, 7), generator=torch.Generator().manual_seed(3))
    ids[0, 5:] = 0
    torch.testing.assert_close(model(ids), previous_textcnn_logits(model, ids))
    model.config.pool = "max"
    model.fused_max = False  # the general path, through the pool modules
    torch.testing.assert_close(model(ids), previous_textcnn_logits(model, ids))


def test_hooked_pools_see_the_maps_and_give_the_same_logits():
    """``poolkit explain`` hooks the pools with ``fused_max`` off: then the model runs them
    (same logits), and each hook sees ``(B, F, lead + T + trail - w + 1)`` maps; with it on
    (the default) the fused max does not call them."""
    torch.manual_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=30, embed_dim=8, num_filters=4)).eval()
    ids = torch.randint(1, 30, (2, 6), generator=torch.Generator().manual_seed(4))
    seen = []
    hooks = [pool.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
             for pool in model.pools]
    try:
        fused = model(ids)
        assert seen == []
        model.fused_max = False
        torch.testing.assert_close(model(ids), fused)
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == [(2, 4, 6 + 8 - w + 1) for w in (3, 4, 5)]


def test_state_dict_is_unchanged_and_old_checkpoints_load():
    """Parameters stay ``Conv1d`` weights: keys and shapes of the previous model."""
    model = TextCNN(TextCNNConfig(vocab_size=30, embed_dim=8, num_filters=4))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "embedding.weight": (30, 8),
        "convs.0.weight": (4, 8, 3), "convs.0.bias": (4,),
        "convs.1.weight": (4, 8, 4), "convs.1.bias": (4,),
        "convs.2.weight": (4, 8, 5), "convs.2.bias": (4,),
        "classifier.weight": (2, 12), "classifier.bias": (2,),
    }
    torch.manual_seed(5)
    old = {k: torch.randn(s) for k, s in shapes.items()}  # a checkpoint of the previous model
    model.load_state_dict(old, strict=True)
    ids = torch.randint(1, 30, (3, 7))
    torch.testing.assert_close(model.eval()(ids), previous_textcnn_logits(model, ids))


def test_frozen_embeddings_train_the_convolutions_only():
    torch.manual_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=30, embed_dim=8, num_filters=4,
                                  freeze_embedding=True))
    model(torch.randint(1, 30, (3, 7))).sum().backward()
    assert model.embedding.weight.grad is None
    assert all(conv.weight.grad is not None for conv in model.convs)
