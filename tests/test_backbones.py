"""EfficientNet-Lite0 from the packaged ImageNet weights, freezing, BN folding, the collapse guard,
and the train/proxy photo split (METHOD.md §5, §6.3; docs/DECISIONS.md P1-P3)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from shamisa_core import backbones
from shamisa_core.backbones import lite0_key_map, load_lite0_imagenet, packaged_lite0_weights
from shamisa_core.inference import InferenceOptions, fold_batchnorm
from shamisa_core.models import ModelConfig, build_backbone, build_model
from shamisa_core.training.checkpoint import Encoder
from shamisa_core.training.health import HealthThresholds, assess

LITE0 = ModelConfig(arch="efficientnet_lite0", init="imagenet", n_branches=0)


@pytest.fixture(scope="module")
def lite0_classifier() -> torch.nn.Module:
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    return load_lite0_imagenet(net, with_classifier=True).eval()


def test_every_packaged_weight_maps_one_to_one_with_strict_loading():
    state = torch.load(packaged_lite0_weights(), map_location="cpu", weights_only=True)
    mapped = {lite0_key_map(k): k for k in state}
    assert len(mapped) == len(state) == 296  # injective: no two source keys on one target
    import timm

    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert set(mapped) == set(target)
    for new, old in mapped.items():
        assert state[old].shape == target[new].shape, (old, new)


def test_key_map_rejects_unknown_keys():
    with pytest.raises(KeyError, match="unknown"):
        lite0_key_map("_blocks.0._se_reduce.weight")
    with pytest.raises(KeyError):
        lite0_key_map("_blocks.16._bn0.weight")  # Lite0 has 16 blocks (0..15)


def test_imagenet_sanity_a_cat_photo_gives_cat_classes(lite0_classifier):
    import skimage.data

    img = Image.fromarray(skimage.data.chelsea()).resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255)[None]
    x = (x - torch.tensor(backbones.TF_MEAN).view(1, 3, 1, 1)) / torch.tensor(backbones.TF_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        top3 = lite0_classifier(x).topk(3).indices[0].tolist()
    assert top3[0] == 285  # Egyptian cat
    assert set(top3) == {281, 282, 285}  # tabby, tiger cat, Egyptian cat


def test_backbone_takes_imagenet_normalised_input_like_the_classifier(lite0_classifier):
    """The Renormalize layer makes ImageNet-normalised input equal the TF-normalised one."""
    torch.manual_seed(0)
    pix = torch.rand(2, 3, 64, 64)
    inet = (pix - torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        backbones.IMAGENET_STD).view(1, 3, 1, 1)
    tf = (pix - 0.5) / 0.5
    bb = build_backbone(LITE0).eval()
    with torch.no_grad():
        ours = bb(inet)
        ref = lite0_classifier.forward_head(lite0_classifier.forward_features(tf), pre_logits=True)
    assert ours.shape == (2, 1280)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_feature_dim_flows_through_projector_and_heads():
    cfg = ModelConfig(arch="efficientnet_lite0", init="random", n_prototypes=8, n_branches=0)
    assert (cfg.feature_dim, cfg.hidden_dim, cfg.out_dim) == (1280, 1920, 480)
    model = build_model(cfg).eval()
    refs, dists = torch.randn(1, 2, 3, 32, 32), torch.randn(1, 2, 1, 2, 3, 32, 32)
    with torch.no_grad():
        h, z = model(refs, dists)
    assert h.shape == (6, 1280) and z.shape == (6, 480)
    torch.testing.assert_close(h.norm(dim=1), torch.ones(6))


def test_resnet_imagenet_init_names_the_missing_weights_file(tmp_path):
    missing = tmp_path / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_backbone(ModelConfig(arch="resnet18", init="imagenet", weights_path=str(missing)))


def test_resnet_imagenet_init_loads_a_given_torchvision_file(tmp_path):
    import torchvision

    torch.manual_seed(3)
    src = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(src.state_dict(), path)
    bb = build_backbone(ModelConfig(arch="resnet18", init="imagenet", weights_path=str(path)))
    torch.testing.assert_close(bb.conv1.weight, src.conv1.weight)


def test_freeze_stages_keeps_weights_and_bn_statistics():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="efficientnet_lite0", init="random", n_branches=0, freeze_stages=2))
    stem_w = model.backbone.net.conv_stem.weight.detach().clone()
    stem_rm = model.backbone.net.bn1.running_mean.clone()
    late_rm = model.backbone.net.bn2.running_mean.clone()
    model.train()
    assert not model.backbone.net.bn1.training and model.backbone.net.bn2.training
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    _, z = model(torch.randn(1, 2, 3, 32, 32), torch.randn(1, 2, 1, 2, 3, 32, 32))
    z.pow(2).mean().backward()
    opt.step()
    assert torch.equal(model.backbone.net.conv_stem.weight, stem_w)
    assert torch.equal(model.backbone.net.bn1.running_mean, stem_rm)
    assert not torch.equal(model.backbone.net.bn2.running_mean, late_rm)  # later stages do train
    with pytest.raises(ValueError, match="stages"):
        build_model(ModelConfig(arch="resnet18", init="random", n_branches=0, freeze_stages=9))


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "resnet18"])
def test_bn_folding_is_exact_in_fp32_and_channels_last_too(arch):
    torch.manual_seed(0)
    bb = build_backbone(ModelConfig(arch=arch, init="random", n_branches=0))
    # non-trivial statistics, so a wrong fold would show
    for m in bb.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    bb.eval()
    x = torch.randn(3, 3, 64, 64)
    exact = Encoder(bb)
    fast = Encoder(bb, InferenceOptions(fold_bn=True, channels_last=True, bf16=False))
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in fast.backbone.modules())
    assert n_bn == 0  # every BN folded
    with torch.no_grad():
        torch.testing.assert_close(fast(x), exact(x), rtol=1e-4, atol=1e-5)
    assert fast.inference_tag == "fold=1;bf16=0" and exact.inference_tag == "fold=0;bf16=0"
    # the original backbone is untouched (the encoder folds a private copy)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bb.modules())


def test_bf16_features_stay_close_to_fp32():
    torch.manual_seed(0)
    bb = build_backbone(LITE0).eval()
    x = torch.randn(4, 3, 96, 96)
    with torch.no_grad():
        a = Encoder(bb)(x)
        b = Encoder(bb, InferenceOptions(fold_bn=True, channels_last=True, bf16=True))(x)
    assert b.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.98


def test_fold_counts_only_conv_bn_pairs():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.BatchNorm2d(4))
    assert fold_batchnorm(net) == 1
    assert isinstance(net[1], torch.nn.Identity) and isinstance(net[3], torch.nn.BatchNorm2d)


def _rows(erank: float, zstd: float, loss: float = -1.0, n: int = 5, hstd: float = 0.02) -> list[dict]:
    return [{"step": i, "loss": loss, "h/erank": erank, "z/std_mean": zstd, "h/std_mean": hstd}
            for i in range(n)]


def test_health_passes_a_live_representation_and_names_each_failure():
    ok = assess(_rows(30.0, 0.1))
    assert ok["passed"] and ok["reasons"] == []
    collapsed = assess(_rows(1.5, 0.0005))
    assert not collapsed["passed"]
    assert any("effective rank" in r for r in collapsed["reasons"])
    assert any("std of z" in r for r in collapsed["reasons"])
    assert not assess(_rows(30.0, 0.1, loss=float("nan")))["passed"]
    # h still spans 31 directions but no longer varies (the old cpu-small recipe): caught
    frozen_h = assess(_rows(31.0, 0.006, hstd=1e-5))
    assert not frozen_h["passed"] and frozen_h["reasons"] == ["per-dimension std of h 1e-05 < 0.002"]
    assert not assess([])["passed"]
    # the window: only the last rows count
    rows = _rows(30.0, 0.1) + _rows(1.2, 0.1, n=3)
    assert not assess(rows, HealthThresholds(window=3))["passed"]
    assert assess(rows, HealthThresholds(window=3, min_h_erank=1.0))["passed"]


def test_training_and_proxy_photos_are_disjoint_by_name_and_content():
    from shamisa_core.pristine import PROXY_PHOTOS, TRAIN_PHOTOS, embedded_photos

    assert not set(TRAIN_PHOTOS) & set(PROXY_PHOTOS)
    train = embedded_photos("train")
    proxy = embedded_photos("proxy")
    digest = lambda arr: hashlib.sha256(arr.tobytes()).hexdigest()  # noqa: E731
    assert not {digest(a) for _, a in train} & {digest(a) for _, a in proxy}
    for _, arr in train + proxy:
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
        assert min(arr.shape[:2]) >= 300  # natural photos, no icons
