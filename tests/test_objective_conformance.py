"""Conformance of graphs and loss with the reference's measured outputs.

Vectors: ``shared/conformance/loss_vectors.{json,npz}`` (README section 3). Config: A0 with
``weighting="none"`` (ablation A3), ``structural_rule="parity"`` (the reference rule),
``knn_k=7`` and ``dd_topk=304``; everything runs in float64.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shamisa_core.graphs import BRANCH_ALIASES, GraphConfig, knn_affinity
from shamisa_core.losses import LossConfig
from shamisa_core.models import build_prototype_head
from shamisa_core.objective import ObjectiveOutput, compute_objective

CONF = Path(__file__).resolve().parent / "data" / "conformance"  # missing files fail, never skip

META_BRANCHES = ("S", "RD", "RR", "DD")
FEATURE_BRANCHES = ("K", "O")


def conformance_configs() -> tuple[GraphConfig, LossConfig]:
    """A0 with the three documented changes plus the reference's structural rule."""
    return GraphConfig(weighting="none", structural_rule="parity", knn_k=7, dd_topk=304), LossConfig()


@pytest.fixture(scope="module")
def vectors():
    lv = np.load(CONF / "loss_vectors.npz")
    lj = json.loads((CONF / "loss_vectors.json").read_text())
    return {k: lv[k] for k in lv.files}, lj


def run(vectors, dtype=torch.float64) -> ObjectiveOutput:
    lv, lj = vectors
    s = lj["shape"]
    head = build_prototype_head(s["D_h"], s["K_prototypes"]).to(dtype)
    w = torch.tensor(lv["proto_weight"], dtype=dtype)
    with torch.no_grad():
        head.parametrizations.weight.original1.copy_(w)
        head.parametrizations.weight.original0.copy_(w.norm(dim=1, keepdim=True))
    meta = {
        "indices": torch.tensor(lv["indices"]),
        "var_dist": torch.tensor(lv["var_dist"]),
        "n_dist": torch.tensor(lv["n_dist"]),
        "B": s["B"], "R": s["R"], "C": s["C"], "L": s["L"],
    }
    h = torch.tensor(lv["h"], dtype=dtype)
    z = torch.tensor(lv["z"], dtype=dtype)
    return compute_objective(h, z, meta, head, None, *conformance_configs())


@pytest.fixture(scope="module")
def out64(vectors):
    return run(vectors)


def rel_err(mine: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(mine - ref) / np.maximum(np.abs(ref), 1e-300))) if ref.size else 0.0


def assert_same_index(mine: torch.Tensor, ref: np.ndarray, what: str) -> None:
    assert tuple(mine.shape) == ref.shape, f"{what}: {tuple(mine.shape)} vs {ref.shape}"
    assert np.array_equal(mine.numpy(), ref), f"{what}: edge index sets differ"


def test_node_order(vectors):
    from shamisa_core.graphs import BatchShape, node_table

    lv, lj = vectors
    s = lj["shape"]
    tab = node_table(BatchShape(s["B"], s["R"], s["C"], s["L"]))
    assert np.array_equal(tab["is_ref"].numpy(), lv["node_is_ref"])
    for k in ("b", "v"):
        assert np.array_equal(tab[k].numpy(), lv[f"node_{k}"])
    dist = lv["node_is_ref"] == 0
    for k in ("c", "l"):
        assert np.array_equal(tab[k].numpy()[dist], lv[f"node_{k}"][dist])


@pytest.mark.parametrize("alias", META_BRANCHES + FEATURE_BRANCHES)
def test_branch_edges(out64, vectors, alias):
    lv, lj = vectors
    name = {a: b for b, a in BRANCH_ALIASES.items()}[alias]
    raw, scaled = out64.graph.raw[name], out64.graph.scaled[name]
    assert_same_index(raw.index, lv[f"{alias}/index"], alias)
    assert raw.n_edges == lj["branches"][alias]["stored_entries"]
    tol = 1e-7 if alias in META_BRANCHES else 1e-10
    assert rel_err(raw.values.detach().numpy(), lv[f"{alias}/raw_values"]) <= tol
    assert rel_err(scaled.values.detach().numpy(), lv[f"{alias}/scaled_values"]) <= tol
    upper = int((raw.index[0] < raw.index[1]).sum())
    assert upper == lj["branches"][alias]["entries_with_row_lt_col"]


def test_dd_candidates_before_topk(vectors):
    from shamisa_core.graphs import BatchShape, dist_dist_pairs, varying_slot_severity

    lv, lj = vectors
    s = lj["shape"]
    shape = BatchShape(s["B"], s["R"], s["C"], s["L"])
    t_var = varying_slot_severity(torch.tensor(lv["indices"]), torch.tensor(lv["var_dist"]))
    allp = dist_dist_pairs(shape, t_var)
    assert_same_index(allp.index, lv["DD_all/index"], "DD_all")
    assert rel_err(allp.values.double().numpy(), lv["DD_all/values"]) <= 1e-7


def test_merged_and_final(out64, vectors):
    lv, lj = vectors
    g = out64.graph
    assert_same_index(g.merged.index, lv["merged/index"], "merged")
    assert_same_index(g.final.index, lv["final/index"], "final")
    assert rel_err(g.merged.values.detach().numpy(), lv["merged/values"]) <= 1e-7
    assert rel_err(g.final.values.detach().numpy(), lv["final/values"]) <= 1e-7
    assert g.final.n_edges == lj["merged"]["final_edges_row_lt_col"] == 392
    assert out64.diagnostics["weight/final"] == pytest.approx(lj["merged"]["final_sum_w"], rel=1e-7)
    assert out64.diagnostics["weight_sq/final"] == pytest.approx(lj["merged"]["final_sum_w2"], rel=1e-7)


def test_feature_intermediates(out64, vectors):
    lv, _ = vectors
    t = out64.graph.transport
    assert np.max(np.abs(t.logits.detach().numpy() - lv["proto_logits"])) <= 1e-10
    assert np.max(np.abs(t.q.numpy() - lv["proto_q"])) <= 1e-10
    assert np.max(np.abs(t.log_p.exp().detach().numpy() - lv["proto_p"])) <= 1e-10
    assert np.max(np.abs(t.scores.detach().numpy() - lv["transport_scores"])) <= 1e-10
    aff = knn_affinity(torch.tensor(lv["h"])).numpy()
    assert np.max(np.abs(aff - lv["knn_affinity"])) <= 1e-10


def test_loss_terms_float64(out64, vectors):
    _, lj = vectors
    ref = lj["loss_float64"]
    errors = {}
    for key, value in ref.items():
        mine = out64.terms[key].item()
        errors[key] = abs(mine - value) / abs(value) if value != 0 else abs(mine)
    bad = {k: e for k, e in errors.items() if e > 1e-6}
    assert not bad, f"terms off by more than 1e-6 relative: {bad}"


def test_float32_run_same_edges_and_close_total(vectors):
    lv, lj = vectors
    out = run(vectors, dtype=torch.float32)
    for alias in META_BRANCHES + FEATURE_BRANCHES:
        name = {a: b for b, a in BRANCH_ALIASES.items()}[alias]
        assert_same_index(out.graph.raw[name].index, lv[f"{alias}/index"], f"{alias} (float32)")
    assert_same_index(out.graph.final.index, lv["final/index"], "final (float32)")
    ref = lj["loss_float32_direct"]["total"]
    assert out.total.item() == pytest.approx(ref, rel=1e-5)
