"""A tiny proxy benchmark (2 references x 3 types x 3 levels) built by the real builder.

Independent checks: the pseudo-MOS must fall with the distortion level for every
(reference, type) pair and span [1, 5] exactly, and it must agree in sign with a PSNR
computed here with numpy from the written PNGs (not with the builder's metrics). The build
is cached by its spec: an unchanged spec does not rewrite a file, a changed one rebuilds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.stats import spearmanr

from shamisa_core.evaluation.proxy import ProxySpec, build_proxy

SPEC = ProxySpec(n_refs=2, types=("gaublur", "jpeg", "whitenoise"), levels=(0.0, 2.0, 4.0), seed=3)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    out = tmp_path_factory.mktemp("proxy")
    csv = build_proxy(out, SPEC)
    return out, pd.read_csv(csv)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_tiny_proxy_has_every_image(proxy):
    out, df = proxy
    assert len(df) == 2 * 3 * 3
    assert df["ref_img"].nunique() == 2 and sorted(df["type"].unique()) == sorted(SPEC.types)
    for name in list(df["dist_img"]) + list(df["ref_img"].unique()):
        with Image.open(out / "images" / name) as im:
            assert im.size == (512, 384)


def test_pseudo_mos_falls_with_level_and_spans_1_to_5(proxy):
    _, df = proxy
    assert df["dmos"].min() == pytest.approx(1.0, abs=1e-6)
    assert df["dmos"].max() == pytest.approx(5.0, abs=1e-6)
    for (ref, typ), g in df.groupby(["ref_img", "type"]):
        mos = g.sort_values("level")["dmos"].to_numpy()
        assert np.all(np.diff(mos) < 0), (ref, typ, mos)


def test_pseudo_mos_agrees_with_an_independent_psnr(proxy):
    out, df = proxy
    psnr = []
    for _, row in df.iterrows():
        ref = np.asarray(Image.open(out / "images" / row["ref_img"]).convert("RGB"))
        dist = np.asarray(Image.open(out / "images" / row["dist_img"]).convert("RGB"))
        psnr.append(_psnr(ref, dist))
    df = df.assign(psnr=psnr)
    for _, g in df.groupby(["ref_img", "type"]):  # the levels really get worse
        assert np.all(np.diff(g.sort_values("level")["psnr"].to_numpy()) < 0)
    rho = spearmanr(df["dmos"], df["psnr"]).statistic
    assert rho > 0.5, rho  # higher pseudo-MOS = better = higher PSNR


def test_build_is_cached_by_spec(tmp_path):
    spec = ProxySpec(n_refs=1, types=("gaublur",), levels=(0.0, 4.0), seed=3)
    csv = build_proxy(tmp_path, spec)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    body = csv.read_bytes()
    assert build_proxy(tmp_path, spec) == csv
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing rewritten
    changed = ProxySpec(n_refs=1, types=("gaublur",), levels=(0.0, 2.0, 4.0), seed=3)
    build_proxy(tmp_path, changed)
    df = pd.read_csv(csv)
    assert len(df) == 3 and csv.read_bytes() != body
    assert csv.stat().st_mtime_ns != stamps[csv]


def test_pseudo_mos_is_the_mean_z_score_of_the_oriented_metrics_mapped_to_1_5():
    """The pseudo-MOS (METHOD.md §7.1 proxy) from raw metric values, recomputed by hand:
    metrics whose higher value is worse (gmsd, mdsi) flip sign, each metric column is
    standardised (population std), the z-scores are averaged per image and mapped linearly
    onto [1, 5]. Metric spreads well below 1 (as SSIM's are) must still be standardised."""
    from shamisa_core.evaluation.proxy import METRICS, pseudo_mos

    assert [name for name, _ in METRICS] == ["ssim", "gmsd", "haarpsi", "mdsi"]
    rng = np.random.default_rng(3)
    raw = np.column_stack([rng.uniform(0.6, 0.99, 12), rng.uniform(0.01, 0.2, 12),
                           rng.uniform(0.3, 0.9, 12), rng.uniform(0.2, 0.5, 12)])
    expected_z = []
    for j, higher_is_better in enumerate([True, False, True, False]):
        col = raw[:, j] if higher_is_better else -raw[:, j]
        expected_z.append((col - col.mean()) / col.std())
    s = np.mean(expected_z, axis=0)
    expected = 1 + 4 * (s - s.min()) / (s.max() - s.min())
    np.testing.assert_allclose(pseudo_mos(raw), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("argv, expected", [
    ([], None),
    (["--proxy-refs", "3"], {"n_refs": 3}),
    (["--proxy-levels", "0,2.5,4"], {"levels": (0.0, 2.5, 4.0)}),
    (["--proxy-types", "jpeg, gaublur"], {"types": ("jpeg", "gaublur")}),
    (["--proxy-refs", "2", "--proxy-types", "jpeg", "--proxy-levels", "1,3"],
     {"n_refs": 2, "types": ("jpeg",), "levels": (1.0, 3.0)}),
])
def test_proxy_options_change_only_the_fields_they_name(argv, expected):
    """`shamisa evaluate --proxy-*`: no option keeps the benchmark default (None); each option
    replaces its own field of the default spec, comma-separated lists parsed item by item."""
    import argparse
    import dataclasses

    from shamisa_core.evaluation.cli_evaluate import add_evaluate_parser, proxy_spec_from_args
    from shamisa_core.evaluation.prepared import DEFAULT_PROXY_SPEC

    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers(dest="cmd"))
    spec = proxy_spec_from_args(parser.parse_args(["evaluate", "--encoder", "e.pt",
                                                   "--dataset", "proxy", *argv]))
    if expected is None:
        assert spec is None
    else:
        assert spec == dataclasses.replace(DEFAULT_PROXY_SPEC, **expected)
