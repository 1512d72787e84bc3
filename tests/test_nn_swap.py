"""Image models: timm's global-pool contract on every global pool (``is_identity()``,
``flatten``, ``feat_mult()``, NHWC input) and ``set_global_pool`` on poolkit's ConvNet,
transformers' ResNet and ConvNeXt classifiers (built from a small config, no weights) and timm
models (where timm imports). After a swap the outputs have the right shape, equal a pooling
computed by hand, and a training step updates the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from poolkit.models.convnet import ConvNet, ConvNetConfig
from poolkit.nn import GlobalPool, create_pool, list_pools, pool_info, set_global_pool

C = 8
GLOBAL_2D = [n for n in list_pools() if pool_info(n).global_ and 2 in pool_info(n).dims]
EXTRA = {"kmax": {"k": 2}}


def _kwargs(name):
    kwargs = dict(EXTRA.get(name, {}))
    if pool_info(name).needs_channels:
        kwargs["channels"] = C
    return kwargs


def test_every_global_2d_family_is_checked():
    assert {"avg", "max", "catavgmax", "gem", "attention", "spp"} <= set(GLOBAL_2D)


@pytest.mark.parametrize("name", GLOBAL_2D)
def test_timm_contract_and_nhwc(name):
    torch.manual_seed(0)
    x = torch.randn(2, C, 5, 6)
    pool = GlobalPool(name, **_kwargs(name)).eval()
    nhwc = GlobalPool(name, input_fmt="NHWC", **_kwargs(name)).eval()
    nhwc.load_state_dict(pool.state_dict())
    plain = create_pool(name, 2, **({"global_pool": True} if name == "spp" else {}),
                        **_kwargs(name)).eval()
    plain.load_state_dict(pool.pool.state_dict())
    out = pool(x)
    assert not pool.is_identity() and not plain.is_identity()
    assert pool.flatten and plain.flatten
    assert out.shape == (2, C * pool.feat_mult()) and pool.feat_mult() == plain.feat_mult()
    torch.testing.assert_close(nhwc(x.permute(0, 2, 3, 1)), out)
    torch.testing.assert_close(plain(x), out)
    unflat = GlobalPool(name, flatten=False, **_kwargs(name)).eval()
    unflat.load_state_dict(pool.state_dict())
    torch.testing.assert_close(unflat(x), out.view(2, -1, 1, 1))


def test_identity_contract():
    pool = GlobalPool("")
    x = torch.randn(2, C, 3, 3)
    assert pool.is_identity() and pool.feat_mult() == 1 and torch.equal(pool(x), x)
    assert create_pool("identity").is_identity()


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"input_fmt \('NDHWC'\) must be one of"):
        GlobalPool("avg", input_fmt="NDHWC")
    with pytest.raises(ValueError, match="has no global form"):
        GlobalPool("blur")
    with pytest.raises(TypeError, match="set_global_pool does not know Linear"):
        set_global_pool(nn.Linear(2, 2), "avg")


def _train_step(model, images, labels, logits_of):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(logits_of(model(images)), labels)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert all(changed[-2:])  # the new classifier learns


@pytest.mark.parametrize("name", ["catavgmax", "gem", "attention", "avg"])
def test_convnet(name):
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(image_size=8, channels=(4, 8), num_classes=3))
    features = model.features
    set_global_pool(model, name)
    assert model.features is features  # the trunk keeps its weights
    mult = model.head_pool.feat_mult()
    assert model.classifier.in_features == 8 * mult
    images, labels = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    model.eval()
    if name != "attention":  # learned weights: compared in test_timm_contract_and_nhwc
        torch.testing.assert_close(model.head_pool(features(images)),
                                   create_pool(name)(features(images)))
    assert model(images).shape == (4, 3)
    _train_step(model.train(), images, labels, lambda out: out)


transformers = pytest.importorskip("transformers")


def _hf_model(kind):
    if kind == "resnet":
        config = transformers.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16],
                                           depths=[1, 1], num_labels=5)
    else:
        config = transformers.ConvNextConfig(num_channels=3, hidden_sizes=[8, 16], depths=[1, 1],
                                             num_stages=2, num_labels=5)
    torch.manual_seed(0)
    return transformers.AutoModelForImageClassification.from_config(config).eval()


def _last_hidden(model, images):
    backbone = model.resnet if hasattr(model, "resnet") else model.convnext
    return backbone(images).last_hidden_state  # (N, 16, h, w)


@pytest.mark.parametrize("kind", ["resnet", "convnext"])
def test_transformers_avg_swap_keeps_the_model(kind):
    """Swapping in poolkit's "avg" changes nothing: same logits as the model's own pooling."""
    model = _hf_model(kind)
    images = torch.rand(2, 3, 32, 32)
    want = model(images).logits
    set_global_pool(model, "avg")
    torch.testing.assert_close(model(images).logits, want)


@pytest.mark.parametrize("kind", ["resnet", "convnext"])
@pytest.mark.parametrize("name", ["catavgmax", "gem", "attention"])
def test_transformers_swap(kind, name):
    model = _hf_model(kind)
    images, labels = torch.rand(2, 3, 32, 32), torch.tensor([1, 4])
    set_global_pool(model, name)
    hidden = _last_hidden(model, images)
    out = model(images)
    assert out.logits.shape == (2, 5)
    if name == "catavgmax":  # [mean; max] of the last feature map, by hand
        by_hand = torch.cat([hidden.mean((-2, -1)), hidden.amax((-2, -1))], 1)
        pooled = model.resnet(images).pooler_output.flatten(1) if kind == "resnet" else \
            model.convnext.global_pool(hidden)
        torch.testing.assert_close(pooled, by_hand)
        classifier = model.classifier[-1] if kind == "resnet" else model.classifier
        assert classifier.in_features == 32
    _train_step(model.train(), images, labels, lambda out: out.logits)


def test_transformers_convnext_swap_twice():
    model = _hf_model("convnext")
    set_global_pool(model, "catavgmax")
    set_global_pool(model, "max")
    assert model.convnext.layernorm.normalized_shape == (16,)
    assert model(torch.rand(1, 3, 32, 32)).logits.shape == (1, 5)


class _TimmLikePool(nn.Module):
    """The parts of timm's SelectAdaptivePool2d that set_global_pool reads."""

    def __init__(self, flatten: bool, input_fmt: str = "NCHW"):
        super().__init__()
        self.flatten = nn.Flatten(1) if flatten else nn.Identity()
        self.input_fmt = input_fmt

    def feat_mult(self):
        return 1

    def forward(self, x):
        x = x.mean((1, 2), keepdim=True) if self.input_fmt == "NHWC" else x.mean((2, 3), True)
        return self.flatten(x if self.input_fmt == "NCHW" else x.permute(0, 3, 1, 2))


class _TimmLikeResNet(nn.Module):
    """timm's ResNet layout: features -> global_pool (flatten) -> fc; get_classifier()."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, C, 3)
        self.global_pool, self.fc = _TimmLikePool(True), nn.Linear(C, 4)
        self.num_features = C

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.fc(self.global_pool(self.conv(x)))


class _TimmLikeHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.global_pool = _TimmLikePool(False, "NHWC")
        self.norm, self.fc = nn.LayerNorm(C), nn.Linear(C, 4)

    def forward(self, x):  # NHWC features -> (N, C', 1, 1) -> norm over C' -> fc
        return self.fc(self.norm(self.global_pool(x).flatten(1)))


class _TimmLikeNHWCNet(nn.Module):
    """timm's NormMlpClassifierHead layout on an NHWC trunk: head.global_pool, head.norm, fc."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, C, 3), _TimmLikeHead()

    def get_classifier(self):
        return self.head.fc

    def forward(self, x):
        return self.head(self.conv(x).permute(0, 2, 3, 1))


@pytest.mark.parametrize("model_class", [_TimmLikeResNet, _TimmLikeNHWCNet])
def test_timm_layout(model_class):
    """The timm path on models laid out as timm's (timm itself cannot be installed here)."""
    torch.manual_seed(0)
    model = model_class().eval()
    images, labels = torch.rand(2, 3, 9, 9), torch.tensor([0, 3])
    want = model(images)
    set_global_pool(model, "avg")  # the same pooling: the same logits
    torch.testing.assert_close(model(images), want)
    set_global_pool(model, "catavgmax")
    pool = model.global_pool if hasattr(model, "global_pool") else model.head.global_pool
    assert pool.feat_mult() == 2 and model.get_classifier().in_features == 2 * C
    assert pool.input_fmt == ("NCHW" if model_class is _TimmLikeResNet else "NHWC")
    assert pool.flatten == (model_class is _TimmLikeResNet)
    if model_class is _TimmLikeNHWCNet:
        assert model.head.norm.normalized_shape == (2 * C,)
    assert model(images).shape == (2, 4)
    _train_step(model.train(), images, labels, lambda out: out)


def test_timm_models():
    """Runs where timm imports (it needs torchvision, not installable beside this torch build)."""
    timm = pytest.importorskip("timm")
    for arch in ("resnet18", "convnext_atto"):
        model = timm.create_model(arch, pretrained=False, num_classes=4)
        set_global_pool(model, "catavgmax")
        images, labels = torch.rand(2, 3, 64, 64), torch.tensor([0, 3])
        assert model.eval()(images).shape == (2, 4)
        assert model.get_classifier().in_features == 2 * model.forward_features(images).shape[1]
        _train_step(model.train(), images, labels, lambda out: out)
