"""`archspec graph`: the DOT it writes, read back by Graphviz itself (`dot -Tjson0`), for LeNet,
ResNet-18 (blocks in blocks), U-Net (graph wiring) and GoogLeNet (training outputs): one node per
layer at full depth, a cluster per block, edges labelled with the shapes the IR inferred and wired as
the IR wires them, blocks collapsed at --depth. Also the DOT escaper (a property test through
Graphviz), determinism across processes, the outputs (svg, png, pdf, dot, stdout) and every error
(E885-E887, E889), each leaving no file behind.

Graphviz is needed for most of these. Where it is missing they are skipped, saying so, unless
ARCHSPEC_REQUIRE_TOOLS=1 (set by .ci/run), where that is a failure.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archspec
from archspec import ir
from archspec.cli import main
from archspec.escape import dot_string, printable
from archspec.summary import show_shape
from archspec.visual import graphviz
from archspec.visual.dot import build, count_nodes, nesting, to_dot

ROOT = Path(__file__).resolve().parent.parent
REQUIRE = os.environ.get("ARCHSPEC_REQUIRE_TOOLS") == "1"
SPECS = {"lenet": ("specs/lenet.arch", None), "resnet18": ("specs/resnet18.arch", None),
         "unet": ("specs/unet.arch", None), "googlenet": ("specs/torchvision/googlenet.arch", None)}
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None)
# Any text, and text made of what DOT and Graphviz treat specially: escapes (`\\N`, `\\G`, `\\l`),
# entities (`&amp;`, `&#65;`), quotes, record and HTML-label syntax, line breaks, controls.
TOKENS = ("&amp;", "&lt;", "&#65;", "&", ";", "\\", "\\N", "\\G", "\\l", "\\n", "n", '"', '\\"', "{", "}", "|",
          "<b>", "</svg>", " ", "  ", "\n", "\t", "\x07", "\u202e", "é", "😀", "x")
TRICKY = st.text(max_size=30) | st.lists(st.sampled_from(TOKENS), max_size=12).map("".join)


def need(what: str, present: bool, how: str) -> None:
    """Skip, saying why, when a tool is missing; fail instead under ARCHSPEC_REQUIRE_TOOLS=1."""
    if present:
        return
    message = f"{what} is not installed here ({how})"
    if REQUIRE:
        pytest.fail(message + "; ARCHSPEC_REQUIRE_TOOLS=1 says this test must run")
    pytest.skip(message)


def need_dot() -> str:
    exe = shutil.which("dot")
    need("Graphviz's dot", exe is not None, "apt-get install graphviz")
    return exe or ""


def spec(name: str) -> archspec.Spec:
    path, network = SPECS[name]
    return archspec.load(path, network)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- reading DOT back through Graphviz -----------------------------------------------------------

def unescape(raw: str, passes: int = 1) -> str:
    """What Graphviz shows for a DOT attribute as -Tjson0 gives it (quotes already undone): `\\n` a
    line break, `\\x` the character x, then entities; a tooltip takes the backslash pass twice."""
    for _ in range(passes):
        raw = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), raw, flags=re.S)
    return html.unescape(raw)


class Read:
    """A DOT text as Graphviz parsed it: nodes, clusters (with the nodes each holds) and edges."""

    def __init__(self, dot_text: str):
        done = subprocess.run([need_dot(), "-Tjson0"], input=dot_text.encode(), capture_output=True, check=True)
        data = json.loads(done.stdout)
        objects = data.get("objects", [])
        self.nodes = {o["_gvid"]: o for o in objects if "nodes" not in o and "subgraphs" not in o}
        self.clusters = [o for o in objects if o["name"].startswith("cluster")]
        self.edges = data.get("edges", [])

    def label(self, obj: dict) -> str:
        return unescape(obj.get("label", ""))

    def tip(self, obj: dict) -> list[str]:
        return unescape(obj.get("tooltip", ""), 2).split("\n")

    def shape_of(self, gvid: int) -> str:
        """The shape a node gives, from its tooltip (`output [..]`; an input's second line)."""
        tip = self.tip(self.nodes[gvid])
        if tip[0].startswith("input"):
            return tip[1]
        return next(line.removeprefix("output ") for line in tip if line.startswith("output ["))

    def into(self, gvid: int) -> list[int]:
        return [e["tail"] for e in self.edges if e["head"] == gvid]


def drawn(g: ir.Graph, level: int, depth: int | None, top: bool = True) -> list[ir.GNode]:
    """The IR nodes a diagram draws as shapes (inputs of the network, layers, add/mul/concat, and
    blocks at the depth where they collapse), found independently of archspec.visual."""
    out = []
    for n in g.nodes:
        if n.kind == "input":
            out += [n] if top else []
        elif n.body is not None and (depth is None or level < depth):
            out += drawn(n.body, level + 1, depth, top=False)
        else:
            out.append(n)
    return out


def containers(g: ir.Graph, level: int, depth: int | None) -> list[ir.GNode]:
    out = []
    for n in g.nodes:
        if n.body is not None and (depth is None or level < depth):
            out += [n, *containers(n.body, level + 1, depth)]
    return out


# ---- the DOT of the zoo --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SPECS))
def test_full_depth_draws_every_layer_once_with_its_shape(name):
    s = spec(name)
    g = s.network.graph
    read = Read(to_dot(s.network))
    outputs = len(g.outputs) + len(g.training)
    want = drawn(g, 1, None)
    assert len(read.nodes) == len(want) + outputs
    layer_paths = [n.path for n in ir.layers(g)]
    assert len(layer_paths) == len(set(layer_paths))  # paths name the layers one to one
    by_path = {read.tip(n)[0]: gid for gid, n in read.nodes.items()}
    assert set(layer_paths) <= set(by_path)
    for layer in ir.layers(g):
        node = read.nodes[by_path[layer.path]]
        assert f"output {show_shape(layer.out_shape)}" in read.tip(node)
        assert f"params {layer.params:,}" in read.tip(node) and f"MACs {layer.macs:,}" in read.tip(node)
    combines = sum(n.kind == "combine" for n in want)
    assert sum(read.tip(n)[0].endswith("branches") for n in read.nodes.values()) == combines
    # every edge carries the shape its tail gives; as many edges as the IR has inputs, plus outputs
    assert len(read.edges) == sum(len(n.inputs) for n in want) + outputs
    for e in read.edges:
        assert read.label(e).strip() == read.shape_of(e["tail"]), e


@pytest.mark.parametrize("name", list(SPECS))
def test_a_cluster_per_block_and_named_container(name):
    s = spec(name)
    read = Read(to_dot(s.network))
    boxes = containers(s.network.graph, 1, None)
    assert len(read.clusters) == len(boxes)
    labels = sorted(read.label(c) for c in read.clusters)
    from archspec.summary import describe

    assert labels == sorted(f"{n.label} = {describe(n)}" if n.label else describe(n) for n in boxes)
    paths = sorted(read.tip(c)[0] for c in read.clusters)
    assert paths == sorted(n.path for n in boxes)


def test_resnet18_blocks_nest_and_its_shortcuts_run_beside_the_main_path():
    s = spec("resnet18")
    read = Read(to_dot(s.network))
    by_path = {read.tip(n)[0]: gid for gid, n in read.nodes.items()}
    clusters = {read.tip(c)[0]: c for c in read.clusters}
    # b3.0 is inside b3: Graphviz lists its nodes among b3's, and b3.0's shortcut conv3 among b3.0's
    assert set(clusters["b3.0"]["nodes"]) < set(clusters["b3"]["nodes"])
    assert by_path["b3.0.conv3"] in clusters["b3.0"]["nodes"]
    # the shortcut and the main path both start from b2's last relu and meet at the add
    last_of_b2 = by_path["b2.1.6"]
    assert read.into(by_path["b3.0.conv1"]) == [last_of_b2]
    assert read.into(by_path["b3.0.conv3"]) == [last_of_b2]
    add = read.into(by_path["b3.0.6"])
    assert len(add) == 1 and read.label(read.nodes[add[0]]) == "+"
    assert sorted(read.into(add[0])) == sorted([by_path["b3.0.bn2"], by_path["b3.0.conv3"]])


def test_unet_skips_are_edges_from_the_encoder_to_each_concat():
    s = spec("unet")
    read = Read(to_dot(s.network))
    by_path = {read.tip(n)[0]: gid for gid, n in read.nodes.items()}
    concats = [gid for gid, n in read.nodes.items() if read.label(n) == "concat"]
    assert len(concats) == 4
    # each concat reads the encoder level's last relu (@encK) first and the upsampled path (identity)
    for k, concat in zip((4, 3, 2, 1), sorted(concats)):
        tails = read.into(concat)
        assert by_path[f"enc{k}.3"] in tails, (k, [read.tip(read.nodes[t])[0] for t in tails])
        assert len(tails) == 2
        skip = next(e for e in read.edges if e["tail"] == by_path[f"enc{k}.3"] and e["head"] == concat)
        assert read.label(skip).strip() == show_shape(s.network.graph.nodes[2 * k - 1].out_shape)


def test_googlenet_training_outputs_are_dashed_and_read_from_inception4a_and_4d():
    s = spec("googlenet")
    read = Read(to_dot(s.network))
    outputs = {read.label(n): gid for gid, n in read.nodes.items() if read.label(n).startswith("output")}
    assert set(outputs) == {"output logits", "output aux1 (training)", "output aux2 (training)"}
    by_path = {read.tip(n)[0]: gid for gid, n in read.nodes.items()}
    clusters = {read.tip(c)[0]: c for c in read.clusters}
    for aux, source in (("aux1", "inception4a"), ("aux2", "inception4d")):
        edge_in = next(e for e in read.edges if e["head"] == outputs[f"output {aux} (training)"])
        assert edge_in["tail"] == by_path[f"{aux}.fc2"] and edge_in.get("style") == "dashed"
        assert "dashed" in clusters[aux]["style"]
        first = read.into(by_path[f"{aux}.0"])
        assert len(first) == 1 and first[0] in clusters[source]["nodes"]  # the concat ending inception4x
        assert read.label(read.nodes[first[0]]) == "concat"
    logits = next(e for e in read.edges if e["head"] == outputs["output logits"])
    assert logits["tail"] == by_path["fc"] and "style" not in logits


@pytest.mark.parametrize("name,depth", [("resnet18", 1), ("resnet18", 2), ("googlenet", 1), ("googlenet", 2),
                                        ("unet", 1)])
def test_depth_collapses_deeper_blocks_into_one_box(name, depth):
    s = spec(name)
    g = s.network.graph
    read = Read(to_dot(s.network, depth))
    want = drawn(g, 1, depth)
    assert len(read.nodes) == len(want) + len(g.outputs) + len(g.training) == count_nodes(s.network, depth)
    assert len(read.clusters) == len(containers(g, 1, depth))
    boxes = [n for n in want if n.body is not None]
    assert boxes, "the depth should collapse something"
    by_path = {read.tip(n)[0]: n for n in read.nodes.values()}
    for b in boxes:
        node = by_path[b.path]
        assert node.get("peripheries") == "2"
        layers = sum(1 for _ in ir.layers(b.body))
        assert read.label(node).endswith(f"{b.params:,} params, {layers} layer{'s' * (layers != 1)}")
    for e in read.edges:
        assert read.label(e).strip() == read.shape_of(e["tail"])


def test_depth_at_or_past_the_nesting_draws_everything():
    s = spec("resnet18")
    assert nesting(s.network) == 3
    assert to_dot(s.network, 3) == to_dot(s.network, 50) == to_dot(s.network)


def test_lenet_dot_golden(golden):
    golden("graph/lenet.dot", to_dot(spec("lenet").network))


# ---- the escaper ---------------------------------------------------------------------------------

def test_printable_keeps_printable_text_and_shows_the_rest():
    assert printable("conv2d é ü 😀 {x} <b>") == "conv2d é ü 😀 {x} <b>"
    assert printable("a\x07b\u202ec\u2028d\n") == "a\\x07b\\u202ec\\u2028d\\x0a"


@given(TRICKY)
@PROPERTY
def test_dot_string_is_one_quoted_line(text):
    quoted = dot_string(text)
    assert quoted.startswith('"') and quoted.endswith('"') and len(quoted) >= 2
    inner = quoted[1:-1]
    assert "\n" not in quoted and "\r" not in quoted
    # every quote inside is escaped: after removing escape pairs none is left
    assert '"' not in re.sub(r"\\.", "", inner)
    assert not re.sub(r"\\.", "", inner).endswith("\\")
    assert quoted.isascii() or all(ch.isprintable() for ch in inner)


def _shown_by_graphviz(texts: list[str]) -> list[list[str]]:
    """Each text as a node label, a node tooltip, an edge label and tooltip, and a cluster label and
    tooltip, drawn by `dot -Tsvg`: what the SVG shows for each, in that order."""
    lines = ["digraph G {"]
    for i, t in enumerate(texts):
        lines += [f"  subgraph cluster_{i} {{ graph [label={dot_string(t)}, tooltip={dot_string(t, True)}];",
                  f"    a{i} [label={dot_string(t)}, tooltip={dot_string(t, True)}]; b{i} [label=\"\"]; }}",
                  f"  a{i} -> b{i} [label={dot_string(t)}, tooltip={dot_string(t, True)}];"]
    lines.append("}")
    svg = subprocess.run([need_dot(), "-Tsvg"], input="\n".join(lines).encode(), capture_output=True, check=True)
    root = ET.fromstring(svg.stdout)
    shown: dict[str, list[str]] = {}
    for g in root.iter(f"{SVG}g"):
        kind = g.get("class")
        if kind not in ("node", "edge", "cluster"):
            continue
        name = g.find(f"{SVG}title").text
        if name.startswith("b"):
            continue
        key = re.sub(r"\D", "", name.split("-")[0])
        text = "\n".join((t.text or "") for t in g.iter(f"{SVG}text"))
        tips = [a.get(f"{XLINK}title") for a in g.iter(f"{SVG}a")]
        shown.setdefault(key, []).extend([text, *tips])
    # Graphviz keeps runs of spaces by writing every second one as a no-break space
    return [[s.replace("\xa0", " ") for s in shown.get(str(i), [])] for i in range(len(texts))]


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]  # an empty line of a label is drawn as nothing


@given(st.lists(TRICKY, min_size=1, max_size=12))
@PROPERTY
def test_graphviz_shows_exactly_the_escaped_text(texts):
    need_dot()
    for text, shown in zip(texts, _shown_by_graphviz(texts)):
        want = [printable(line) for line in text.split("\n")]
        assert len(shown) == 6 if text else len(shown) == 3  # an empty tooltip is left out
        for s in shown:
            assert _lines(s) == [line for line in want if line], (text, shown)


def test_graphviz_shows_hostile_text_as_written():
    need_dot()
    hostile = ['a\\b \\N \\G \\L \\E \\T \\H', '"quoted" & &amp; &lt; &#65;', "{ | } < >", "é 😀 日本",
               "tab\there bell\x07", "two\nlines", "\\", '\\"', "x\\n"]
    for text, shown in zip(hostile, _shown_by_graphviz(hostile)):
        want = "\n".join(printable(line) for line in text.split("\n"))
        assert shown == [want] * 6, (text, shown)


# ---- the command ---------------------------------------------------------------------------------

def test_svg_has_the_nodes_and_tooltips(capsys, tmp_path):
    need_dot()
    out = tmp_path / "lenet.svg"
    code, stdout, err = run(capsys, "graph", "specs/lenet.arch", "-o", str(out))
    assert code == 0, err
    assert re.fullmatch(rf"wrote {re.escape(str(out))} \(\d+\.\d KB\): lenet, 14 nodes\n", stdout), stdout
    root = ET.fromstring(out.read_bytes())
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert len(nodes) == 12 + 2  # twelve layers, the input, the output
    tips = [a.get(f"{XLINK}title") for g in nodes for a in g.iter(f"{SVG}a")]
    assert any(t.startswith("0\nconv2d(6, kernel=5, padding=2)\noutput [6, 28, 28]\nparams 156\nMACs 117,600")
               for t in tips), tips
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "[16, 5, 5]" in [t.strip() for t in texts if t]


@pytest.mark.parametrize("ext,magic", [("png", b"\x89PNG\r\n\x1a\n"), ("pdf", b"%PDF-")])
def test_png_and_pdf(capsys, tmp_path, ext, magic):
    need_dot()
    out = tmp_path / f"unet.{ext}"
    code, _, err = run(capsys, "graph", "specs/unet.arch", "--depth", "1", "-o", str(out))
    assert code == 0, err
    assert out.read_bytes().startswith(magic)


def test_dot_needs_no_graphviz_and_stdout(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    out = tmp_path / "net.dot"
    code, _, err = run(capsys, "graph", "specs/resnet18.arch", "--depth", "2", "-o", str(out))
    assert code == 0, err
    assert out.read_text() == to_dot(spec("resnet18").network, 2)
    code, stdout, err = run(capsys, "graph", "specs/resnet18.arch", "--set", "num_classes=7", "-o", "-")
    assert code == 0, err
    assert stdout == to_dot(archspec.load("specs/resnet18.arch", num_classes=7).network)
    assert "[7]" in stdout


def test_same_bytes_in_any_process(tmp_path):
    need_dot()
    outs = []
    for seed in ("1", "2"):
        for ext in ("dot", "svg"):
            path = tmp_path / f"{seed}.{ext}"
            env = {**os.environ, "PYTHONHASHSEED": seed}
            subprocess.run([sys.executable, "-m", "archspec", "graph", "specs/torchvision/googlenet.arch", "-o",
                            str(path)], check=True, env=env, capture_output=True, cwd=ROOT)
            outs.append(path.read_bytes())
    assert outs[0] == outs[2] and outs[1] == outs[3]


def test_missing_dot_is_E885_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "net.svg"
    code, stdout, err = run(capsys, "graph", "specs/lenet.arch", "-o", str(out))
    assert code == 2 and stdout == ""
    assert err.startswith(f"{out}: error[E885]: Graphviz's `dot` program is not installed (or not on PATH)")
    assert "apt-get install graphviz" in err and "-o NAME.dot" in err
    assert not out.exists()


def test_failing_dot_is_E886_and_keeps_the_old_file(capsys, tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Error: something \\033[31mred\\033[0m broke' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    out = tmp_path / "net.svg"
    out.write_text("old")
    code, _, err = run(capsys, "graph", "specs/lenet.arch", "-o", str(out))
    assert code == 2
    assert f"{out}: error[E886]: Graphviz's `dot -Tsvg` failed (exit status 3): Error: something red broke" in err
    assert "\x1b" not in err
    assert out.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["bin", "net.svg"]


def test_unknown_extension_is_E887_before_any_work(capsys, tmp_path):
    for name in ("net.jpg", "net"):
        code, _, err = run(capsys, "graph", "specs/no_such_file.arch", "-o", str(tmp_path / name))
        assert code == 2
        assert "error[E887]: cannot tell what to write from the output path" in err
        assert "must end in .svg, .png, .pdf or .dot" in err


def test_too_many_nodes_is_E889_and_depth_is_the_way_out(capsys, tmp_path, monkeypatch):
    need_dot()
    monkeypatch.setattr(graphviz, "MAX_NODES", 40)
    out = tmp_path / "r.svg"
    code, _, err = run(capsys, "graph", "specs/resnet18.arch", "-o", str(out))
    assert code == 2 and "error[E889]: the diagram would have 73 nodes, more than the 40" in err
    assert "--depth" in err and not out.exists()
    code, _, err = run(capsys, "graph", "specs/resnet18.arch", "--depth", "2", "-o", str(out))
    assert code == 0, err


def test_the_real_limit(capsys, tmp_path):
    """313 residual blocks draw 2,506 nodes: refused at once, before Graphviz is run (it would take
    many seconds); the DOT itself is still written on request."""
    (tmp_path / "residual.arch").write_text((ROOT / "specs" / "residual.arch").read_text())
    big = tmp_path / "big.arch"
    big.write_text('import "residual.arch"\nnetwork big() {\n    input [8, 8, 8]\n    repeat 313 { residual(8) }\n}\n')
    code, _, err = run(capsys, "graph", str(big), "-o", str(tmp_path / "big.svg"))
    assert code == 2 and "error[E889]: the diagram would have 2,506 nodes, more than the 2,500" in err
    code, _, err = run(capsys, "graph", str(big), "-o", str(tmp_path / "big.dot"))
    assert code == 0, err
    need_dot()
    code, _, err = run(capsys, "graph", str(big), "--depth", "1", "-o", str(tmp_path / "big.svg"))
    assert code == 0, err


def test_spec_errors_and_output_paths(capsys, tmp_path):
    code, _, err = run(capsys, "graph", "specs/torchvision/resnet.arch", "--network", "resnet1", "-o",
                       str(tmp_path / "x.dot"))
    assert code == 2 and "error[E212]: no network `resnet1`" in err
    code, _, err = run(capsys, "graph", "specs/lenet.arch", "-o", str(tmp_path / "missing" / "x.dot"))
    assert code == 2 and "error[E001]" in err
    bad = tmp_path / "bad.arch"
    bad.write_text("network n() {\n    input [1, 4, 4]\n    conv2d(8, kernel=5)\n}\n")
    code, _, err = run(capsys, "graph", str(bad), "-o", str(tmp_path / "x.dot"))
    assert code == 1 and "error[E401]" in err and not (tmp_path / "x.dot").exists()


def test_build_counts_what_it_draws():
    for name in SPECS:
        s = spec(name)
        for depth in (None, 1, 2):
            d = build(s.network, depth)
            assert d.nodes == count_nodes(s.network, depth) == len(re.findall(r"^\s*n\d+ \[", d.text, re.M))
            assert d.clusters == d.text.count("subgraph cluster_")
