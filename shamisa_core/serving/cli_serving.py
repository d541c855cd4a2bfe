"""``shamisa score``, ``shamisa fit`` and ``shamisa compare``.

    shamisa score PATH... [--model URI|PATH] [--json OUT | --csv OUT] [--batch-size N]
                  [--device auto|cpu|cuda] [--recursive]
    shamisa fit --images DIR --labels CSV [--encoder URI|PATH]
                [--higher-is-better|--lower-is-better] --out MODEL_DIR [--register NAME]
    shamisa compare [--datasets D1,D2,...] [--json OUT]

Scores are **higher = better**, on the label scale of the data the model's regressor was
fitted on (``model.json``/the registered version says which: the default pipeline fits the
proxy benchmark's pseudo-MOS, 1 = worst to 5 = best). The default model is
``models:/shamisa-iqa@champion`` of the project's MLflow store (``--mlflow-dir``, default
``$MLFLOW_TRACKING_URI`` or ``outputs/mlflow``). ``compare`` reads MLflow only (no torch).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
                  ".pgm")
DEFAULT_MODEL = "models:/shamisa-iqa@champion"
SCALE_HELP = ("Scores are higher = better, on the label scale of the data the model's regressor "
              "was fitted on (the default pipeline: the proxy benchmark's pseudo-MOS, 1 = worst "
              "to 5 = best).")


def _tracking_uri(mlflow_dir: str | None) -> str:
    from shamisa_core.tracking import tracking_uri

    if mlflow_dir is not None:
        return tracking_uri(Path(mlflow_dir))
    return os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri(Path("outputs/mlflow"))


def _mlflow_dir(mlflow_dir: str | None) -> Path:
    return Path(mlflow_dir) if mlflow_dir is not None else Path("outputs/mlflow")


# ----------------------------------------------------------------------------------------------
# score


def add_score_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``score``."""
    p = sub.add_parser("score", help="score images and folders (higher = better)",
                       description=f"Score image files and folders. {SCALE_HELP} One row per "
                       "image: path, score, error; an unreadable file gets its row with the "
                       "reason and the exit status is 1.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="URI|PATH",
                   help="a model folder (encoder.pt + regressor.npz) or an MLflow model URI "
                        "(default: %(default)s)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", metavar="OUT", help="write the rows as JSON (atomically)")
    out.add_argument("--csv", metavar="OUT", help="write the rows as CSV (atomically)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per batch")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--mlflow-dir", default=None, help="MLflow store of models:/ URIs "
                   "(default: $MLFLOW_TRACKING_URI, else outputs/mlflow)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def expand_paths(paths: list[str], recursive: bool = False) -> list[str]:
    """Files as given (even unreadable ones: they get an error row); folders -> their image
    files (by suffix, sorted), sub-folders only with ``recursive``."""
    out: list[str] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            out += sorted(str(f) for f in found
                          if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(text)
    return out


def run_score(args: argparse.Namespace) -> int:
    """Score, print or write the rows; exit status 1 when any image failed."""
    import csv
    import io
    import json

    from shamisa_core.artifacts import is_mlflow_uri
    from shamisa_core.atomic import atomic_write_json, atomic_write_text
    from shamisa_core.serving.api import load_model, score_items

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    items = expand_paths(args.paths, args.recursive)
    if not items:
        raise ValueError(f"no image files in {', '.join(args.paths)}")
    uri = _tracking_uri(args.mlflow_dir) if is_mlflow_uri(args.model) else None
    try:
        model = load_model(args.model, tracking_uri=uri, device=device,
                           download_dir=Path("outputs/evaluation/downloads") if uri else None)
    except Exception as exc:
        if type(exc).__name__ == "MlflowException" or "RESOURCE_DOES_NOT_EXIST" in str(exc):
            raise ValueError(f"cannot load model {args.model}: {getattr(exc, 'message', exc)} "
                             "(run `make run` to register one, or pass --model DIR)") from None
        raise
    rows = []
    chunk = max(args.batch_size, 1) * 4
    show = not args.quiet and len(items) > chunk
    for start in range(0, len(items), chunk):
        rows += score_items(model, items[start:start + chunk], batch_images=args.batch_size)
        if show:
            done = min(start + chunk, len(items))
            bar = "#" * int(30 * done / len(items))
            print(f"\rscoring [{bar:<30}] {done}/{len(items)}", end="", file=sys.stderr, flush=True)
    if show:
        print(file=sys.stderr)
    records = [r.to_json() for r in rows]
    if args.json:
        atomic_write_json(args.json, records)
    elif args.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["path", "score", "error"])
        writer.writeheader()
        writer.writerows(records)
        atomic_write_text(args.csv, buf.getvalue())
    else:
        width = max(len(r["path"]) for r in records)
        for r in records:
            value = f"{r['score']:.4f}" if r["score"] is not None else "-"
            print(f"{r['path']:<{width}}  {value:>8}" + (f"  {r['error']}" if r["error"] else ""))
    failed = [r for r in records if r["error"]]
    if not args.quiet:
        print(f"{len(records) - len(failed)} scored, {len(failed)} failed "
              f"(model {args.model}; higher = better)", file=sys.stderr)
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------------
# fit


def add_fit_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``fit``."""
    p = sub.add_parser("fit", help="fit a quality head on your own labelled photos",
                       description="Fit the ridge quality head on labelled photos with the "
                       "benchmark protocol (reference-disjoint splits if the CSV has a "
                       "`reference` column, else random; alpha chosen on validation) and save a "
                       "model that `shamisa score --model DIR` uses. The labels CSV has a header "
                       "with `image` (relative to --images), `score` and optionally `reference`.")
    p.add_argument("--images", required=True, metavar="DIR")
    p.add_argument("--labels", required=True, metavar="CSV")
    p.add_argument("--encoder", default=DEFAULT_MODEL, metavar="URI|PATH",
                   help="encoder.pt, a folder holding it, or an MLflow URI (default: %(default)s)")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="lower", action="store_false",
                           help="a higher label means better quality (default)")
    direction.add_argument("--lower-is-better", dest="lower", action="store_true",
                           help="a higher label means worse quality (DMOS-like)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR")
    p.add_argument("--register", metavar="NAME", help="also register the model in MLflow")
    p.add_argument("--crop-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=27, help="split seed (27 + split index)")
    p.add_argument("--mlflow-dir", default=None)
    p.add_argument("--json", metavar="OUT", help="write the report as JSON")
    p.add_argument("--quiet", action="store_true")


def run_fit(args: argparse.Namespace) -> int:
    """Fit, print the held-out metrics, save (and register)."""
    from shamisa_core.artifacts import is_mlflow_uri
    from shamisa_core.atomic import atomic_write_json
    from shamisa_core.serving.fit import fit_model

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the model")
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    report = fit_model(args.images, args.labels, out=out, encoder=args.encoder,
                       lower_is_better=args.lower, crop_size=args.crop_size, seed=args.seed,
                       tracking_uri=_tracking_uri(args.mlflow_dir) if is_mlflow_uri(args.encoder) else None,
                       register=args.register, mlflow_dir=_mlflow_dir(args.mlflow_dir), log=log)
    print(report.summary())
    if args.json:
        atomic_write_json(args.json, report.to_json())
    return 0


# ----------------------------------------------------------------------------------------------
# compare


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``compare``."""
    p = sub.add_parser("compare", help="compare the registered shamisa-iqa versions (MLflow)",
                       description="One row per registered shamisa-iqa version: encoder, "
                       "profile, init, steps, corpus hash, git commit, SRCC/PLCC per dataset; "
                       "the champion marked. Reads MLflow only.")
    p.add_argument("--datasets", metavar="D1,D2,...", help="only these datasets' columns")
    p.add_argument("--json", metavar="OUT", help="write the rows as JSON")
    p.add_argument("--mlflow-dir", default=None)
    p.add_argument("--name", default="shamisa-iqa", help="registered model (default %(default)s)")


def run_compare(args: argparse.Namespace) -> int:
    """Print (and write) the comparison table."""
    from shamisa_core.atomic import atomic_write_json
    from shamisa_core.serving.compare import compare_rows, format_compare

    wanted = [d.strip() for d in (args.datasets or "").split(",") if d.strip()] or None
    if (args.mlflow_dir is not None or not os.environ.get("MLFLOW_TRACKING_URI")) and not (
            _mlflow_dir(args.mlflow_dir) / "mlflow.db").is_file():
        print(f"no MLflow store at {_mlflow_dir(args.mlflow_dir)} (run `make run` first)")
        if args.json:
            atomic_write_json(args.json, [])
        return 0
    rows = compare_rows(_tracking_uri(args.mlflow_dir), name=args.name, datasets=wanted)
    print(format_compare(rows, wanted))
    if args.json:
        atomic_write_json(args.json, rows)
    return 0
