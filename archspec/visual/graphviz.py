"""DOT text -> svg, png or pdf through Graphviz's `dot` program (a separate process, found on PATH)."""

from __future__ import annotations

import shutil
import subprocess

from ..errors import Span, foreign_text, io_error

FORMATS = ("svg", "png", "pdf", "dot")  # what `-o NAME.EXT` may end in
TIMEOUT = 300  # seconds; the zoo's largest diagram (efficientnet_v2_l, 1,228 nodes) takes about 3
# dot's layout time grows much faster than the graph: a chain of residual blocks took 0.7 s at 1,202
# nodes, 4.4 s at 2,402 and 55 s at 4,802 (`archspec graph -o x.dot`, then `time dot -Tsvg x.dot`)
MAX_NODES = 2_500
INSTALL = ("install Graphviz: `apt-get install graphviz` (Debian, Ubuntu), `brew install graphviz` (macOS), "
           "`conda install graphviz`; or write `-o NAME.dot`, which needs no Graphviz")


def output_format(path: str) -> str:
    """The format an output path asks for, by its extension (E887, exit 2, for any other)."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if ext not in FORMATS:
        shown = f"`.{ext}`" if ext else "no extension"
        raise io_error("E887", f"cannot tell what to write from the output path `{path}` ({shown}): it must end "
                               "in .svg, .png, .pdf or .dot", Span(path))
    return ext


def check_size(nodes: int, where: str, depth: int | None) -> None:
    """Refuse a diagram too large for dot to lay out in reasonable time (E889, exit 2)."""
    if nodes > MAX_NODES:
        at = f" at --depth {depth}" if depth is not None else ""
        raise io_error("E889", f"the diagram would have {nodes:,} nodes{at}, more than the {MAX_NODES:,} Graphviz "
                               "lays out in reasonable time", Span(where),
                       "draw fewer levels with --depth (1 draws each block as one box), or write `-o NAME.dot`")


def render(dot_text: str, fmt: str, where: str, hint: str = INSTALL) -> bytes:
    """Run `dot -T<fmt>` on the text; E885 when Graphviz is missing, E886 when it fails (exit 2)."""
    exe = shutil.which("dot")
    if exe is None:
        raise io_error("E885", f"Graphviz's `dot` program is not installed (or not on PATH); it draws the {fmt}",
                       Span(where), hint)
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise io_error("E886", f"Graphviz's `dot` did not finish within {TIMEOUT} s", Span(where),
                       "draw fewer levels with --depth") from None
    except OSError as exc:
        raise io_error("E886", f"cannot run Graphviz's `dot` ({exe}): {exc.strerror or exc}", Span(where)) from None
    if done.returncode != 0 or not done.stdout:
        said = foreign_text(done.stderr.decode("utf-8", "replace")) if done.stderr.strip() else "no message"
        raise io_error("E886", f"Graphviz's `dot -T{fmt}` failed (exit status {done.returncode}): {said}",
                       Span(where), f"the program run: {exe}")
    return done.stdout


def inline_svg(svg: bytes) -> str:
    """An SVG file from dot as an element to put inside an HTML page: its XML prolog, doctype and
    comments before the <svg> element left out."""
    text = svg.decode("utf-8")
    start = text.find("<svg")
    if start < 0:
        raise io_error("E886", "Graphviz's `dot -Tsvg` wrote no <svg> element")
    return text[start:].rstrip() + "\n"
