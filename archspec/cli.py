"""The `archspec` command: argument handling and printing only.

Exit statuses, for every command: 0 success, 1 a problem in the user's spec or data,
2 usage or I/O errors, 130 interrupted.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
from dataclasses import replace
from typing import Any, Callable

from . import __version__
from .errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SPEC,
    EXIT_USAGE,
    ArchError,
    Diagnostic,
    Sources,
    Span,
    as_json,
    io_error,
    render,
    render_github,
    render_sarif,
)
from .files import check_output_file, write_text

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _dumps(value: Any, indent: int | None = None) -> str:
    """Every JSON the commands print: a symbolic size (`input [3, H, W]`) is written as its text."""
    from .sizes import Size

    def default(v: Any) -> Any:
        if isinstance(v, Size):
            return str(v)
        raise TypeError(f"Object of type {type(v).__name__} is not JSON serializable")
    return json.dumps(value, indent=indent, default=default)


def command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    COMMANDS[fn.__name__.removeprefix("cmd_").replace("_", "-")] = fn
    return fn


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes such as 3,224,224, got {text!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"expected positive sizes such as 3,224,224, got {text!r}")
    return dims


def _integer(text: str, lo: int, hi: int | None, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or n < lo or (hi is not None and n > hi):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return n


def _positive(text: str) -> int:
    return _integer(text, 1, None, "a positive integer")


def seed_number(text: str, bits: int = 63) -> int:
    """A seed from 0 to 2**bits - 1 (torch takes 63 bits; numpy and Lightning 32)."""
    return _integer(text, 0, 2**bits - 1, f"a seed from 0 to 2**{bits} - 1")


def _positive_seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(s) or s <= 0 or s > 3600:
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and at most 3600, got {text!r}")
    return s


def _assignment(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip().isidentifier() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _spec_options(p: argparse.ArgumentParser, network: bool = True) -> None:
    if network:
        p.add_argument("--network", metavar="NAME", help="the network to use when the file defines several")
    p.add_argument("--set", dest="overrides", action="append", type=_assignment, default=[], metavar="NAME=VALUE",
                   help="override a network parameter; VALUE in the language's syntax, e.g. num_classes=1000")
    p.add_argument("--input", type=_shape, metavar="C,H,W", help="replace the network's input shape")
    p.add_argument("--werror", action="store_true", help="treat warnings as errors")
    p.add_argument("--allow-import-outside", action="store_true",
                   help="let imports reach files outside the spec's folder (by default they may not)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="archspec", description="A declarative architecture compiler for "
                                  "convolutional networks: check, summarise and compile .arch specs.")
    top.add_argument("--version", action="version", version=f"archspec {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("check", help="check specs statically (no torch): every network in every file")
    p.add_argument("files", nargs="+", metavar="FILE")
    _spec_options(p, network=False)
    p.add_argument("--target", action="append", choices=("onnx",), default=[],
                   help="also check that every layer can be exported to this format exactly (E612)")
    p.add_argument("--format", choices=("text", "json", "github", "sarif"), default="text")
    p.add_argument("--no-cache", action="store_true",
                   help="check every file afresh, and keep nothing (by default a file that checked clean is "
                        "answered from .archspec_cache until it or a file it imports changes)")
    p.add_argument("--cache-dir", metavar="DIR", help="where to keep the cache (default: $ARCHSPEC_CACHE_DIR, "
                   "else .archspec_cache in the working folder)")

    p = sub.add_parser("layers", help="list every layer the language has, with its signature")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("summary", help="print a network's layer summary: shapes, params, MACs, receptive field")
    p.add_argument("file", metavar="FILE")
    _spec_options(p)
    p.add_argument("--batch", type=_positive, default=1, help="the batch size shown (default 1)")
    p.add_argument("--depth", type=_positive, default=1, help="how deep to show nested blocks (default 1)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("sizes", help="which input sizes a network with symbolic sizes (`input [3, H, W]`) "
                       "accepts, and which layers say so")
    p.add_argument("file", metavar="FILE")
    _spec_options(p)
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("compile", help="compile a spec to a torch module's source, TorchScript, torch.export "
                       "and ONNX, and verify that they compute the same thing")
    p.add_argument("file", metavar="FILE")
    _spec_options(p)
    p.add_argument("-f", "--formats", type=_formats, default="python,torchscript,pt2,onnx",
                   metavar="python,torchscript,pt2,onnx", help="what to write (default: all four)")
    p.add_argument("-o", "--out", metavar="DIR", help="the output folder (default build/NAME/)")
    p.add_argument("--weights", metavar="CKPT", help="a trained state_dict (.pth) or .safetensors to load first")
    p.add_argument("--opset", type=_positive, default=18, help="the ONNX opset (default 18)")
    p.add_argument("--batch", type=_batch, default=None, metavar="dynamic|N",
                   help="a fixed batch size for the exports (default: a dynamic batch axis)")
    p.add_argument("--seed", type=seed_number, default=0, help="the seed of the initial weights (default 0)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip running every artifact against the torch module")
    from .precision.options import add_options as add_precision_options  # light: no torch, no onnx

    add_precision_options(p)

    p = sub.add_parser("bench", help="time the compiled network on every backend (torch, torch.compile, "
                       "TorchScript, onnxruntime), each in a process of its own")
    p.add_argument("file", metavar="FILE")
    _spec_options(p)
    p.add_argument("--batch", type=_positive_list, default=[1, 8], metavar="1,8,64")
    p.add_argument("--backends", type=_backends, default=["torch", "torchscript", "onnxruntime"],
                   metavar="torch,torch-compile,torchscript,onnxruntime")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--ort-providers", type=_providers, default=None, metavar="tensorrt,cuda,cpu",
                   help="onnxruntime's providers, in order (default: cuda on --device cuda, else cpu)")
    p.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32")
    p.add_argument("--channels-last", action="store_true", help="torch backends in channels-last memory format")
    p.add_argument("--warmup", type=_non_negative, default=5)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--iters", type=_positive, default=None, help="timed iterations per batch (default 30)")
    how.add_argument("--seconds", type=_positive_seconds, default=None, metavar="S",
                     help="time each batch for this long instead")
    p.add_argument("--threads", type=_positive, default=None, help="CPU threads for torch and onnxruntime")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("-o", "--output", metavar="FILE", help="also write the JSON report here")
    add_precision_options(p, bench=True)

    p = sub.add_parser("port-weights", help="map a checkpoint's weights onto a spec's module, in execution "
                       "order, checking every shape; write them as safetensors")
    p.add_argument("file", metavar="SPEC")
    _spec_options(p)
    p.add_argument("--from", dest="source", required=True, metavar="CHECKPOINT",
                   help="a state_dict file (.pth, read with weights_only=True) or .safetensors")
    p.add_argument("-o", "--out", required=True, metavar="OUT.safetensors")

    from .train.cli import add_parsers, cmd_data, cmd_train  # here, not at the top: it imports this module

    add_parsers(sub)
    COMMANDS.update({"train": cmd_train, "data": cmd_data})
    from .tools import modules  # fmt, diff, graph, report, lsp: one module each

    for tool in modules():
        tool.add_parser(sub)
        COMMANDS[tool.__name__.rsplit(".", 1)[-1]] = tool.run
    return top


def comma_choices(text: str, choices: tuple[str, ...], what: str) -> tuple[str, ...]:
    """A comma-separated option value (`-f python,onnx`, `--precision int8,fp16`): the choices given, in
    order, without repeats; an unknown one or none is argparse's error, listing the choices."""
    chosen = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    unknown = [x for x in chosen if x not in choices]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or text!r}; choose from "
                                         + ", ".join(choices))
    return chosen


def _formats(text: str) -> tuple[str, ...]:
    from .compile import FORMATS

    return comma_choices(text, FORMATS, "format")


def _positive_list(text: str) -> list[int]:
    return [_positive(x) for x in text.split(",") if x.strip()] or [_positive(text)]


def _non_negative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def _choices(allowed: tuple[str, ...], what: str) -> Callable[[str], list[str]]:
    return lambda text: list(comma_choices(text, allowed, what))


_backends = _choices(("torch", "torch-compile", "torchscript", "onnxruntime"), "backend")
_providers = _choices(("tensorrt", "cuda", "cpu"), "provider")


def _batch(text: str) -> int | None:
    return None if text == "dynamic" else _positive(text)


# Commands that only parse and analyse specs (no torch). Their trees and graphs hold no reference cycles,
# so Python's cycle collector frees nothing in them, yet each of its full passes walks all of them: with
# it running, `archspec check` of the zoo spent a quarter of its time there (benchmarks/bench_static.py).
# It is paused while they run (peak memory measured the same either way) and resumed after.
STATIC = frozenset({"check", "summary", "sizes", "layers"})


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = parser().parse_args(argv)
        if args.command not in STATIC:
            return COMMANDS[args.command](args)
        paused = gc.isenabled()
        gc.disable()
        try:
            return COMMANDS[args.command](args)
        finally:
            if paused:
                gc.enable()
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", None)  # SIGTERM or SIGHUP during a compile (archspec/outdir.py)
        print(f"archspec: {'terminated' if signum else 'interrupted'}", file=sys.stderr)
        return 128 + signum if signum else EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug in archspec, not the user's mistake: one line, the trace on request
        if os.environ.get("ARCHSPEC_TRACEBACK"):
            raise
        message = f"internal error: {type(exc).__name__}: {str(exc)[:500]}"
        if getattr(args, "format", None) == "json":  # CI parses stdout: give it JSON even now
            print(_dumps(_json_report([Diagnostic("E900", message)], EXIT_INTERNAL), indent=2))
        print(f"archspec: {message}\n"
              "  this is a bug in archspec; rerun with ARCHSPEC_TRACEBACK=1 for the traceback and report it",
              file=sys.stderr)
        return EXIT_INTERNAL


def _json_report(diags: list[Diagnostic], code: int) -> dict[str, Any]:
    errors = sum(d.severity == "error" for d in diags)
    return {"diagnostics": [as_json(d) for d in sorted(diags, key=Diagnostic.sort_key)], "errors": errors,
            "warnings": len(diags) - errors, "exit_code": code}


def fail(args: argparse.Namespace, diags: list[Diagnostic], sources: Sources, code: int) -> int:
    """Report a command's failure as its --format asks (JSON on stdout, else text on stderr); return `code`."""
    if getattr(args, "format", None) == "json":
        print(_dumps(_json_report(diags, code), indent=2))
    else:
        report(diags, sources)
    return code


MAX_REPORTED = 100  # diagnostics printed in text and github formats; JSON lists them all


def report(diags: list[Diagnostic], sources: Sources, fmt: str = "text") -> None:
    ordered = sorted(diags, key=Diagnostic.sort_key)
    for d in ordered[:MAX_REPORTED]:
        if fmt == "github":
            print(render_github(d))
        elif fmt == "text":
            print(render(d, sources), file=sys.stderr)
    if len(ordered) > MAX_REPORTED:
        rest = len(ordered) - MAX_REPORTED
        print(f"archspec: {rest:,} more diagnostic{'s' * (rest != 1)} not shown (--format json lists them all)",
              file=sys.stderr)


def status(diags: list[Diagnostic]) -> int:
    if any(d.io for d in diags):
        return EXIT_USAGE
    return EXIT_SPEC if any(d.severity == "error" for d in diags) else EXIT_OK


def promote(diags: list[Diagnostic], werror: bool) -> list[Diagnostic]:
    return [d.as_warning_error() if werror and d.severity == "warning" else d for d in diags]


def overrides(args: argparse.Namespace, batch: int = 1):
    from .api import overrides_from

    return overrides_from(texts=dict(args.overrides), input=args.input, batch=batch)


@command
def cmd_check(args: argparse.Namespace) -> int:
    from . import cache

    root = cache.folder(args.cache_dir, args.no_cache)
    options = {"set": [list(kv) for kv in args.overrides], "input": list(args.input or ()), "target": args.target,
               "werror": args.werror, "allow_import_outside": args.allow_import_outside}
    sources = Sources()
    diags: list[Diagnostic] = []
    results: list[dict[str, Any]] = []
    lines: list[str] = []
    for path in args.files:
        kept = cache.get(root, path, options) if root is not None else None
        if kept is not None:  # checked clean before, and nothing it read has changed since
            results.append({"file": path, "networks": kept["networks"]})
            lines += kept["lines"]
            continue
        entry: dict[str, Any] = {"file": path, "networks": []}
        results.append(entry)
        before = (len(diags), len(lines))
        read = _check_file(args, path, sources, entry, diags, lines)
        if root is not None and read is not None and len(diags) == before[0]:
            cache.put(root, path, options, read, lines[before[1]:], json.loads(_dumps(entry["networks"])))
    diags = promote(diags, args.werror)
    code = status(diags)
    if args.format == "json":
        print(_dumps({"files": results, **_json_report(diags, code)}, indent=2))
    elif args.format == "sarif":  # for code scanning: every diagnostic, nothing else on stdout
        from .errors import code_titles

        print(_dumps(render_sarif(diags, __version__, code_titles()), indent=2))
    else:
        report(diags, sources, args.format)
        for line in lines:
            print(line)
    return code


def _check_file(args: argparse.Namespace, path: str, sources: Sources, entry: dict[str, Any],
                diags: list[Diagnostic], lines: list[str]) -> dict[str, str] | None:
    """Check every network of one file, adding to `entry`, `diags` and `lines`; return the text of every
    file it read (the spec and its imports), or None where it could not be loaded."""
    from .api import build
    from .loader import load_file
    from .passes import resolve
    from .summary import one_line
    from .targets import problems

    try:
        program = resolve(load_file(path, sources, args.allow_import_outside))
        ov = overrides(args)
    except ArchError as exc:
        diags += exc.diagnostics
        return None
    nets = [n for n in program.own if program.definitions[n].kind == "network"]
    found: dict[Diagnostic, list[str]] = {}  # one problem of several networks is shown once, naming them
    for name in nets:
        try:
            spec = build(program, sources, name, ov)
        except ArchError as exc:
            for d in exc.diagnostics:
                found.setdefault(d, []).append(name)
            continue
        except RecursionError:
            diags.append(Diagnostic("E005", "the spec is nested too deeply to analyse", Span(path), io=True))
            continue
        for d in spec.warnings:
            found.setdefault(d, []).append(name)
        for target in args.target:
            for d in problems(spec.network, target):
                found.setdefault(d, []).append(name)
        if args.werror and spec.warnings:
            n = len(spec.warnings)
            lines.append(f"{path}: {name}: failed, {n} warning{'s' * (n != 1)} treated as errors (--werror)")
        else:
            lines.append(one_line(spec.network))
        entry["networks"].append({"name": name, "params": spec.params, "macs": spec.macs,
                                  "output_shape": [d if isinstance(d, int) else str(d)
                                                   for d in (1, *spec.output_shape)]})
    for d, names in found.items():
        if len(nets) > 1:
            which = ", ".join(f"`{n}`" for n in names)
            d = replace(d, notes=(*d.notes, f"checking network{'s' * (len(names) > 1)} {which}"))
        diags.append(d)
    if not nets:
        blocks = sum(1 for n in program.own if program.definitions[n].kind == "block")
        lines.append(f"{path}: ok, {blocks} block{'s' * (blocks != 1)} and no network")
    return {p: sources.texts[p] for p in program.files}


def load_spec(args: argparse.Namespace, batch: int = 1):
    """The Spec a command works on, or (None, exit status) after printing what is wrong."""
    from .api import build
    from .loader import load_file
    from .passes import resolve

    sources = Sources()
    try:
        program = resolve(load_file(args.file, sources, args.allow_import_outside))
        spec = build(program, sources, args.network, overrides(args, batch))
    except ArchError as exc:
        return None, fail(args, exc.diagnostics, sources, exc.exit_code)
    except RecursionError:
        deep = Diagnostic("E005", "the spec is nested too deeply to analyse", Span(args.file), io=True)
        return None, fail(args, [deep], sources, EXIT_USAGE)
    warnings = promote(list(spec.warnings), args.werror)
    if status(warnings):
        return None, fail(args, warnings, sources, status(warnings))
    report(warnings, sources)  # on stderr; JSON output lists them in its own "warnings"
    return spec, EXIT_OK


@command
def cmd_layers(args: argparse.Namespace) -> int:
    from .layers import LAYERS, REQUIRED
    from .values import show

    if args.format == "json":
        print(_dumps([{"name": layer.name, "signature": layer.signature(), "doc": layer.doc,
                           "category": layer.category, "torch": layer.module if isinstance(layer.module, str) else None,
                           "args": [{"name": a.name, "kind": a.kind, "required": a.default is REQUIRED,
                                     "default": None if a.default is REQUIRED else show(a.default),
                                     "choices": list(a.choices)} for a in layer.args]}
                          for layer in LAYERS.values()], indent=2))
        return EXIT_OK
    width = max(len(layer.signature()) for layer in LAYERS.values())
    for category in sorted({layer.category for layer in LAYERS.values()}):
        print(f"{category}:")
        for layer in (x for x in LAYERS.values() if x.category == category):
            print(f"  {layer.signature().ljust(width)}  {layer.doc}")
    return EXIT_OK


@command
def cmd_summary(args: argparse.Namespace) -> int:
    from .summary import as_dict, as_text

    spec, code = load_spec(args, args.batch)
    if spec is None:
        return code
    if args.format == "json":
        print(_dumps(as_dict(spec.network, args.depth), indent=2))
    else:
        sys.stdout.write(as_text(spec.network, args.depth))
    return EXIT_OK


@command
def cmd_sizes(args: argparse.Namespace) -> int:
    from .sizes import report as size_report

    spec, code = load_spec(args)
    if spec is None:
        return code
    net = spec.network
    found = size_report(net.constraints, net.sizes)
    if args.format == "json":
        print(_dumps({
            "network": net.name, "file": net.file, "input": [str(d) for d in net.input_shape],
            "sizes": {a.name: {"allowed": str(a), "low": a.low, "period": a.period, "residues": list(a.residues),
                               "tried_up_to": a.tried, "exact": a.exact} for a in found.variables},
            "constraints": [{"constraint": str(c), "allows": str(a), "line": c.where.line, "column": c.where.column,
                             "file": c.where.file, "by": c.what} for c, a in found.binding] +
                           [{"constraint": str(c), "line": c.where.line, "column": c.where.column,
                             "file": c.where.file, "by": c.what} for c in found.other],
        }, indent=2))
        return EXIT_OK
    head = f"{net.name} ({net.file}): input {'[' + ', '.join(str(d) for d in ['N', *net.input_shape]) + ']'}"
    if not net.sizes:
        print(f"{head}\nevery size is a number: nothing to solve (write `input [3, H, W]` for symbolic sizes)")
        return EXIT_OK
    lines = [head, ""]
    for a in found.variables:
        lines.append(f"  {a}")
    lines += ["", "because of (each constraint that rules sizes out, where it comes from, what it allows alone):"]
    for c, a in found.binding:
        lines.append(f"  {c.where.file}:{c.where.line}:{c.where.column}: {c.what or 'spec'}: {c}  ->  {a}")
    for c in found.other:
        lines.append(f"  {c.where.file}:{c.where.line}:{c.where.column}: {c.what or 'spec'}: {c}")
    tried = max((a.tried for a in found.variables), default=0)
    lines += ["", f"found by trying every value up to {tried} of each size; `archspec check --input C,H,W` "
                  "checks one size exactly"]
    print("\n".join(lines))
    return EXIT_OK


@command
def cmd_compile(args: argparse.Namespace) -> int:
    spec, code = load_spec(args)
    if spec is None:
        return code
    from .compile import Options, compile_spec
    from .precision.options import from_args

    try:
        opts = Options(formats=args.formats, out_dir=args.out, weights=args.weights, opset=args.opset,
                       batch=args.batch, seed=args.seed, verify=args.verify, precision=from_args(args))
        result = compile_spec(spec, opts)
    except ArchError as exc:
        report(exc.diagnostics, spec.sources)
        return exc.exit_code
    for name in result.files:
        path = os.path.join(result.out_dir, name)
        print(f"wrote {path} ({_size(os.path.getsize(path))})")
    if result.checks:
        worst = max(c.max_abs for c in result.checks)
        arts = ", ".join(dict.fromkeys(c.artifact for c in result.checks))
        batches = " and ".join(str(b) for b in dict.fromkeys(c.batch for c in result.checks))
        shapes = list(dict.fromkeys(c.shape for c in result.checks))
        sizes = (" and input " + " and ".join("x".join(map(str, s)) for s in shapes)) if len(shapes) > 1 else ""
        print(f"verified: {arts} equal the torch module at batch {batches}{sizes} (max abs difference {worst:.2g}; "
              "tolerance rtol 1e-4, atol 1e-5)")
    if result.reports:
        from .precision.report import as_text

        print("".join(as_text(r) for r in result.reports), end="")
    return EXIT_OK


@command
def cmd_bench(args: argparse.Namespace) -> int:
    spec, code = load_spec(args)
    if spec is None:
        return code
    from .bench import BenchOptions, as_table, bench_spec

    if args.output:  # refuse a path that cannot be written now, not after minutes of timing
        try:
            check_output_file(args.output)
        except ArchError as exc:
            return fail(args, exc.diagnostics, spec.sources, exc.exit_code)
    from .precision.options import from_args

    try:
        opts = BenchOptions(batches=args.batch, backends=args.backends, device=args.device,
                            providers=args.ort_providers, dtype=args.dtype, warmup=args.warmup,
                            iters=args.iters or (None if args.seconds else 30), seconds=args.seconds,
                            threads=args.threads, channels_last=args.channels_last, precisions=list(args.precision),
                            precision=from_args(args, bench=True), weights=args.weights)
        result = bench_spec(spec, opts, progress=_progress)
    except ArchError as exc:
        return fail(args, exc.diagnostics, spec.sources, exc.exit_code)
    text = _dumps(result, indent=2)
    if args.output:
        try:
            write_text(args.output, text + "\n")
        except ArchError as exc:
            return fail(args, exc.diagnostics, spec.sources, exc.exit_code)
    print(text if args.format == "json" else as_table(result), end="" if args.format != "json" else "\n")
    return EXIT_OK


def _progress(done: int, total: int, what: str) -> None:
    width = 24
    bar = "#" * (width * done // total) + "-" * (width - width * done // total)
    end = "\n" if done == total or not sys.stderr.isatty() else ""
    print(f"\r[{bar}] {done}/{total} {what}".ljust(78), end=end, file=sys.stderr, flush=True)


@command
def cmd_port_weights(args: argparse.Namespace) -> int:
    spec, code = load_spec(args)
    if spec is None:
        return code
    try:
        try:
            import safetensors.torch  # noqa: F401

            from .export.weights import save_ported
        except ImportError:
            raise io_error("E609", "port-weights needs torch and safetensors: pip install 'archspec[torch]'") from None
        n = save_ported(spec, args.source, args.out)
    except ArchError as exc:
        report(exc.diagnostics, spec.sources)
        return exc.exit_code
    print(f"wrote {args.out}: {n} tensors mapped onto {spec.name} in execution order, every shape checked")
    return EXIT_OK


def _size(n: int) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def run() -> None:
    sys.exit(main())
