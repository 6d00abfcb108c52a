"""The `archspec train` and `archspec data` subcommands: argument handling and printing only.

Importing this module imports neither torch nor Lightning: `archspec check` builds the same
parser. archspec/cli.py's parser() hooks these in with add_parsers(sub) and its COMMANDS table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..cli import _positive, _spec_options, load_spec, report, seed_number
from ..errors import EXIT_INTERRUPTED, EXIT_OK, ArchError, Sources, io_error
from .recipe import BOOK, Source, conflicts, parse_source, resolve
from .resume import check_data, check_epochs, check_source, read_run
from .unpack import DEBIAN_DIR, default_root, raw_folder, unpack


def _train_seed(text: str) -> int:
    """A seed numpy, torch and Lightning all take as it is: 0 to 2**32 - 1."""
    return seed_number(text, bits=32)


def add_parsers(sub: Any) -> None:
    """Add `train` and `data` to an argparse subparsers object (that of archspec.cli.parser())."""
    p = sub.add_parser("train", help="train a network with the book's recipe (PyTorch Lightning): metrics, "
                       "curves, best and last weights for `compile --weights`",
                       description="Train a spec's network on Fashion-MNIST or a folder of images with the "
                       "recipe of Dive into Deep Learning: plain SGD, mean cross-entropy, Xavier init, pixels "
                       "in [0, 1]. Writes metrics.csv, curves.png, best/last.safetensors, last.ckpt and "
                       "summary.json into RUNDIR.")
    p.add_argument("file", metavar="FILE")
    _spec_options(p)
    p.add_argument("--data", type=_source, default=None, metavar="fashion-mnist[:ROOT]|imagefolder:DIR",
                   help=f"the data (default fashion-mnist, from $ARCHSPEC_DATA or {_home(default_root())})")
    p.add_argument("--download", action="store_true", help="download Fashion-MNIST if it is not in ROOT")
    p.add_argument("--resize", type=_positive, metavar="N", help="resize images to NxN and set the network's "
                   "input to C,N,N (default: the network's input size)")
    p.add_argument("--epochs", type=_positive, metavar="N",
                   help="epochs to train in all (default 10); may grow on --resume")
    p.add_argument("--batch-size", type=_positive, metavar="N", help="the minibatch size (default 128)")
    p.add_argument("--lr", type=_positive_float, metavar="F", help="the SGD learning rate (default 0.1)")
    p.add_argument("--init", choices=("xavier", "default"), help="Xavier-uniform conv and linear weights "
                   "(default, as the book) or torch's own initialisation")
    p.add_argument("--seed", type=_train_seed, metavar="N",
                   help="the seed of the weights and the data order (default 0)")
    p.add_argument("--preset", choices=("book",), help="the book's learning rate and image size for a zoo "
                   "network: " + ", ".join(sorted(BOOK)) + " (explicit flags win)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help="default auto")
    p.add_argument("--devices", type=_positive, default=1, metavar="N", help="how many devices (default 1)")
    p.add_argument("--strategy", choices=("auto", "ddp"), default="auto", help="ddp: one process per device")
    p.add_argument("--precision", choices=("32", "bf16-mixed"), help="default 32")
    p.add_argument("--workers", type=_count, metavar="N", help="data loading processes (default: none when "
                   "the data fits in memory, else up to 4)")
    p.add_argument("--resume", metavar="RUNDIR", help="continue the run in RUNDIR from its last checkpoint")
    p.add_argument("-o", "--out", metavar="RUNDIR", help="the run folder (default runs/NAME)")

    p = sub.add_parser("data", help="unpack Fashion-MNIST's gzip files into the layout `train` reads, "
                       "checking their contents against pinned SHA-256s")
    p.add_argument("dataset", choices=("fashion-mnist",))
    p.add_argument("--from", dest="source", default=DEBIAN_DIR, metavar="DIR",
                   help=f"the folder of the four .gz files (default {DEBIAN_DIR}, Debian's dataset-fashion-mnist)")
    p.add_argument("--to", dest="root", default=None, metavar="ROOT",
                   help=f"the data root (default $ARCHSPEC_DATA or {_home(default_root())})")


def _source(text: str) -> Source:
    try:
        return parse_source(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return x


def _count(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def _home(p: Path) -> str:
    return str(p).replace(str(Path.home()), "~", 1)


class _Reported(Exception):
    """The spec's diagnostics are printed (by load_spec); exit with `code`."""

    def __init__(self, code: int) -> None:
        self.code = code


def cmd_train(args: argparse.Namespace) -> int:
    try:
        return _train(args)
    except _Reported as done:
        return done.code
    except ArchError as exc:
        report(exc.diagnostics, Sources())
        return exc.exit_code


def _load(args: argparse.Namespace):
    spec, code = load_spec(args)
    if spec is None:
        raise _Reported(code)
    return spec


def _train(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401  (curves.png, written after the first epoch: fail now, not then)
        import safetensors  # noqa: F401

        from . import run as R
    except ImportError as exc:
        raise io_error("E709", f"training needs PyTorch Lightning, matplotlib and safetensors ({exc.name} is "
                               "missing): pip install 'archspec[train]'") from None
    from .data import load

    flags = {k: getattr(args, k) for k in ("lr", "epochs", "batch_size", "resize", "init", "seed", "precision")}
    recorded = None
    if args.resume:
        out = Path(args.resume)
        spec, recipe, recorded = _resumed(args, out, flags)
        source = recorded.source
    else:
        spec, recipe = _spec_and_recipe(args, flags)
        source = args.data
        out = Path(args.out or Path("runs", spec.name))
    data = load(source or Source("fashion-mnist"), spec.network.input_shape, args.download)
    if recorded is not None:
        check_data(recorded, data)
    R.check_fit(spec, data)
    R.check_out(out, bool(args.resume))
    where = R.Where(out, args.device, args.devices, args.strategy, args.workers, bool(args.resume))
    try:
        summary = R.train(R.Run(spec, recipe, data), where)
    except R.Interrupted:
        if R.primary():
            print(f"archspec: interrupted; {out} keeps the checkpoint of epoch {_epochs(out)}: continue with "
                  f"archspec train {args.file} --resume {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if R.primary():
        print(_final_line(summary, out))
    return EXIT_OK


def _spec_and_recipe(args: argparse.Namespace, flags: dict[str, Any]):
    """The spec, loaded again at the recipe's image size if that is not its own."""
    spec = _load(args)
    recipe = resolve(spec.name, flags, args.preset)
    if recipe.resize:
        want = (spec.network.input_shape[0], recipe.resize, recipe.resize)
        if args.input and tuple(args.input) != want:
            raise io_error("E708", f"--input {','.join(map(str, args.input))} and --resize {recipe.resize} "
                                   f"disagree: --resize {recipe.resize} sets the input to {','.join(map(str, want))}")
        if tuple(spec.network.input_shape) != want:
            args.input = want
            spec = _load(args)
    return spec, recipe


def _resumed(args: argparse.Namespace, out: Path, flags: dict[str, Any]):
    """The spec, recipe and record of the run in `out`; flags may only repeat them (or grow --epochs)."""
    if args.out and Path(args.out) != out:
        raise io_error("E708", f"--resume {out} writes into {out}, not -o {args.out}")
    rec = read_run(out)
    recorded, used = rec.recipe, rec.spec
    bad = conflicts(recorded, flags)
    if args.preset and args.preset != recorded.preset:
        bad.append(f"--preset {args.preset} (the run used {recorded.preset})")
    overrides = dict(used["overrides"])
    if args.overrides and {k: _canonical(v) for k, v in args.overrides} != overrides:
        bad.append("--set " + " ".join(f"{k}={v}" for k, v in args.overrides) + " (the run used "
                   + (" ".join(f"{k}={v}" for k, v in overrides.items()) or "none") + ")")
    if args.input and list(args.input) != used["input"]:
        bad.append(f"--input {','.join(map(str, args.input))} (the run used {','.join(map(str, used['input']))})")
    if bad:
        raise io_error("E708", f"--resume {out} continues the run as it was recorded; these flags differ: "
                       + "; ".join(bad))
    if args.data:
        check_source(rec, args.data)
    if _hash(args.file, args.allow_import_outside) not in (None, used["sha256"]):
        raise io_error("E708", f"{args.file} is not the spec the run in {out} was trained from (its sha256 "
                               "differs): resume with the same file, unchanged")
    recipe = replace(recorded, epochs=args.epochs or recorded.epochs)
    check_epochs(rec, recipe.epochs)
    args.overrides, args.input = list(overrides.items()), tuple(used["input"])
    args.network = args.network or used["network"]
    return _load(args), recipe, rec


def _canonical(text: str) -> str:
    """A `--set` value as archspec records it (its parsed expression, rendered), or as typed if it does not parse."""
    from ..parse import parse_expr
    from ..render import render_expr

    try:
        return render_expr(parse_expr(text))
    except ArchError:
        return text


def _hash(path: str, allow_import_outside: bool = False) -> str | None:
    """The spec_hash of a spec file and its imports; None if it cannot be read (load_spec says why)."""
    from ..codegen import spec_hash
    from ..loader import load_file

    sources = Sources()
    try:
        load_file(path, sources, allow_import_outside)
    except ArchError:
        return None
    return spec_hash(sources.texts)


def _epochs(out: Path) -> int:
    from .artifacts import read_summary

    try:
        return int(read_summary(out / "summary.json")["epochs"])
    except (ArchError, KeyError, ValueError, TypeError):
        return 0


def _final_line(s: dict[str, Any], out: Path) -> str:
    if not s["epochs"]:
        return f"{s['spec']['network']}: no epochs trained; wrote {out}/"
    return (f"{s['spec']['network']}: {s['epochs']} epochs, best val acc {s['best_val_acc']:.4f} (epoch "
            f"{s['best_epoch']}), last {s['last_val_acc']:.4f}; {s['seconds_per_epoch']:.1f} s/epoch, "
            f"{s['samples_per_second']:,.0f} samples/s; wrote {out}/")


def cmd_data(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root else default_root()
    try:
        written = unpack(args.source, root)
    except ArchError as exc:
        report(exc.diagnostics, Sources())
        return exc.exit_code
    use = "--data fashion-mnist" if not args.root else f"--data fashion-mnist:{root}"
    print(f"wrote {len(written)} files to {raw_folder(root)}, their contents as pinned (SHA-256); "
          f"train with {use}")
    return EXIT_OK
