"""Model tests on tiny inputs (METHOD.md §4.1, §4.5, §5, §3.4.2, §3.5; DECISIONS.md 10)."""

from __future__ import annotations

import pytest
import torch

from shamisa_core.models import (
    BranchAggregator,
    ModelConfig,
    build_model,
    build_prototype_head,
    expected_weights_file,
)

TINY = ModelConfig(arch="resnet18", init="random", n_prototypes=8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(TINY)


def test_dims_follow_paper_ratios():
    assert ModelConfig().arch == "resnet50" and ModelConfig().init == "imagenet"
    r50 = ModelConfig(init="random")
    assert (r50.feature_dim, r50.hidden_dim, r50.out_dim) == (2048, 3072, 768)
    assert (TINY.feature_dim, TINY.hidden_dim, TINY.out_dim) == (512, 768, 192)
    assert ModelConfig(arch="resnet18", projector_out=64).out_dim == 64


def test_forward_shapes_unit_norm_and_node_order(model):
    B, V, C, L, P = 1, 2, 1, 2, 32
    torch.manual_seed(1)
    refs = torch.randn(B, V, 3, P, P)
    dists = torch.randn(B, V, C, L, 3, P, P)
    model.eval()
    with torch.no_grad():
        h, z = model(refs, dists)
        n = B * V + B * V * C * L
        assert h.shape == (n, 512) and z.shape == (n, 192)
        assert torch.allclose(h.norm(dim=1), torch.ones(n), atol=1e-5)
        # node order: refs first (b, v), then dists (b, v, c, l) row-major (METHOD §3.1)
        h_d, _ = model.embed(dists.reshape(-1, 3, P, P))
        assert torch.allclose(h[B * V:], h_d, atol=1e-5)
        h_r = model.encode(refs[0, 1:2])
        assert torch.allclose(h[1], h_r[0], atol=1e-5)


def test_two_separate_backbone_calls(model):
    calls = []
    hook = model.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        model.train()
        model(torch.randn(1, 2, 3, 32, 32), torch.randn(1, 2, 1, 2, 3, 32, 32))
    finally:
        hook.remove()
        model.eval()
    assert calls == [2, 4]


def test_prototype_head_is_weight_normalised():
    torch.manual_seed(0)
    head = build_prototype_head(64, 32)
    assert hasattr(head, "parametrizations") and "weight" in head.parametrizations
    assert head.bias is None
    g = head.parametrizations.weight.original0
    v = head.parametrizations.weight.original1
    assert g.shape == (32, 1) and v.shape == (32, 64)
    assert bool((v.abs() <= 1 / 8).all())
    assert torch.allclose(head.weight.norm(dim=1, keepdim=True), g)
    with torch.no_grad():
        v.mul_(3.0)  # direction-only change: effective row norms stay g
    assert torch.allclose(head.weight.norm(dim=1, keepdim=True), g, atol=1e-6)


def test_aggregator_shapes():
    agg = BranchAggregator(6)
    assert agg(torch.randn(12)).shape == (6,)
    assert agg(torch.randn(3, 12)).shape == (3, 6)
    layers = [type(m).__name__ for m in agg.net]
    assert layers == ["LayerNorm", "Linear", "LayerNorm", "PReLU", "Linear"]
    assert agg.net[1].out_features == 24
    assert build_model(ModelConfig(arch="resnet18", init="random", n_branches=0)).aggregator is None


def test_imagenet_init_without_local_weights_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = expected_weights_file("resnet18")
    assert expected.name == "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        build_model(ModelConfig(arch="resnet18", init="imagenet"))
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        build_model(ModelConfig(arch="resnet18", init="imagenet", weights_path=str(tmp_path / "nothere.pth")))


def test_imagenet_init_loads_local_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    import torchvision

    torch.manual_seed(5)
    src = torchvision.models.resnet18(weights=None)
    path = expected_weights_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(src.state_dict(), path)
    m = build_model(ModelConfig(arch="resnet18", init="imagenet", n_prototypes=4))
    sd = m.backbone_state_dict()
    assert "fc.weight" not in sd
    assert torch.equal(sd["conv1.weight"], src.state_dict()["conv1.weight"])


def test_projector_input_and_scale_switches():
    """`projector_input="f"` projects the un-normalised feature; `projector_scale` multiplies z."""
    import torch

    from shamisa_core.models import ModelConfig, build_model

    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    ref = build_model(ModelConfig(arch="resnet18", init="random", n_branches=0)).eval()
    with torch.no_grad():
        h, z = ref.embed(x)
        f = ref.backbone(x)
        assert torch.allclose(z, ref.projector(h))
        alt = build_model(ModelConfig(arch="resnet18", init="random", n_branches=0,
                                      projector_input="f", projector_scale=3.0)).eval()
        alt.load_state_dict(ref.state_dict())
        h2, z2 = alt.embed(x)
        assert torch.allclose(h2, h)
        assert torch.allclose(z2, 3.0 * ref.projector(f))
