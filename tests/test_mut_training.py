"""Checks of `shamisa_core.training` written against mutation-testing survivors (issue 10):
the log summaries and plots (report.py), MLflow logging (mlflow_train.py), the collapse guard
(health.py), the ``train`` parser, the wrong-shape message and the lazy package exports.
Expected values are written out here or read back from the files and stores the code writes."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib
import pytest
import torch
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shamisa_core.training import cli_train, data, health, report  # noqa: E402
from shamisa_core.training.checkpoint import load_encoder  # noqa: E402

ROWS = [
    {"step": 1, "loss": 4.0, "loss/L_var": 1.0, "loss/L_cov": 2.0, "loss/L_inv": 1.0,
     "h/erank": 3.0, "z/erank": 2.0, "edges/knn": 10, "weight/knn": 2.5, "lr": 0.1},
    {"step": 3, "loss": 2.0, "loss/L_var": 0.5, "loss/L_cov": 1.0, "loss/L_inv": 0.5,
     "h/erank": 5.0, "z/erank": 4.0, "edges/knn": 12, "weight/knn": 3.0, "lr": 0.05, "note": "x",
     "loss/bad": "nan-string", "edges/bad": None},
]


@pytest.fixture
def figures(monkeypatch):
    """Figures the plotting code closes, kept for inspection (plt.close still runs)."""
    kept: list = []
    real_close = plt.close

    def close(fig=None):
        kept.append(fig)
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    return kept


def _lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


# ------------------------------------------------------------------------------ report.py
def test_final_terms_and_branch_edges_read_the_last_row():
    assert report.final_terms(ROWS) == {"loss": 2.0, "loss/L_var": 0.5, "loss/L_cov": 1.0, "loss/L_inv": 0.5}
    assert report.branch_edges(ROWS) == {"edges/knn": 12.0, "weight/knn": 3.0}
    assert all(type(v) is float for v in report.branch_edges(ROWS).values())
    assert report.final_terms([]) == {} and report.branch_edges([]) == {}


def test_loss_curve_png_plots_loss_terms_and_ranks(tmp_path, figures):
    out = report.loss_curve_png(ROWS, tmp_path / "sub" / "curve.png")
    assert out == tmp_path / "sub" / "curve.png"
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (1000, 360)  # figsize (10, 3.6) at 100 dpi
    (fig,) = figures
    left, right = fig.axes
    assert (left.get_title(), left.get_xlabel()) == ("loss", "step")
    assert (right.get_title(), right.get_xlabel()) == ("effective rank", "step")
    lines = _lines(left)
    assert list(lines) == ["total", "L_var", "L_cov", "L_inv"]
    assert list(lines["total"].get_xdata()) == [1, 3] and list(lines["total"].get_ydata()) == [4.0, 2.0]
    assert matplotlib.colors.to_hex(lines["total"].get_color()) == "#000000"
    assert list(lines["L_cov"].get_ydata()) == [2.0, 1.0] and lines["L_cov"].get_alpha() == 0.8
    assert lines["total"].get_alpha() is None
    ranks = _lines(right)
    assert list(ranks) == ["h/erank", "z/erank"] and list(ranks["z/erank"].get_ydata()) == [2.0, 4.0]
    for ax in (left, right):
        legend = ax.get_legend()
        assert legend is not None and [t.get_fontsize() for t in legend.get_texts()] == [8.0] * len(ax.get_lines())


def test_loss_curve_png_leaves_out_terms_the_log_lacks(tmp_path, figures):
    rows = [{"step": 2, "loss": 1.5}, {"step": 4, "loss": 1.0}]
    report.loss_curve_png(rows, tmp_path / "c.png")
    left, right = figures[0].axes
    assert list(_lines(left)) == ["total"] and list(_lines(right)) == []


def test_diagnostics_png_panels(tmp_path, figures):
    rows = [
        {"loss": 3.0, "loss/L_var": 1.0, "h/erank": 2.0, "h/erank_raw": 2.5, "z/std_mean": 0.1, "z/std_min": 0.01},
        {"loss": 2.0, "loss/L_var": "bad", "h/erank": 4.0, "h/erank_raw": 4.5, "z/std_mean": 0.2, "z/std_min": 0.02},
    ]
    out = report.diagnostics_png(rows, tmp_path / "d.png")
    assert out == tmp_path / "d.png"
    with Image.open(out) as im:
        assert im.size == (1400, 380)
    (fig,) = figures
    a0, a1, a2 = fig.axes
    assert [a.get_title() for a in fig.axes] == ["effective rank of h", "std of z", "loss terms"]
    assert [a.get_xlabel() for a in fig.axes] == ["step"] * 3
    assert list(_lines(a0)) == ["h/erank", "h/erank_raw"] and list(_lines(a1)) == ["z/std_mean", "z/std_min"]
    terms = _lines(a2)
    assert list(terms) == ["loss", "L_var"]
    assert list(terms["loss"].get_xdata()) == [0, 1]  # no "step" key: the row index
    assert matplotlib.colors.to_hex(terms["loss"].get_color()) == "#000000"
    assert matplotlib.colors.to_hex(terms["L_var"].get_color()) != "#000000"
    y = terms["L_var"].get_ydata()
    assert y[0] == 1.0 and math.isnan(y[1])  # a non-number is a gap
    assert list(_lines(a1)["z/std_min"].get_ydata()) == [0.01, 0.02]
    for ax in fig.axes:
        assert [t.get_fontsize() for t in ax.get_legend().get_texts()] == [7.0] * len(ax.get_lines())


def test_diagnostics_png_without_rows_writes_nothing(tmp_path):
    assert report.diagnostics_png([], tmp_path / "d.png") is None
    assert not (tmp_path / "d.png").exists()


def test_diagnostics_png_panel_without_series_has_no_legend(tmp_path, figures):
    report.diagnostics_png([{"step": 5, "loss": 1.0}], tmp_path / "d.png")
    a0, a1, a2 = figures[0].axes
    assert a0.get_legend() is None and a1.get_legend() is None and a2.get_legend() is not None


# ------------------------------------------------------------------------------ health.py
def test_health_means_the_last_window_rows():
    rows = [{"h/erank": v, "h/std_mean": 0.02, "z/std_mean": 0.1, "loss": 1.0} for v in (100.0, 2.0, 4.0, 6.0)]
    got = health.assess(rows, health.HealthThresholds(window=3))
    assert got["h_erank"] == pytest.approx(4.0) and got["z_std"] == pytest.approx(0.1)
    assert got["passed"] is False and got["reasons"] == ["effective rank of h 4 < 5.0"]
    assert got["thresholds"] == {"min_h_erank": 5.0, "min_z_std": 1e-3, "min_h_std": 2e-3, "window": 3}


def test_health_names_a_dead_projector():
    rows = [{"h/erank": 30.0, "h/std_mean": 0.02, "z/std_mean": 2e-4, "loss": 1.0}] * 3
    got = health.assess(rows)
    assert got["reasons"] == ["per-dimension std of z 0.0002 < 0.001"] and not got["passed"]


# ------------------------------------------------------------------------------ cli_train.py
def _train_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(prog="shamisa")
    sub = parser.add_subparsers(dest="cmd")
    cli_train.add_train_parser(sub)
    return parser, sub.choices["train"]


def test_train_parser_requires_out_and_documents_flags(capsys):
    parser, train_p = _train_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--corpus", "c"])
    assert "--out" in capsys.readouterr().err
    args = parser.parse_args(["train", "--corpus", "c", "--out", "o", "--skip-bad-shards", "--overwrite"])
    assert args.skip_bad_shards and args.overwrite and not args.resume and args.steps is None
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--corpus", "c", "--out", "o", "--resume", "--overwrite"])
    text = " ".join(train_p.format_help().split())
    for phrase in ("replace the run already in OUT", "continue exactly from OUT/checkpoint.pt",
                   "optimiser steps", "leave out shards that do not match the manifest"):
        assert phrase in text, phrase


# ------------------------------------------------------------------------------ data.py
def _group(shapes_ok: bool = True) -> dict:
    P = 8
    return {
        "key": "s000012_g000003",
        "ref": torch.zeros(4, 3, P, P),
        "dist": torch.zeros(4, 2, 2, 3, P, P) if shapes_ok else torch.zeros(4, 2, 3, 3, P, P),
        "indices": torch.zeros(2, 2, 5, dtype=torch.long),
        "n_dist": torch.zeros(2, dtype=torch.long),
    }


class _G:
    n_refs, n_comps, n_levels, patch_size = 2, 2, 2, 8


def test_wrong_shape_message_names_group_shard_and_fix(tmp_path):
    assert data.check_item_shapes(_group(), _G(), tmp_path) is None
    msg = data.check_item_shapes(_group(False), _G(), tmp_path)
    assert msg == (f"group s000012_g000003 in shard {tmp_path / 'shard-000012.tar'} has wrong array shapes: "
                   "dist (4, 2, 3, 3, 8, 8) (expected (4, 2, 2, 3, 8, 8)). Rebuild the corpus for this config "
                   "(`shamisa corpus build`), or pass --skip-bad-shards to leave such groups out")
    odd = {**_group(False), "key": "g7"}
    assert "group g7 in a shard has" in data.check_item_shapes(odd, _G(), tmp_path)


# ------------------------------------------------------------------------------ checkpoint.py
def test_load_encoder_meta_and_options(tmp_path):
    from _eval_helpers import make_encoder
    from shamisa_core.inference import InferenceOptions

    path = make_encoder(tmp_path / "encoder.pt", seed=3, patch_size=32, extra={"step": 9})
    opts = InferenceOptions(fold_bn=True, channels_last=False, bf16=False)
    enc, meta = load_encoder(path, options=opts)
    assert enc.options == opts and "state_dict" not in meta and meta["step"] == 9
    exact, _ = load_encoder(path, options=None)
    assert exact.options == InferenceOptions(fold_bn=False, channels_last=False, bf16=False)
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(enc(x), exact(x), atol=1e-4)  # BN folding keeps the features


# ------------------------------------------------------------------------------ package
def test_lazy_exports_and_unknown_name():
    import shamisa_core.training as tr
    from shamisa_core.training.loop import train

    assert tr.train is train
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        tr.nope  # noqa: B018


# ------------------------------------------------------------------------------ mlflow_train.py
def test_log_training_logs_params_metrics_plots_and_registers(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from _eval_helpers import fresh_mlflow_dir, make_encoder
    from shamisa_core.tracking import ENCODER_MODEL_NAME, pip_requirements, tracking_uri
    from shamisa_core.training.mlflow_train import log_training

    store = fresh_mlflow_dir(tmp_path / "mlflow")
    run_dir = tmp_path / "run"
    make_encoder(run_dir / "encoder.pt", seed=1)
    rows = [{"step": s, "loss": 5.0 - s, "h/erank": 6.0, "z/std_mean": 0.1} for s in (1, 2, 3)]
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tracked = log_training(store, {"train": {"steps": 3}}, run_dir, run_name="r1")  # tags=None
    uri = tracking_uri(store)
    client = MlflowClient(uri, uri)
    run = client.get_run(tracked.run_id)
    assert run.data.params["train.steps"] == "3" and run.info.run_name == "r1"
    assert [m.value for m in client.get_metric_history(tracked.run_id, "loss")] == [4.0, 3.0, 2.0]
    assert {a.path for a in client.list_artifacts(tracked.run_id)} >= {
        "train_log.jsonl", "loss_curve.png", "training_diagnostics.png"}
    assert tracked.loss_curve == run_dir / "loss_curve.png" and tracked.diagnostics == run_dir / "training_diagnostics.png"
    (version,) = client.search_model_versions(f"name='{ENCODER_MODEL_NAME}'")
    assert tracked.model_version == str(version.version) == "1"
    model_dir = Path(mlflow.artifacts.download_artifacts(version.source, dst_path=str(tmp_path / "dl")))
    reqs = (model_dir / "requirements.txt").read_text().split()
    assert [r for r in reqs if not r.startswith("mlflow==")] == pip_requirements()  # mlflow adds itself
    assert (model_dir / "artifacts" / "encoder.pt").read_bytes() == (run_dir / "encoder.pt").read_bytes()
    assert [m.name for m in client.search_logged_models(experiment_ids=[tracked.experiment_id])] == ["encoder"]

    again = log_training(store, {}, run_dir, run_name="r2", tags={"k": "v"}, register=False)
    assert again.model_version is None and client.get_run(again.run_id).data.tags["k"] == "v"
    with pytest.raises(FileNotFoundError, match="encoder.pt is missing"):
        log_training(store, {}, tmp_path / "empty", run_name="x")


# ------------------------------------------------------------------------------ loop.py
def test_optimizer_has_one_group_unless_the_backbone_lr_is_scaled():
    from shamisa_core.training import loop
    from shamisa_core.training.config import TrainConfig

    m = torch.nn.Module()
    m.backbone, m.head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    assert len(loop.build_optimizer(m, TrainConfig(backbone_lr_scale=1.0)).param_groups) == 1
    opt = loop.build_optimizer(m, TrainConfig(lr=0.2, backbone_lr_scale=0.5))
    heads, back = opt.param_groups
    assert [p is q for p, q in zip(heads["params"], m.head.parameters())] == [True, True]
    assert [p is q for p, q in zip(back["params"], m.backbone.parameters())] == [True, True]
    assert (heads["lr"], back["lr"]) == (0.2, 0.1)


def test_non_finite_error_says_how_to_go_on():
    from shamisa_core.training import loop

    msg = str(loop.NonFiniteLossError(3, 0, float("nan"), {"a": float("nan")}))
    assert msg.endswith("non-finite terms: a=nan. Training stopped; lower train.lr, try train.amp=off, "
                        "or resume from the last checkpoint.")


def test_foreign_encoder_file_error_names_the_file(tmp_path):
    from shamisa_core.errors import CheckpointError

    path = tmp_path / "foreign.pt"
    torch.save({"format": "other"}, path)
    with pytest.raises(CheckpointError) as info:
        load_encoder(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"cannot load {path}: it is not a shamisa-encoder/1 file. ")


def test_effective_rank_centres_by_default():
    from shamisa_core.training.diagnostics import effective_rank

    g = torch.Generator().manual_seed(0)
    x = 100.0 + torch.randn(400, 8, generator=g)  # isotropic noise around a far-off mean
    assert effective_rank(x) > 7.5  # centred: the 8 noise directions
    assert effective_rank(x, center=False) < 1.2  # raw: the mean direction dominates
