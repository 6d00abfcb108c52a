"""`archspec lsp`: the analysis it keeps between edits against `archspec check` starting over, and the
server itself driven over stdio with real JSON-RPC messages (initialize, didOpen, didChange, hover,
completion, definition, documentSymbol, inlay hints, formatting, shutdown and exit).

Expected shapes, parameters and lines are worked out here from the public API and the text of the
spec, never written in by hand, so a change to shape inference cannot leave these tests behind.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import subprocess
import sys
from pathlib import Path

import pytest

import archspec
from archspec import ir
from archspec.api import build
from archspec.errors import ArchError, Diagnostic, Sources, Span
from archspec.layers import LAYERS
from archspec.loader import load_text
from archspec.lsp.analysis import Analyzer
from archspec.lsp.chunks import ItemCache, item_starts
from archspec.passes import Overrides, resolve
from archspec.summary import as_dict, show_shape

ROOT = Path(__file__).resolve().parent.parent
RESNET = ROOT / "specs" / "torchvision" / "resnet.arch"
needs_pygls = pytest.mark.skipif(importlib.util.find_spec("pygls") is None,
                                 reason="pygls is not installed (pip install 'archspec[lsp]')")

SMALL = """\
# a small network with a block called in a loop, a function and labels
block double(c: int) {
    conv2d(c, kernel=3, padding=1)
    relu
}

def width(k) = 8 * k

network small(num_classes: int = 10) {
    input [3, 32, 32]
    stem = conv2d(width(2), kernel=3, stride=2, padding=1)
    for i in range(2) {
        double(16 * (i + 1))
    }
    flatten
    fc = linear(num_classes)
}
"""


def line_of(text: str, needle: str) -> int:
    """The line (from 0) of the first line containing `needle`."""
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


def where(text: str, needle: str, offset: int = 0) -> dict:
    """The protocol position of `needle` (plus `offset` characters) in `text`."""
    line = line_of(text, needle)
    return {"line": line, "character": text.splitlines()[line].index(needle) + offset}


# ---- the analysis, without the protocol ----------------------------------------------------------

def reference(path: str, text: str) -> list[Diagnostic]:
    """What `archspec check` reports for the text, starting over: every network of the file, one
    problem of several networks once, with a note naming them (archspec/cli.py's cmd_check)."""
    sources = Sources()
    try:
        program = resolve(load_text(text, sources, path))
    except ArchError as exc:
        return sorted(exc.diagnostics, key=Diagnostic.sort_key)
    nets = [n for n in program.own if program.definitions[n].kind == "network"]
    found: dict[Diagnostic, list[str]] = {}
    for name in nets:
        try:
            diags = build(program, sources, name, Overrides()).warnings
        except ArchError as exc:
            diags = exc.diagnostics
        for d in diags:
            found.setdefault(d, []).append(name)
    out = []
    for d, names in found.items():
        if len(nets) > 1:
            which = ", ".join(f"`{n}`" for n in names)
            d = dataclasses.replace(d, notes=(*d.notes, f"checking network{'s' * (len(names) > 1)} {which}"))
        out.append(d)
    return sorted(out, key=Diagnostic.sort_key)


def checked(analyzer: Analyzer, path: str, text: str) -> list[Diagnostic]:
    a = analyzer.analyse(path, text)
    analyzer.check_all(a)
    return a.diagnostics()


def _spec_texts() -> list[Path]:
    files = sorted((ROOT / "specs").glob("**/*.arch")) + sorted((ROOT / "tests" / "bad").glob("*.arch"))
    out = []
    for f in files:
        data = f.read_bytes()
        if b"\0" not in data and data.strip():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append(f)
    return out


def test_every_spec_and_bad_input_gets_what_archspec_check_reports():
    analyzer = Analyzer()
    files = _spec_texts()
    assert len(files) > 100
    for f in files:
        path = str(f.relative_to(ROOT))
        text = f.read_text(encoding="utf-8")
        assert checked(analyzer, path, text) == reference(path, text), path


def test_edits_checked_with_kept_items_and_networks_equal_a_fresh_check():
    """Random one-character edits to resnet.arch (half of them break it): after each, the warm
    analyzer's diagnostics and its focus network's summary are those of a fresh check."""
    rng = random.Random(12)
    original = RESNET.read_text(encoding="utf-8")
    spaces = [i for i, ch in enumerate(original) if ch == " "]
    path = str(RESNET)
    analyzer = Analyzer()
    valid = 0
    for step in range(40):
        if step % 2:  # a space beside a space: harmless, but every span after it on the line moves
            at = rng.choice(spaces)
            text = original[:at] + " " + original[at:]
        else:  # a character gone: mostly a mistake
            at = rng.randrange(len(original))
            text = original[:at] + original[at + 1:]
        a = analyzer.analyse(path, text, "resnet50")
        analyzer.check_all(a)
        assert a.diagnostics() == reference(path, text), f"step {step}"
        if a.network() is not None:
            valid += 1
            fresh = archspec.loads(text, "resnet50", name=path).network
            assert as_dict(a.network(), depth=3) == as_dict(fresh, depth=3)
    assert valid >= 15  # the comparison covered networks, not only errors


def test_an_edit_reparses_one_item_and_keeps_networks_it_does_not_reach():
    text = RESNET.read_text(encoding="utf-8")
    path = str(RESNET)
    analyzer = Analyzer()
    analyzer.analyse(path, text, "resnet50")
    parsed, expanded = analyzer.items.parsed, analyzer.expanded
    # resnet18's line: one item parsed again, resnet50 (which does not read it) not expanded again
    edited = text.replace("network resnet18(num_classes: int = 1000)", "network resnet18(num_classes: int = 1001)")
    assert edited != text
    a = analyzer.analyse(path, edited, "resnet50")
    assert (analyzer.items.parsed - parsed, analyzer.expanded - expanded) == (1, 0)
    assert a.network() is not None and a.focus == "resnet50"
    # a comment inside the bottleneck block: the block's item is parsed again, and resnet50, which
    # reads it, is expanded again (its spans may have moved)
    edited2 = edited.replace("    let width = planes", "    let width  = planes")
    assert edited2 != edited
    analyzer.analyse(path, edited2, "resnet50")
    assert (analyzer.items.parsed - parsed, analyzer.expanded - expanded) == (2, 1)


def test_a_cancelled_background_check_stops_and_keeps_nothing():
    """The server checks a file's other networks in a thread; a newer edit cancels the check, which
    stops at its next expression (StoppableBudget) and leaves no half-made result in the cache. The
    server's own thread goes on checking the same file meanwhile."""
    import threading

    from archspec.lsp.analysis import Cancelled

    text = RESNET.read_text(encoding="utf-8")
    analyzer = Analyzer()
    a = analyzer.analyse(str(RESNET), text, "resnet18")
    outcome: list[str] = []

    def background() -> None:
        a.program.budget.background = threading.get_ident()
        a.program.budget.cancel()
        try:
            analyzer.result(a, "resnet152")
            outcome.append("finished")
        except Cancelled:
            outcome.append("cancelled")

    worker = threading.Thread(target=background)
    worker.start()
    worker.join(timeout=60)
    assert outcome == ["cancelled"]
    assert (str(RESNET), "resnet152") not in analyzer._checks
    assert analyzer.check(a, "resnet152").network is not None  # the server's own thread is not stopped


def test_items_are_cut_at_top_level_keywords_only():
    text = ('# import "x.arch" in a comment\nblock a() {\n  relu  # network b\n}\n'
            'def f(x) = x\n  network c() { input [1]  identity }\n'
            'network d() {\n  input [1]\n  linear(1, "{")\n}\n')
    lines = [line for _, line in item_starts(text)]
    assert lines == [1, 5, 6, 7]
    # an unclosed bracket does not swallow the items after it, when they begin at a line's start
    broken = "block a() {\n  conv2d(3,\n}\nnetwork b() { input [1] identity }\n"
    assert [line for _, line in item_starts(broken)] == [1, 4]


def test_syntax_errors_are_the_whole_files_and_parsed_items_still_serve():
    text = SMALL.replace("    relu\n}", "    relu\n")  # the block's closing brace gone
    a = Analyzer().analyse("small.arch", text)
    want = []
    try:
        load_text(text, Sources(), "small.arch")
    except ArchError as exc:
        want = exc.diagnostics
    assert want and a.problems == want
    assert [d.name for d in a.source.definitions] == ["small"]  # the network still parses on its own
    assert [f.name for f in a.source.functions] == ["width"]


def test_item_cache_forgets_the_least_recently_used():
    cache = ItemCache(size=2)
    for n in range(3):
        cache.parse(f"block b{n}() {{ relu }}\n", "x.arch")
    cache.parse("block b2() { relu }\n", "x.arch")
    assert cache.parsed == 3
    cache.parse("block b0() { relu }\n", "x.arch")
    assert cache.parsed == 4


# ---- the server over stdio -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    pytest.importorskip("pygls")
    from archspec.lsp.client import Client

    c = Client(cwd=str(ROOT))
    c.initialize(str(ROOT))
    yield c
    assert c.close() == 0


@pytest.fixture
def small(tmp_path: Path, client) -> tuple[str, str]:
    path = tmp_path / "small.arch"
    path.write_text(SMALL, encoding="utf-8")
    uri = client.open(str(path), SMALL)
    _, diags = client.diagnostics(uri, 1)
    assert diags == []
    return uri, SMALL


def _expanded(text: str, name: str | None = None) -> ir.Network:
    return archspec.loads(text, name).network


@needs_pygls
def test_initialize_advertises_the_features(client):
    from archspec.lsp.client import Client

    other = Client(cwd=str(ROOT))
    try:
        caps = other.initialize(str(ROOT))["capabilities"]
    finally:
        assert other.close() == 0
    for feature in ("hoverProvider", "completionProvider", "definitionProvider", "documentSymbolProvider",
                    "inlayHintProvider", "documentFormattingProvider"):
        assert caps.get(feature), feature
    assert caps["textDocumentSync"]["change"] == 2  # incremental


@needs_pygls
def test_a_bad_edit_gets_its_diagnostic_and_the_fix_clears_it(client, small):
    uri, text = small
    pos = where(text, "kernel=3, stride=2", len("kernel="))
    client.change(uri, 2, "99", (pos["line"], pos["character"]), (pos["line"], pos["character"] + 1))
    _, diags = client.diagnostics(uri, 2)
    assert [d["code"] for d in diags] == ["E401"]
    d = diags[0]
    assert d["range"]["start"] == {"line": pos["line"], "character": text.splitlines()[pos["line"]].index("conv2d")}
    assert d["severity"] == 1 and d["source"] == "archspec"
    href = d["codeDescription"]["href"]
    assert href.startswith("file://") and href.split("#")[0].endswith("docs/errors.md")
    assert href.split("#")[1].startswith("e401-")
    heading = href.split("#")[1]
    doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert any(line.startswith("### E401") and line.lower().replace(" ", "-").startswith("###-" + heading[:10])
               for line in doc.splitlines())
    client.change(uri, 3, "3", (pos["line"], pos["character"]), (pos["line"], pos["character"] + 2))
    _, diags = client.diagnostics(uri, 3)
    assert diags == []


@needs_pygls
def test_unknown_layer_syntax_error_and_warning(client, small):
    uri, text = small
    pos = where(text, "flatten")
    client.change(uri, 2, "flatte", (pos["line"], pos["character"]), (pos["line"], pos["character"] + 7))
    _, diags = client.diagnostics(uri, 2)
    assert [(d["code"], d["range"]["start"]["line"]) for d in diags] == [("E201", pos["line"])]
    assert "did you mean `flatten`" in diags[0]["message"]
    client.change(uri, 3, "", (pos["line"], pos["character"]), (pos["line"], pos["character"] + 6))
    _, diags = client.diagnostics(uri, 3)
    assert [d["code"] for d in diags] == ["W601"] and diags[0]["severity"] == 2
    brace = line_of(text, "    relu") + 1
    client.change(uri, 4, "", (brace, 0), (brace, 1))
    _, diags = client.diagnostics(uri, 4)
    assert [d["code"] for d in diags] in (["E101"], ["E103"])


@needs_pygls
def test_hover_shows_shape_params_macs_and_field_in_context(client, small):
    uri, text = small
    net = _expanded(text)
    stem = next(n for n in ir.walk(net.graph) if n.path == "stem")
    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": where(text, "stem = conv2d", 9)})
    value = hover["contents"]["value"]
    assert LAYERS["conv2d"].signature() in value
    assert f"| `stem` | {show_shape([1, *stem.out_shape])} | {stem.params:,} | {stem.macs:,} |" in value
    assert hover["range"]["start"]["line"] == line_of(text, "stem = conv2d")
    # the conv2d inside the block: one row per call of the block, each with its own shape
    convs = [n for n in ir.walk(net.graph) if n.op == "conv2d" and n.path != "stem"]
    assert len(convs) == 2 and convs[0].out_shape != convs[1].out_shape
    value = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": where(text, "conv2d(c,", 2)})["contents"]["value"]
    for n in convs:
        assert f"| `{n.path}` | {show_shape([1, *n.out_shape])} |" in value
    calls = [n for n in ir.walk(net.graph) if n.kind == "block"]
    value = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": where(text, "double(16", 3)})["contents"]["value"]
    assert value.count("| `") == len(calls) == 2
    assert "block double(c: int)" in value


@needs_pygls
def test_completion_offers_layers_blocks_and_keyword_arguments(client, small):
    uri, text = small
    line = line_of(text, "flatten")
    client.change(uri, 2, "    \n", (line, 0))
    items = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                       "position": {"line": line, "character": 4}})["items"]
    by_label = {i["label"]: i for i in items}
    assert by_label["conv2d"]["detail"] == LAYERS["conv2d"].signature()
    assert "double" in by_label and "relu" in by_label
    client.change(uri, 3, "conv2d(16, ", (line, 4))
    items = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                       "position": {"line": line, "character": 15}})["items"]
    labels = [i["label"] for i in items]
    wanted = [f"{a.name}=" for a in LAYERS["conv2d"].args[1:]]  # the first is given by position
    assert [x for x in labels if x.endswith("=")] == wanted
    kernel = next(i for i in items if i["label"] == "kernel=")
    assert kernel["insertText"] == "kernel=" and LAYERS["conv2d"].signature() in kernel["documentation"]["value"]
    client.change(uri, 4, "double(", (line, 4), (line, 15))
    items = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                       "position": {"line": line, "character": 11}})["items"]
    assert "c=" in [i["label"] for i in items]


@needs_pygls
def test_definition_of_blocks_functions_locals_and_refs(client, small):
    uri, text = small

    def target(position: dict) -> tuple[str, int]:
        found = client.request("textDocument/definition", {"textDocument": {"uri": uri}, "position": position})
        assert len(found) == 1
        return found[0]["uri"], found[0]["range"]["start"]["line"]

    assert target(where(text, "double(16", 2)) == (uri, line_of(text, "block double"))
    assert target(where(text, "width(2)", 1)) == (uri, line_of(text, "def width"))
    assert target(where(text, "linear(num_classes)", 9)) == (uri, line_of(text, "network small"))
    assert target(where(text, "16 * (i + 1)", 6)) == (uri, line_of(text, "for i in"))


@needs_pygls
def test_the_buffer_is_checked_with_imports_beside_its_file(client, tmp_path):
    (tmp_path / "lib.arch").write_text("block head(n: int) {\n    flatten\n    linear(n)\n}\n", encoding="utf-8")
    (tmp_path / "broken.arch").write_text("block oops( {\n", encoding="utf-8")
    main = tmp_path / "main.arch"
    main.write_text("this is not what the editor holds\n", encoding="utf-8")
    text = 'import "lib.arch"\n\nnetwork main() {\n    input [4, 2, 2]\n    head(7)\n}\n'
    uri = client.open(str(main), text)
    _, diags = client.diagnostics(uri, 1)
    assert diags == []  # the unsaved buffer, not the file on disk
    found = client.request("textDocument/definition", {"textDocument": {"uri": uri}, "position": where(text, "head(7")})
    assert found[0]["uri"] == (tmp_path / "lib.arch").resolve().as_uri() and found[0]["range"]["start"]["line"] == 0
    found = client.request("textDocument/definition", {"textDocument": {"uri": uri},
                                                       "position": where(text, "lib.arch", 2)})
    assert found[0]["uri"] == (tmp_path / "lib.arch").resolve().as_uri()
    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": where(text, "head(7", 1)})
    net = archspec.loads(text, name=str(main)).network
    assert f"| `0` | {show_shape([1, *net.out_shape])} |" in hover["contents"]["value"]
    # an error in an imported file is shown at the import that brings it in
    client.change(uri, 2, 'import "broken.arch"\n', (1, 0))
    edited = text.replace("\n", '\nimport "broken.arch"\n', 1)
    with pytest.raises(ArchError) as exc:
        archspec.loads(edited, name=str(main))
    want = exc.value.diagnostics[0]
    assert Path(want.span.file).name == "broken.arch"
    _, diags = client.diagnostics(uri, 2)
    at_import = line_of(edited, "broken.arch")
    assert [(d["code"], d["range"]["start"]["line"]) for d in diags] == [(want.code, at_import)]
    assert diags[0]["message"].startswith(f"{want.span}: {want.message}")
    related = diags[0]["relatedInformation"][0]["location"]
    assert related["uri"] == (tmp_path / "broken.arch").resolve().as_uri()
    assert related["range"]["start"]["line"] == want.span.line - 1


@needs_pygls
def test_document_symbols_and_inlay_hints(client, small):
    uri, text = small
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [(s["name"], s["range"]["start"]["line"]) for s in symbols] == [
        ("double", line_of(text, "block double")), ("width", line_of(text, "def width")),
        ("small", line_of(text, "network small"))]
    assert [c["name"] for c in symbols[2]["children"]] == ["stem", "fc"]
    hints = client.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
        "start": {"line": 0, "character": 0}, "end": {"line": len(text.splitlines()), "character": 0}}})
    by_line = {h["position"]["line"]: h["label"] for h in hints}
    net = _expanded(text)
    stem = next(n for n in ir.walk(net.graph) if n.path == "stem")
    assert by_line[line_of(text, "stem = conv2d")] == "→ " + show_shape([1, *stem.out_shape])
    assert by_line[line_of(text, "fc = linear")] == "→ " + show_shape([1, *net.out_shape])
    assert "×2" in by_line[line_of(text, "double(16")]


@needs_pygls
def test_the_other_networks_are_checked_after_the_focus_one(client, tmp_path):
    text = ("network a() {\n    input [3, 8, 8]\n    flatten\n}\n\n"
            "network b() {\n    input [3, 8, 8]\n    conv2d(4, kernel=9)\n}\n")
    path = tmp_path / "a.arch"
    uri = client.open(str(path), text)
    _, first = client.diagnostics(uri, 1)
    assert first == []  # `a`, named like the file, is checked first
    _, later = client.diagnostics(uri, 1, timeout=10)
    assert [(d["code"], d["range"]["start"]["line"]) for d in later] == [("E401", 7)]
    assert "checking network `b`" in later[0]["message"]
    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": where(text, "flatten")})
    assert "in `a`" in hover["contents"]["value"]


@needs_pygls
def test_focus_follows_the_cursor_into_another_network(client):
    text = RESNET.read_text(encoding="utf-8")
    uri = client.open(str(RESNET), text)
    client.diagnostics(uri, 1)
    client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": where(text, "network resnet50", 9)})
    value = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": where(text, "bottleneck(planes", 2)})["contents"]["value"]
    net = archspec.load(str(RESNET), "resnet50").network
    calls = [n for n in ir.walk(net.graph) if n.op == "bottleneck"]
    assert "in `resnet50`" in value and value.count("| `layer") == len(calls) == 16


@needs_pygls
def test_formatting_goes_through_archspec_fmt(client, tmp_path):
    from archspec.format import format_text

    text = "network f() {\n  input [3, 8, 8]\n     relu\n}\n"
    want = format_text(text, "f.arch")
    assert want != text
    uri = client.open(str(tmp_path / "f.arch"), text)
    client.diagnostics(uri, 1)
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                       "options": {"tabSize": 4, "insertSpaces": True}})
    assert len(edits) == 1 and edits[0]["newText"] == want
    assert edits[0]["range"]["start"] == {"line": 0, "character": 0}


def test_without_pygls_the_command_says_what_to_install():
    code = ("import sys; sys.modules['pygls'] = None; sys.modules['pygls.lsp.server'] = None\n"
            "from archspec.cli import main; sys.exit(main(['lsp']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2
    assert "error[E890]" in r.stderr and "pip install 'archspec[lsp]'" in r.stderr


def test_spans_become_protocol_ranges():
    """Lines and columns from 1 become positions from 0; a span with no end covers one character; a
    file-level problem (no line) sits at the document's start; columns count UTF-16 units."""
    pytest.importorskip("pygls")
    from pygls.workspace import PositionCodec

    from archspec.lsp.server import to_range

    codec = PositionCodec()

    def r(span: Span, lines: list[str]) -> tuple[int, int, int, int]:
        got = to_range(span, lines, codec)
        return got.start.line, got.start.character, got.end.line, got.end.character

    assert r(Span("x.arch"), ["a\n"]) == (0, 0, 0, 0)
    assert r(Span("x.arch", 1, 2, 0, 0), ["abc\n"]) == (0, 1, 0, 2)
    assert r(Span("x.arch", 2, 1, 3, 4), ["a\n", "bcd\n", "efg\n"]) == (1, 0, 2, 3)
    assert r(Span("x.arch", 1, 4, 1, 5), ['"\U0001F600" relu\n']) == (0, 4, 0, 5)  # the emoji is two units
