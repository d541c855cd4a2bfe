"""The ``shamisa`` command line: argument parsing only; the work is done in shamisa_core."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return deco


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


# ---------------------------------------------------------------- distortions
@_command("distortions list")
def _distortions_list(args: argparse.Namespace) -> int:
    from shamisa_core.distortions.registry import REGISTRY

    rows = [
        {
            "family": d.family,
            "type": d.key,
            "reference_key": d.reference_key,
            "anchors": list(d.anchors),
            "integer": d.integer,
            "parameter": d.parameter,
        }
        for d in REGISTRY.values()
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'family':<20} {'type':<18} {'int':<4} {'anchors (t=0..4)':<40} parameter")
        for r in rows:
            anchors = ", ".join(f"{a:g}" for a in r["anchors"])
            print(f"{r['family']:<20} {r['type']:<18} {'yes' if r['integer'] else 'no':<4} {anchors:<40} {r['parameter']}")
    return 0


def parse_chain(text: str) -> list[tuple[str, float]]:
    """Parse ``jpeg:2.5,gaublur:1.0`` into ``[(key, t), ...]`` with clear errors."""
    from shamisa_core.distortions.registry import REGISTRY, get_type

    chain: list[tuple[str, float]] = []
    seen_families: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if ":" not in item:
            raise CliError(f"chain item {item!r} must look like type:t (e.g. jpeg:2.5)")
        key, t_text = item.split(":", 1)
        try:
            dtype = get_type(key.strip())
        except KeyError as exc:
            raise CliError(str(exc.args[0])) from None
        try:
            t = float(t_text)
        except ValueError:
            raise CliError(f"severity {t_text!r} of {key} is not a number") from None
        if not 0.0 <= t <= 4.0:
            raise CliError(f"severity t={t:g} of {key} is outside [0, 4] (0 = mildest, 4 = most severe)")
        if dtype.family in seen_families:
            raise CliError(
                f"{key} and {seen_families[dtype.family]} are both in family {dtype.family}; "
                "a chain takes at most one type per family"
            )
        seen_families[dtype.family] = key
        chain.append((dtype.key, t))
    if not chain:
        raise CliError(f"empty chain; give type:t pairs, types: {', '.join(sorted(REGISTRY))}")
    return chain


@_command("distort")
def _distort(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from shamisa_core.distortions.composition import apply_chain
    from shamisa_core.distortions.registry import get_type
    from shamisa_core.distortions.severity import index_to_value
    from shamisa_core.pristine import load_rgb

    chain = parse_chain(args.chain)
    src = Path(args.input)
    if not src.exists():
        raise CliError(f"input image {src} does not exist")
    try:
        img = load_rgb(src).astype(np.float32) / 255.0
    except Exception as exc:
        raise CliError(f"cannot read {src} as an image: {exc}") from None
    applied = []
    for key, t in chain:
        t2, value = index_to_value(get_type(key), t)
        applied.append({"type": key, "t": t2, "value": value})
    out = apply_chain(img, [(a["type"], a["value"]) for a in applied], np.random.default_rng(args.seed))
    dst = Path(args.output)
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.rint(out * 255).astype(np.uint8)).save(dst)
    print(json.dumps({"input": str(src), "output": str(dst), "chain": applied}))
    return 0


# ---------------------------------------------------------------- corpus
@_command("corpus build")
def _corpus_build(args: argparse.Namespace) -> int:
    from shamisa_core.config import load_profile
    from shamisa_core.corpus.build import build_corpus
    from shamisa_core.pristine import export_default, scan_folder

    overrides = list(args.set or [])
    if args.shards is not None:
        overrides.append(f"corpus.n_shards={args.shards}")
    if args.groups_per_shard is not None:
        overrides.append(f"corpus.groups_per_shard={args.groups_per_shard}")
    if args.seed is not None:
        overrides.append(f"corpus.seed={args.seed}")
    overrides.append(f"corpus.pristine={args.pristine}")
    cfg = load_profile(args.profile, overrides)
    out = Path(args.out)
    src = export_default(out / "_pristine_default") if args.pristine == "default" else Path(args.pristine)
    scan = scan_folder(src, cfg.corpus.min_side)
    for path, reason in scan.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    results = build_corpus([i.path for i in scan.images], cfg, out, workers=args.workers)
    print(
        json.dumps(
            {
                "out": str(out),
                "shards": len(results),
                "groups": sum(r.n_groups for r in results),
                "crops": sum(r.n_crops for r in results),
                "skipped_images": len(scan.skipped),
            }
        )
    )
    return 0


@_command("corpus inspect")
def _corpus_inspect(args: argparse.Namespace) -> int:
    from shamisa_core.corpus.shards import iter_samples

    for sample in iter_samples(Path(args.shard)):
        obj = dict(sample.record)
        obj["arrays"] = {"ref": list(sample.ref.shape), "dist": list(sample.dist.shape)}
        if args.json:
            print(json.dumps(obj))
        else:
            comps = "; ".join(
                "+".join(s["type"] for s in c["slots"]) + f" (varying slot {c['varying_slot']})"
                for c in obj["compositions"]
            )
            print(f"{obj['group_id']}: ref {obj['arrays']['ref']} dist {obj['arrays']['dist']} | {comps}")
    return 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = _LazyParser(prog="shamisa", description="SHAMISA self-supervised NR-IQA pipeline")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("distortions", help="the distortion types").add_subparsers(dest="sub", required=True)
    dl = d.add_parser("list", help="list the 26 types")
    dl.add_argument("--json", action="store_true")

    ds = sub.add_parser("distort", help="apply a chain of distortions to one image")
    ds.add_argument("input")
    ds.add_argument("output")
    ds.add_argument("--chain", required=True, help="type:t pairs, e.g. jpeg:2.5,gaublur:1.0")
    ds.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("corpus", help="build or inspect WebDataset corpora").add_subparsers(dest="sub", required=True)
    cb = c.add_parser("build", help="build a sharded corpus")
    cb.add_argument("--pristine", default="default", help="folder of photos, or 'default'")
    cb.add_argument("--out", required=True)
    cb.add_argument("--shards", type=int)
    cb.add_argument("--groups-per-shard", type=int)
    cb.add_argument("--profile", default="cpu-small", choices=["cpu-small", "paper"])
    cb.add_argument("--seed", type=int)
    cb.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    cb.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override")
    ci = c.add_parser("inspect", help="print the groups of one shard")
    ci.add_argument("shard")
    ci.add_argument("--json", action="store_true")

    for extra in _EXTRA_PARSERS:
        extra(sub)
    p.subparsers = sub
    return p


# Later stages register their subparsers lazily: `shamisa --help` lists them without importing
# their modules (torch, MLflow); the selected command's module is imported to parse its flags.
_EXTRA_PARSERS: list[Callable[[argparse._SubParsersAction], None]] = []
LAZY_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    # name: (module, add-parser function, run function, one-line help)
    "train": ("shamisa_core.training.cli_train", "add_train_parser", "run_train",
              "train an encoder on a corpus"),
    "evaluate": ("shamisa_core.evaluation.cli_evaluate", "add_evaluate_parser", "run_evaluate",
                 "evaluate an encoder on IQA benchmarks (trained vs its twins)"),
    "score": ("shamisa_core.serving.cli_serving", "add_score_parser", "run_score",
              "score images and folders (higher = better)"),
    "fit": ("shamisa_core.serving.cli_serving", "add_fit_parser", "run_fit",
            "fit a quality head on your own labelled photos"),
    "compare": ("shamisa_core.serving.cli_serving", "add_compare_parser", "run_compare",
                "compare the registered shamisa-iqa versions (from MLflow)"),
}


def _first_positional(args: list[str]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


class _LazyParser(argparse.ArgumentParser):
    """Adds the lazy subcommands just before parsing: the chosen one in full, the rest as
    one-line entries (so that `shamisa --help` imports none of them)."""

    subparsers: argparse._SubParsersAction | None = None

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 (argparse API)
        """Register the lazy subcommands, then parse as usual."""
        sub, self.subparsers = self.subparsers, None
        if sub is not None:
            import importlib

            argv = list(sys.argv[1:] if args is None else args)
            chosen = _first_positional(argv)
            for name, (module, add, run, text) in LAZY_COMMANDS.items():
                if name == chosen:
                    mod = importlib.import_module(module)
                    getattr(mod, add)(sub)
                    COMMANDS[name] = getattr(mod, run)
                else:
                    sub.add_parser(name, help=text, add_help=False)
        return super().parse_known_args(args, namespace)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``shamisa`` console script."""
    args = build_parser().parse_args(argv)
    name = args.cmd + (f" {args.sub}" if getattr(args, "sub", None) else "")
    try:
        return COMMANDS[name](args)
    except CliError as exc:
        print(f"shamisa: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"shamisa: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
