"""``shamisa evaluate``: benchmark an encoder (and its twins) on IQA datasets.

    shamisa evaluate --encoder PATH|URI --dataset NAME=ROOT [--dataset ...] [--cross] [--fr]
                     [--json OUT] [--no-twins] [--crop-size N]

``NAME`` is one of live, csiq, tid2013, kadid10k, koniq10k, clive, spaq, flive, proxy; ``proxy``
takes no root (``--dataset proxy`` or ``proxy=default``: the embedded pseudo-MOS benchmark,
built on first use) or a folder holding a built proxy. ``PATH`` is ``encoder.pt`` (or its
folder) or an MLflow URI (``models:/shamisa-encoder/3``, ``models:/shamisa-iqa@champion``,
``runs:/<id>/...``) of the SQLite store ``--mlflow-dir`` (default ``outputs/mlflow``).

Prints the table (trained vs its init twin and random twin, SRCC/PLCC per dataset, METHOD.md
§7.6 medians over splits, images that failed); ``--json`` writes the full result
(``stages.SCHEMA``) atomically. The cross-dataset diagonal shows the standard protocol.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .roots import DATASET_NAMES, PROXY, parse_dataset_args  # noqa: F401 (re-exported)

parse_datasets = parse_dataset_args


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate", help="evaluate an encoder on IQA benchmarks (trained vs untrained twin)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", required=True, metavar="PATH|URI",
                   help="encoder.pt, a folder holding it, or an MLflow model/run URI")
    p.add_argument("--dataset", action="append", required=True, metavar="NAME=ROOT",
                   help=f"a benchmark and its folder; NAME in {', '.join(DATASET_NAMES)} "
                        "(proxy needs no ROOT); repeat for several")
    p.add_argument("--cross", action="store_true", help="also the cross-dataset protocol (§7.7)")
    p.add_argument("--fr", action="store_true",
                   help="also the full-reference protocol on |h_ref - h_dist| (§7.8)")
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON (atomically)")
    p.add_argument("--no-twins", "--no-baseline", dest="no_twins", action="store_true",
                   help="skip the twins (init twin: the encoder's own init without SHAMISA "
                        "training; random twin: random init; both with the training seed)")
    p.add_argument("--crop-size", type=int, metavar="N",
                   help="crop size (default: the encoder's training patch size)")
    p.add_argument("--cache-dir", default="outputs/evaluation",
                   help="splits, feature cache, regressors and the proxy (default: %(default)s)")
    p.add_argument("--proxy-dir", default="outputs/benchmarks/proxy",
                   help="where the proxy is built, one folder per spec (default: %(default)s, "
                        "shared with the Dagster pipeline)")
    p.add_argument("--mlflow-dir", default=None,
                   help="MLflow SQLite store used to resolve models:/ and runs:/ URIs "
                        "(default: $MLFLOW_TRACKING_URI, else outputs/mlflow)")
    p.add_argument("--seed", type=int, default=27, help="split seed (27 + split index)")
    p.add_argument("--batch-size", type=int, default=None, help="crops per encoder call")
    p.add_argument("--proxy-refs", type=int, metavar="N",
                   help="proxy: number of reference photos (default: benchmark default)")
    p.add_argument("--proxy-types", metavar="T1,T2,...",
                   help="proxy: distortion types (engine keys; default: all 26)")
    p.add_argument("--proxy-levels", metavar="L1,L2,...",
                   help="proxy: severities t in [0, 4] (default: 0,1,2,3,4)")
    p.add_argument("--plots", metavar="DIR",
                   help="also draw the pictures (per-type SRCC bars vs twins, predicted vs "
                        "true scatter, t-SNE of features) as PNG files in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def proxy_spec_from_args(args: argparse.Namespace):  # noqa: ANN201 - ProxySpec | None
    """The ``ProxySpec`` the ``--proxy-*`` options ask for (None: the benchmark default)."""
    from .prepared import proxy_spec_with

    if args.proxy_refs is None and args.proxy_types is None and args.proxy_levels is None:
        return None
    types = [t.strip() for t in (args.proxy_types or "").split(",") if t.strip()]
    levels = [float(v) for v in (args.proxy_levels or "").split(",") if v.strip()]
    return proxy_spec_with(args.proxy_refs, types, levels)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate, print the table, optionally write the JSON; exit status 0."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from shamisa_core.artifacts import is_mlflow_uri
    from shamisa_core.atomic import atomic_write_json

    from .cache import DEFAULT_FEATURE_BATCH
    from .report import format_table
    from .stages import evaluate_encoder

    datasets = parse_datasets(args.dataset)
    if args.crop_size is not None and args.crop_size < 8:
        raise ValueError(f"--crop-size {args.crop_size} is too small (at least 8)")
    tracking_uri = None
    if is_mlflow_uri(args.encoder):
        from shamisa_core.tracking import tracking_uri as sqlite_uri

        # An explicit --mlflow-dir wins over the environment.
        if args.mlflow_dir is not None:
            tracking_uri = sqlite_uri(Path(args.mlflow_dir))
        else:
            tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(Path("outputs/mlflow"))
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    from mlflow.exceptions import MlflowException

    try:
        result = evaluate_encoder(
            args.encoder, datasets, cross=args.cross, fr=args.fr, twins=not args.no_twins,
            cache_dir=Path(args.cache_dir), crop_size=args.crop_size, seed=args.seed,
            proxy_spec=proxy_spec_from_args(args), proxy_base=Path(args.proxy_dir),
            tracking_uri=tracking_uri,
            batch_size=args.batch_size or DEFAULT_FEATURE_BATCH, log=log)
    except MlflowException as exc:
        raise ValueError(f"cannot resolve {args.encoder}: {exc.message}") from None
    print(format_table(result))
    if args.json:
        path = atomic_write_json(args.json, result)
        print(f"wrote {path}", file=sys.stderr)
    if args.plots:
        from .pictures import make_pictures, tables_from_meta

        made = make_pictures(result, args.plots, tables_from_meta(result))
        print(f"wrote {len(made)} pictures to {args.plots}", file=sys.stderr)
    return 0
