"""`archspec graph FILE -o net.svg|.png|.pdf|.dot`: a network as a diagram.

Blocks are boxes around their layers (or one box each below `--depth`), branches stand side by
side, every edge carries its tensor's shape, and in SVG a node's tooltip gives its parameters and
MACs. The DOT text is archspec's own (archspec/visual/dot.py); Graphviz's `dot` draws the rest.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import EXIT_OK, ArchError, Sources


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..cli import _positive, _spec_options

    p = sub.add_parser("graph", help="draw a network as a diagram (svg, png, pdf, or Graphviz dot): blocks as "
                       "boxes, edges labelled with shapes, parameters and MACs on hover")
    p.add_argument("file", metavar="FILE")
    _spec_options(p)
    p.add_argument("--depth", type=_positive, default=None,
                   help="expand blocks this many levels deep, each deeper block one box (default: every level)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.svg|.png|.pdf|.dot",
                   help="the file to write; its extension picks the format (`-o -` writes the DOT to stdout)")


def run(args: argparse.Namespace) -> int:
    from ..cli import _size, fail, load_spec
    from ..files import atomic_write, check_output_file, write_text
    from ..visual import graphviz
    from ..visual.dot import build, count_nodes

    to_stdout = args.output == "-"
    try:  # a wrong output path is refused before any work
        fmt = "dot" if to_stdout else graphviz.output_format(args.output)
        if not to_stdout:
            check_output_file(args.output)
    except ArchError as exc:
        return fail(args, exc.diagnostics, Sources(), exc.exit_code)
    spec, code = load_spec(args)
    if spec is None:
        return code
    try:
        if fmt != "dot":
            graphviz.check_size(count_nodes(spec.network, args.depth), args.output, args.depth)
        drawing = build(spec.network, args.depth)
        if to_stdout:
            sys.stdout.write(drawing.text)
            return EXIT_OK
        if fmt == "dot":
            write_text(args.output, drawing.text)
        else:
            data = graphviz.render(drawing.text, fmt, args.output)
            atomic_write(args.output, lambda tmp: _write_bytes(tmp, data))
    except ArchError as exc:
        return fail(args, exc.diagnostics, spec.sources, exc.exit_code)
    clusters = f", {drawing.clusters} block{'s' * (drawing.clusters != 1)} drawn as boxes" if drawing.clusters else ""
    print(f"wrote {args.output} ({_size(os.path.getsize(args.output))}): {spec.name}, "
          f"{drawing.nodes} node{'s' * (drawing.nodes != 1)}{clusters}")
    return EXIT_OK


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
