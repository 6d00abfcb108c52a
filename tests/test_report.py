"""`archspec report`: the page as HTML (self-contained, escaped, one row per layer, the asserts) and
in a real browser: Debian's chromium, headless, driven by playwright. There the page must load with
no console message and no request beyond itself, the table must hold the summary's rows, the
diagram must be drawn with the nodes the IR has, sorting must sort, tooltips must show, and a
screenshot is kept under pytest's tmp folder (its path is printed).

Graphviz, chromium and playwright are needed for parts of this. Where one is missing those parts
are skipped, saying so, unless ARCHSPEC_REQUIRE_TOOLS=1 (set by .ci/run), where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_graph import drawn, need, need_dot, run

import archspec
from archspec import ir
from archspec.summary import as_dict, show_shape
from archspec.visual.dot import nesting
from archspec.visual.page import table_rows

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "resnet18_report.html"
HOSTILE = '''# user text that HTML and DOT would both like to read as markup
block b_x(c: int) {
    "a\\"b{c}|<x>&amp;" = conv2d(c, kernel=3, padding=1)
    relu
}
network evil() {
    input [3, 8, 8]
    "</svg><script>document['title']='owned'</script>" = b_x(4)
    "<img src=x onerror=alert(1)>" = conv2d(4, kernel=1)
    interpolate(scale=2, mode="bilinear")
    assert params > 0, "</td><script>alert(2)</script> & \\"quoted\\""
}
'''


def leaf_rows(summary: dict) -> list[dict]:
    """The rows the page's table must show: the summary JSON's layers and add/mul/concat, at full depth."""
    return [r for r in summary["layers"] if r["kind"] in ("layer", "combine")]


def same_row(shown: str, row: dict) -> bool:
    """A table cell names a layer by its path, and an add/mul/concat by where it is and its op."""
    return shown == row["path"] if row["path"] else shown.endswith(f"({row['op']})")


def full_summary(path: str, network: str | None = None, **kw) -> dict:
    s = archspec.load(path, network, **kw)
    return s.summary(depth=nesting(s.network))


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of the page outside <script> and <style>."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._skip = 0
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def make(capsys, tmp_path: Path, *argv: str, name: str = "report.html") -> tuple[int, str, str, Path]:
    out = tmp_path / name
    code, stdout, err = run(capsys, "report", *argv, "-o", str(out))
    return code, stdout, err, out


# ---- the page as HTML ----------------------------------------------------------------------------

def test_one_row_per_layer_and_join_in_the_summarys_order(capsys, tmp_path):
    need_dot()
    code, stdout, err, out = make(capsys, tmp_path, "specs/resnet18.arch")
    assert code == 0, err
    assert stdout.startswith(f"wrote {out} (") and stdout.endswith("): resnet18\n")
    page = out.read_text()
    rows = re.findall(r'<tr id="row-(\d+)" data-i="\d+"[^>]*><td class="num index" data-v="\d+">\d+</td>'
                      r'<td class="path">([^<]*)</td><td class="call">([^<]*)</td>', page)
    want = leaf_rows(full_summary("specs/resnet18.arch"))
    assert len(rows) == len(want) == 63 + 8  # 4 in the stem, 7 in each of 8 residuals, 3 in the head; 8 adds
    assert [int(i) for i, _, _ in rows] == list(range(len(want)))
    for (_, path, call), r in zip(rows, want):
        assert call.replace("&quot;", '"') == r["call"]
        assert same_row(path, r)


def test_self_contained(capsys, tmp_path):
    need_dot()
    code, _, err, out = make(capsys, tmp_path, "specs/torchvision/googlenet.arch")
    assert code == 0, err
    page = out.read_text()
    parsed = Elements(page)
    csp = [a["content"] for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"]
    # nothing to fetch: no src at all, links only within the page or data:, no stylesheet or script files
    for tag, attrs in parsed.tags:
        assert "src" not in attrs, (tag, attrs)
        for key in ("href", "xlink:href"):
            if key in attrs:
                assert attrs[key].startswith(("#", "data:")), (tag, attrs)
    assert [t for t, _ in parsed.tags].count("script") == 1 and [t for t, _ in parsed.tags].count("style") == 1
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls


def test_user_text_is_escaped_everywhere(capsys, tmp_path):
    need_dot()
    spec = tmp_path / "evil.arch"
    spec.write_text(HOSTILE)
    code, _, err, out = make(capsys, tmp_path, str(spec))
    assert code == 0, err
    page = out.read_text()
    parsed = Elements(page)
    tags = [t for t, _ in parsed.tags]
    assert tags.count("script") == 1 and "img" not in tags
    assert not any(k.startswith("on") for _, a in parsed.tags for k in a)
    text = "".join(parsed.text)
    for shown in ("</svg><script>document['title']='owned'</script> = b_x(4)", "<img src=x onerror=alert(1)>",
                  'a"b4|<x>&amp;', 'mode="bilinear"', '</td><script>alert(2)</script> & "quoted"'):
        assert shown in text, shown


def test_asserts_with_their_results_and_a_failing_one(capsys, tmp_path):
    need_dot()
    code, _, err, out = make(capsys, tmp_path, "specs/lenet.arch")
    assert code == 0, err
    page = out.read_text()
    assert "2 of 2 hold." in page
    assert "<code>params == 61706 or num_classes != 10</code>" in page  # as the language renders it
    assert "<code>output == [num_classes]</code>" in page and "<td>params = 61,706</td>" in page
    assert page.count('<td class="ok">holds</td>') == 2
    # a budget the network breaks: the page is still written, shows it, and the run says E501, exit 1
    spec = tmp_path / "tight.arch"
    spec.write_text(Path("specs/lenet.arch").read_text().replace("assert output == [num_classes]",
                                                                 'assert macs < 1000, "too slow"'))
    code, stdout, err, out = make(capsys, tmp_path, str(spec), name="tight.html")
    assert code == 1
    assert f"{spec}:14:5: error[E501]: too slow (macs = 416,520)" in err
    page = out.read_text()
    assert "1 of 2 hold." in page and '<td class="fail">fails</td>' in page and "macs = 416,520" in page
    assert stdout.startswith(f"wrote {out}")


TWO = """
network small(width: int = 4) {
    input [3, 8, 8]
    conv2d(width, kernel=3)  relu
}
network wide() = small(width=16)
"""


def test_several_networks_one_page_or_a_folder(capsys, tmp_path):
    need_dot()
    spec = tmp_path / "nets.arch"
    spec.write_text(TWO)
    code, _, err, out = make(capsys, tmp_path, str(spec))
    assert code == 2 and not out.exists()
    assert f"{spec}: error[E888]: {spec} defines 2 networks and `{out}` is one page" in err
    assert "networks: small, wide" in err and "--network" in err and "-o reports/" in err
    code, _, err, out = make(capsys, tmp_path, str(spec), "--network", "wide")
    assert code == 0, err
    assert "<h1>wide</h1>" in out.read_text() and "[1, 16, 6, 6]" in out.read_text()
    folder = tmp_path / "pages"
    code, stdout, err = run(capsys, "report", str(spec), "-o", f"{folder}/")
    assert code == 0, err
    assert sorted(os.listdir(folder)) == ["small.html", "wide.html"]
    assert [line.split(": ")[-1] for line in stdout.splitlines()] == ["small", "wide"]
    for name, channels in (("small", 4), ("wide", 16)):
        page = (folder / f"{name}.html").read_text()
        assert f"<h1>{name}</h1>" in page and f"[1, {channels}, 6, 6]" in page
    # a folder that exists takes one page per network too, and the zoo's family files work the same
    code, stdout, err = run(capsys, "report", "specs/torchvision/squeezenet.arch", "--no-diagram", "-o", str(folder))
    assert code == 0, err
    assert {"squeezenet1_0.html", "squeezenet1_1.html"} <= set(os.listdir(folder))


def test_without_graphviz(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err, out = make(capsys, tmp_path, "specs/lenet.arch")
    assert code == 2 and not out.exists()
    assert "error[E885]" in err and "--no-diagram" in err
    code, _, err, out = make(capsys, tmp_path, "specs/lenet.arch", "--no-diagram")
    assert code == 0, err
    assert "Left out (--no-diagram)." in out.read_text() and "<svg" in out.read_text()  # the charts still are


def test_too_large_diagram_is_drawn_shallower(capsys, tmp_path, monkeypatch):
    need_dot()
    from archspec.visual import graphviz

    monkeypatch.setattr(graphviz, "MAX_NODES", 30)
    code, _, err, out = make(capsys, tmp_path, "specs/resnet18.arch")
    assert code == 0, err
    page = out.read_text()
    assert "17 nodes, blocks expanded 2 levels deep, deeper ones drawn as one box each." in page
    code, _, err, out = make(capsys, tmp_path, "specs/resnet18.arch", "--depth", "3")
    assert code == 2 and "error[E889]" in err


def test_same_bytes_every_time(capsys, tmp_path):
    need_dot()
    first = make(capsys, tmp_path, "specs/unet.arch", "--input", "1,64,64", name="a.html")[3].read_bytes()
    second = make(capsys, tmp_path, "specs/unet.arch", "--input", "1,64,64", name="b.html")[3].read_bytes()
    assert first == second


def test_checked_in_example_matches_the_spec_today():
    """docs/examples/resnet18_report.html is torchvision's ResNet-18; its table must still be the
    summary of specs/torchvision/resnet.arch (rerun the command in the README when it is not)."""
    page = EXAMPLE.read_text()
    rows = re.findall(r'<td class="path">([^<]*)</td>.*?<td class="shape" data-v="\d+">([^<]*)</td>'
                      r'<td class="num params" data-v="(\d+)">', page)
    want = leaf_rows(full_summary("specs/torchvision/resnet.arch", "resnet18"))
    assert len(rows) == len(want)
    for (path, shape, params), r in zip(rows, want):
        assert (path == r["path"] or not r["path"]) and shape == show_shape(r["output_shape"])
        assert int(params) == r["params"]
    assert "docs/examples/resnet18_report.html" in (ROOT / "README.md").read_text()


# ---- in the browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    need("chromium", chromium is not None, "apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    need("playwright", sync_playwright is not None, "pip install playwright; it drives the system chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Opened:
    """A page opened in the browser, with everything it said on the console and every request."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.messages: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def column(self, key: str) -> list[str]:
        return self.page.eval_on_selector_all(f"table.layers tbody td.{key}",
                                              "cells => cells.map(c => c.getAttribute('data-v') ?? c.textContent)")


def expected_nodes(spec: archspec.Spec) -> int:
    g = spec.network.graph
    return len(drawn(g, 1, None)) + len(g.outputs) + len(g.training)


# resnet18 nests blocks three deep, U-Net is wired with @names (and sized `input [1, H, W]`, so its
# MACs are expressions), GoogLeNet has training-only outputs
@pytest.mark.parametrize("path,network", [("specs/torchvision/resnet.arch", "resnet18"), ("specs/unet.arch", None),
                                          ("specs/torchvision/googlenet.arch", None)])
def test_in_chromium(browser, capsys, tmp_path, path, network):
    need_dot()
    code, _, err, out = make(capsys, tmp_path, path, *(["--network", network] if network else []))
    assert code == 0, err
    spec = archspec.load(path, network)
    want = leaf_rows(spec.summary(depth=nesting(spec.network)))
    opened = Opened(browser, out)
    page = opened.page
    shot = tmp_path / f"{spec.name}.png"
    page.screenshot(path=str(shot), full_page=True)
    with capsys.disabled():
        print(f"\n  screenshot of the {spec.name} report: {shot}")
    assert shot.stat().st_size > 10_000
    # loads cleanly, offline: no console output at all, nothing fetched but the page
    assert opened.messages == []
    assert opened.requests == [out.as_uri()]
    # the table: one row per layer and join, those of the summary JSON, in its order
    assert page.locator("table.layers tbody tr").count() == len(want)
    shown = opened.column("path")
    assert len(shown) == len(want) and all(same_row(c, r) for c, r in zip(shown, want))
    assert [int(v) for v in opened.column("params")] == [r["params"] for r in want]
    # the diagram is drawn: the nodes the IR has, laid out (a real box), with tooltips
    assert page.locator(".diagram svg g.node").count() == expected_nodes(spec)
    box = page.locator(".diagram svg").bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 200
    assert page.locator(".diagram svg a[data-tip]").count() >= expected_nodes(spec)
    # a chart of each figure that is a number somewhere (U-Net's MACs and activations are all
    # expressions in H and W), the receptive field's, and a bar for each layer with parameters
    drawable = [all(isinstance(r[k], int) for r in want) or any(isinstance(r[k], int) and r[k] for r in want)
                for k in ("params", "macs", "activation_bytes")]
    assert page.locator("svg.chart").count() == sum(drawable) + 1
    assert drawable == [True, "unet" not in path, "unet" not in path]
    assert page.locator("#chart-params rect.bar").count() == sum(1 for r in want if r["params"])


def test_sorting_tooltips_and_charts_in_chromium(browser, capsys, tmp_path):
    need_dot()
    code, _, err, out = make(capsys, tmp_path, "specs/torchvision/resnet.arch", "--network", "resnet18")
    assert code == 0, err
    want = leaf_rows(full_summary("specs/torchvision/resnet.arch", "resnet18"))
    opened = Opened(browser, out)
    page = opened.page
    params = page.locator("table.layers th[data-key=params]")
    params.click()
    assert params.get_attribute("aria-sort") == "descending"
    got = [int(v) for v in opened.column("params")]
    assert got == sorted((r["params"] for r in want), reverse=True)
    # ties keep execution order: the zero-parameter rows come in the order of the summary
    order = [int(i) for i, v in zip(opened.column("index"), got) if v == 0]
    assert len(order) == sum(not r["params"] for r in want) and order == sorted(order)
    params.click()
    assert params.get_attribute("aria-sort") == "ascending"
    assert [int(v) for v in opened.column("params")] == sorted(r["params"] for r in want)
    layer = page.locator("table.layers th[data-key=path]")
    layer.click()
    assert layer.get_attribute("aria-sort") == "ascending" and params.get_attribute("aria-sort") is None
    paths = page.eval_on_selector_all("table.layers tbody td.path", "cells => cells.map(c => c.textContent)")
    assert paths == sorted(paths, key=str.lower)
    page.locator("table.layers th[data-key=index]").click()  # back to execution order, largest first
    assert [int(v) for v in opened.column("index")] == list(range(len(want), 0, -1))
    # hovering a layer of the diagram shows its figures
    node = page.locator('.diagram svg g.node a[data-tip^="layer4.1.conv2"]')
    assert node.count() == 1
    node.hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    assert "params 2,359,296" in tip.text_content() and "MACs 115,605,504" in tip.text_content()
    # a bar of a chart points at its row
    page.locator("#chart-params rect.bar").first.click()
    assert page.locator("tr.hl").count() == 1
    assert page.locator("tr.hl td.path").text_content() == "conv1"
    assert opened.messages == []


def test_the_hostile_page_runs_no_script_of_the_specs(browser, capsys, tmp_path):
    need_dot()
    spec = tmp_path / "evil.arch"
    spec.write_text(HOSTILE)
    code, _, err, out = make(capsys, tmp_path, str(spec))
    assert code == 0, err
    dialogs: list[str] = []
    page = browser.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text))
    page.goto(out.as_uri())
    assert page.title() == "evil: archspec report"
    assert dialogs == [] and errors == []
    assert page.eval_on_selector_all("script", "s => s.length") == 1
    assert page.locator("img").count() == 0
    assert "</svg><script>document['title']='owned'</script>" in page.locator(".diagram").text_content()


def test_table_rows_cover_every_layer():
    """The rows are the summary's leaves: every layer once, and every add/mul/concat."""
    for path, network in (("specs/unet.arch", None), ("specs/torchvision/googlenet.arch", None),
                          ("specs/densenet.arch", None)):
        s = archspec.load(path, network)
        rows = table_rows(s.network)
        layers = list(ir.layers(s.network.graph))
        assert [r.row["path"] for r in rows if r.row["kind"] == "layer"] == [n.path for n in layers]
        joins = sum(n.kind == "combine" for n in ir.walk(s.network.graph))
        assert sum(r.row["kind"] == "combine" for r in rows) == joins
        assert sum(r.row["params"] for r in rows) == s.params
        assert as_dict(s.network)["totals"]["params"] == s.params
