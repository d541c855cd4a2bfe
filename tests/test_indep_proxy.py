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
