"""`archspec report FILE -o report.html`: one self-contained HTML page per network.

The page holds the summary table (sortable), the diagram of `archspec graph`, bar charts of
parameters, MACs and activation memory per layer, the receptive field's growth, the totals, and
the spec's asserts with their results. A failed assert is shown on the page, which is still
written, and reported as E501 with exit status 1, as `check` reports it. `-o` names the page, or a
folder (an existing one, or a path ending in `/`) for one page per network of the file,
`NAME.html` each. Every page is built before any is written.
"""

from __future__ import annotations

import argparse
import os

from ..errors import EXIT_OK, EXIT_SPEC, EXIT_USAGE, ArchError, Diagnostic, Sources, Span, io_error

NO_DOT = ("install Graphviz: `apt-get install graphviz` (Debian, Ubuntu), `brew install graphviz` (macOS), "
          "`conda install graphviz`; or leave the diagram out with --no-diagram")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..cli import _positive, _spec_options

    p = sub.add_parser("report", help="write a network's report as one self-contained HTML page: the layer "
                       "table, the diagram, charts per layer, the receptive field, the asserts")
    p.add_argument("file", metavar="FILE")
    _spec_options(p)
    p.add_argument("--depth", type=_positive, default=None,
                   help="how many levels of blocks the diagram expands (default: all, fewer if it would be "
                   "too large to lay out)")
    p.add_argument("--no-diagram", dest="diagram", action="store_false",
                   help="leave the diagram out (it needs Graphviz's dot)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.html|DIR/",
                   help="the page to write, or a folder for one page per network (NAME.html)")


def run(args: argparse.Namespace) -> int:
    from ..cli import _size, fail, overrides, promote, report, status
    from ..files import check_output_file, check_writable, nearest_existing, write_text
    from ..loader import load_file
    from ..passes import resolve

    sources = Sources()
    folder = args.output.endswith(("/", os.sep)) or os.path.isdir(args.output)
    try:
        if folder:
            check_writable(nearest_existing(args.output), args.output)
        else:
            check_output_file(args.output)
        program = resolve(load_file(args.file, sources, args.allow_import_outside))
        ov = overrides(args)
        names = _networks(program, args, folder)
        pages, problems = [], []
        for name in names:
            net = _build(program, name, ov)
            warnings = promote(list(net.warnings), args.werror)
            if status(warnings):
                return fail(args, warnings, sources, status(warnings))
            report(warnings, sources)
            checks, failed = _checks(net)
            problems += failed
            path = os.path.join(args.output, f"{net.name}.html") if folder else args.output
            pages.append((path, net, _page(net, checks, args)))
        if folder:
            os.makedirs(args.output, exist_ok=True)
        for path, _, html in pages:
            write_text(path, html)
    except ArchError as exc:
        return fail(args, exc.diagnostics, sources, exc.exit_code)
    except RecursionError:
        deep = Diagnostic("E005", "the spec is nested too deeply to analyse", Span(args.file), io=True)
        return fail(args, [deep], sources, EXIT_USAGE)
    for path, net, _ in pages:
        print(f"wrote {path} ({_size(os.path.getsize(path))}): {net.name}")
    if problems:
        report(problems, sources)
        return EXIT_SPEC
    return EXIT_OK


def _networks(program, args: argparse.Namespace, folder: bool) -> list[str | None]:
    """The networks to report on: the one named, every network of the file for a folder, else the one
    the file means (as every command picks it); several and one page is E888."""
    if args.network is not None:
        return [args.network]
    own = [n for n in program.own if program.definitions[n].kind == "network"]
    if folder:
        return own or [None]  # none: the core says the file defines no network
    stem = os.path.basename(args.file).removesuffix(".arch")
    if len(own) > 1 and stem not in own:
        raise io_error("E888", f"{args.file} defines {len(own)} networks and `{args.output}` is one page",
                       Span(args.file), "networks: " + ", ".join(own),
                       "choose one with --network, or give a folder (`-o reports/`) for one page per network")
    return [None]


def _build(program, name: str | None, ov):
    """The network with shapes, its asserts not yet checked: the page shows them, held or failed."""
    from .. import ir
    from ..passes import PASSES, expand
    from ..passes.asserts import check_asserts

    with program.budget.active(), ir.collector_paused():
        net = expand(program, name, ov)
        for p in PASSES:
            if p is not check_asserts:
                net = p(net)
    return net


def _checks(net) -> tuple[list, list[Diagnostic]]:
    """Every assert with its result, and E501 for each that fails (the message `check` gives)."""
    from ..evaluate import evaluate, names_in
    from ..passes.asserts import results
    from ..render import render_expr
    from ..values import show
    from ..visual.page import Check

    known = results(net)
    checks, failed = [], []
    for stmt, env in net.asserts:
        scope = {**env, **known}
        holds = bool(evaluate(stmt.test, scope))
        figures = ", ".join(f"{n} = {_figure(scope[n], show)}" for n in sorted(names_in(stmt.test)) if n in known)
        where = f"{stmt.span.file}:{stmt.span.line}"
        checks.append(Check(render_expr(stmt.test), stmt.message, where, holds, figures))
        if not holds:
            message = (stmt.message or "assertion failed") + (f" ({figures})" if figures else "")
            failed.append(Diagnostic("E501", message, stmt.span))
    return checks, failed


def _figure(v, show) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else show(v)


def _page(net, checks: list, args: argparse.Namespace) -> str:
    from .. import __version__
    from ..visual.page import Diagram, render_page

    diagram = _diagram(net, args) if args.diagram else Diagram(None, "Left out (--no-diagram).")
    return render_page(net, checks, diagram, __version__)


def _diagram(net, args: argparse.Namespace):
    from ..visual import graphviz
    from ..visual.dot import build, count_nodes, nesting
    from ..visual.page import Diagram

    depth = args.depth
    if depth is None:  # every level, or the deepest that Graphviz lays out in reasonable time
        depth = next((d for d in range(nesting(net), 0, -1) if count_nodes(net, d) <= graphviz.MAX_NODES), 0)
        if depth == 0:
            return Diagram(None, f"Not drawn: even with every block as one box it would have "
                                 f"{count_nodes(net, 1):,} nodes, more than the {graphviz.MAX_NODES:,} Graphviz "
                                 "lays out in reasonable time.")
    graphviz.check_size(count_nodes(net, depth), args.output, depth)
    drawing = build(net, None if depth >= nesting(net) else depth)
    svg = graphviz.inline_svg(graphviz.render(drawing.text, "svg", args.output, NO_DOT))
    levels = "every level of blocks expanded" if depth >= nesting(net) else \
        f"blocks expanded {depth} level{'s' * (depth != 1)} deep, deeper ones drawn as one box each"
    note = (f"{drawing.nodes} nodes, {levels}. Hover over a node for its path, shape, parameters, MACs and "
            "receptive field. Edges carry the shape of one sample (the batch left out).")
    return Diagram(svg, note)

