"""The ``shamisa`` command line: argument parsing only; the work is done in shamisa_core.

Errors: the project's own error types (:mod:`shamisa_core.errors`, ``ShardError``,
``PristineError``, ``DatasetError``, ``SplitError``, ``CliError``) and OS/value errors end the
command with exit status 2 and ONE line ``shamisa: error: ...`` naming the file and the fix,
without a traceback; ``--debug`` (anywhere on the line) or ``SHAMISA_DEBUG=1`` shows it.
Output paths are checked before any work starts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Callable

from shamisa_core.errors import OutputPathError, ShamisaError

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

    from shamisa_core.atomic import atomic_write_bytes
    from shamisa_core.distortions.composition import apply_chain
    from shamisa_core.distortions.registry import get_type
    from shamisa_core.distortions.severity import index_to_value
    from shamisa_core.pristine import load_rgb

    chain = parse_chain(args.chain)
    src = Path(args.input)
    if not src.exists():
        raise CliError(f"input image {src} does not exist")
    img = load_rgb(src).astype(np.float32) / 255.0  # ImageReadError names the file and why
    applied = []
    for key, t in chain:
        t2, value = index_to_value(get_type(key), t)
        applied.append({"type": key, "t": t2, "value": value})
    out = apply_chain(img, [(a["type"], a["value"]) for a in applied], np.random.default_rng(args.seed))
    dst = Path(args.output)
    buf = io.BytesIO()
    Image.fromarray(np.rint(out * 255).astype(np.uint8)).save(buf, format=_image_format(dst))
    atomic_write_bytes(dst, buf.getvalue())
    print(json.dumps({"input": str(src), "output": str(dst), "chain": applied}))
    return 0


def _image_format(dst: Path) -> str:
    """PIL format name for an output file's extension (clear error for an unknown one)."""
    from PIL import Image

    # The common formats (PNG, JPEG, BMP, GIF, PPM) are known after PIL's cheap preinit();
    # registered_extensions() imports every plugin (~0.4 s), so only for the rest.
    Image.preinit()
    fmt = Image.EXTENSION.get(dst.suffix.lower()) or Image.registered_extensions().get(dst.suffix.lower())
    if fmt is None:
        raise CliError(f"output {dst} has no known image extension; use e.g. .png, .jpg or .bmp")
    return fmt


# ---------------------------------------------------------------- output paths
#: Subcommands whose ``--out`` is a folder (for others it may be a file).
OUT_FOLDER_COMMANDS = frozenset({"corpus build", "train"})


def check_output_paths(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before any work starts (issue 8 defect 3).

    ``--out`` of :data:`OUT_FOLDER_COMMANDS` must not be an existing file; ``--json`` (a file) must not be a
    folder; ``distort``'s OUTPUT must be a file path with an image extension. In every case no
    existing ancestor may be a file.
    """

    def no_file_ancestor(path: Path, flag: str) -> None:
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputPathError(f"{flag} {path}: {parent} is a file, not a folder; give another path")
                return

    name = f"{getattr(args, 'cmd', '')} {getattr(args, 'sub', '') or ''}".strip()
    out = getattr(args, "out", None)
    if isinstance(out, str) and name in OUT_FOLDER_COMMANDS:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise OutputPathError(f"--out {path} is an existing file, not a folder; give a folder path")
        no_file_ancestor(path, "--out")
    js = getattr(args, "json", None)
    if isinstance(js, str):
        path = Path(js)
        if path.is_dir():
            raise OutputPathError(f"--json {path} is a folder; give a file path such as {path / 'results.json'}")
        no_file_ancestor(path, "--json")
    if getattr(args, "cmd", None) == "distort":
        path = Path(args.output)
        if path.is_dir():
            raise OutputPathError(f"output {path} is a folder; give an image file path such as {path / 'out.png'}")
        no_file_ancestor(path, "output")
        _image_format(path)


# ---------------------------------------------------------------- corpus
@_command("corpus build")
def _corpus_build(args: argparse.Namespace) -> int:
    from shamisa_core.config import load_profile
    from shamisa_core.corpus.build import build_corpus
    from shamisa_core.pristine import content_manifest_hash, export_default, scan_folder

    overrides = list(args.set or [])
    if args.shards is not None:
        overrides.append(f"corpus.n_shards={args.shards}")
    if args.groups_per_shard is not None:
        overrides.append(f"corpus.groups_per_shard={args.groups_per_shard}")
    if args.seed is not None:
        overrides.append(f"corpus.seed={args.seed}")
    load_profile(args.profile, overrides + [f"corpus.pristine={args.pristine}"])  # fail fast on bad --set
    out = Path(args.out)
    src = export_default(out / "_pristine_default") if args.pristine == "default" else Path(args.pristine)
    scan = scan_folder(src, cfg_min_side(args.profile, overrides))
    for path, reason in scan.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    # The config (and its hash) records the photos' content, not the path as typed: a relative
    # and an absolute path to one folder build the same corpus and give the same hash.
    pristine_id = "default" if args.pristine == "default" else f"content:{content_manifest_hash(scan, src)}"
    cfg = load_profile(args.profile, overrides + [f"corpus.pristine={pristine_id}"])
    sources = [str(Path(i.path).resolve()) for i in scan.images]  # same records for rel/abs paths
    results = build_corpus(sources, cfg, out, workers=args.workers,
                           on_note=lambda msg: print(f"shamisa: {msg}", file=sys.stderr))
    print(
        json.dumps(
            {
                "out": str(out),
                "shards": len(results),
                "groups": sum(r.n_groups for r in results),
                "crops": sum(r.n_crops for r in results),
                "skipped_images": len(scan.skipped),
                "pristine": str(src.resolve()),
                "pristine_id": pristine_id,
            }
        )
    )
    return 0


def cfg_min_side(profile: str, overrides: list[str]) -> int:
    """``corpus.min_side`` of the profile with overrides (before the pristine id is known)."""
    from shamisa_core.config import load_profile

    return load_profile(profile, overrides).corpus.min_side


@_command("corpus inspect")
def _corpus_inspect(args: argparse.Namespace) -> int:
    from shamisa_core.corpus.manifest import check_arrays
    from shamisa_core.corpus.shards import ShardError, iter_samples

    shard = Path(args.shard)
    if shard.is_dir():
        raise CliError(f"{shard} is a folder; give one shard file, e.g. {shard / 'shard-000000.tar'}")
    for sample in iter_samples(shard):
        bad = check_arrays(sample.record, sample.ref.shape, sample.dist.shape)
        if bad:
            raise ShardError(shard, "member arrays do not match their record: " + "; ".join(bad))
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
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
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
    cb.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="build processes, one shard each at a time (default: every core)")
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


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that are the user's to fix: exit 2 and one line, no traceback."""
    from shamisa_core.corpus.shards import ShardError
    from shamisa_core.evaluation.datasets.base import DatasetError
    from shamisa_core.evaluation.splits import SplitError
    from shamisa_core.pristine import PristineError

    return (CliError, ShamisaError, ShardError, PristineError, DatasetError, SplitError,
            OSError, ValueError, KeyError)


def error_line(exc: BaseException) -> str:
    """One line for an error: its message (an ``OSError`` with its file), newlines folded."""
    if isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.filename and str(exc.filename) not in str(exc):
        msg = f"{exc.strerror or exc}: {exc.filename}"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``shamisa`` console script (see the module docstring for errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("SHAMISA_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    name = args.cmd + (f" {args.sub}" if getattr(args, "sub", None) else "")
    try:
        check_output_paths(args)
        return COMMANDS[name](args)
    except user_error_types() as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"shamisa: error: {error_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
