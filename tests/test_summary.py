"""`archspec summary`: golden outputs for the whole zoo, the JSON schema, --depth, --batch,
--set and --input, and determinism. Also checks that every ```arch example in
docs/language.md passes `archspec check`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import archspec
from archspec.cli import main
from archspec.errors import Sources
from archspec.loader import load_file

ROOT = Path(__file__).resolve().parent.parent
ZOO = [p.relative_to(ROOT) for p in sorted((ROOT / "specs").glob("*.arch"))]
# torchvision networks with summary golden files (their family files define many networks each)
TORCHVISION = [("specs/torchvision/vgg.arch", "vgg11"), ("specs/torchvision/resnet.arch", "resnet18"),
               ("specs/torchvision/resnet.arch", "resnet50"), ("specs/torchvision/resnet.arch", "resnext50_32x4d")]


def _defines_a_network(path: Path) -> bool:
    program = load_file(str(ROOT / path), Sources())
    return any(program.definitions[n].kind == "network" for n in program.own)


NETWORKS = [str(p) for p in ZOO if _defines_a_network(p)] + [f"{f}::{n}" for f, n in TORCHVISION]


def golden_name(spec: str, suffix: str) -> str:
    """specs/lenet.arch -> summary/lenet.<suffix>; specs/torchvision/vgg.arch::vgg11 -> summary/torchvision/vgg11.*"""
    if "::" in spec:
        return f"summary/torchvision/{spec.split('::')[1]}.{suffix}"
    return "summary/" + spec.removeprefix("specs/").removesuffix(".arch") + "." + suffix


def _argv(spec: str) -> list[str]:
    """`archspec summary` arguments for a NETWORKS entry."""
    if "::" in spec:
        path, net = spec.split("::")
        return [path, "--network", net]
    return [spec]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def summary_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, "summary", *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_the_zoo_is_all_here():
    assert len(NETWORKS) >= 14, NETWORKS
    for name in ("lenet", "vgg11", "resnet18"):
        assert f"specs/{name}.arch" in NETWORKS
    assert "specs/residual.arch" not in NETWORKS  # blocks only: nothing to summarise


# ---- golden files -------------------------------------------------------------------------

@pytest.mark.parametrize("spec", NETWORKS)
def test_summary_text_golden(spec, capsys, golden):
    code, out, err = run(capsys, "summary", *_argv(spec))
    assert code == 0 and err == ""
    golden(golden_name(spec, "txt"), out)


@pytest.mark.parametrize("spec", NETWORKS)
def test_summary_json_golden(spec, capsys, golden):
    code, out, err = run(capsys, "summary", *_argv(spec), "--format", "json")
    assert code == 0 and err == ""
    golden(golden_name(spec, "json"), out)


def test_summary_depth2_golden(capsys, golden):
    code, out, _ = run(capsys, "summary", "specs/resnet18.arch", "--depth", "2")
    assert code == 0
    golden("summary/resnet18.depth2.txt", out)


# ---- the JSON schema ---------------------------------------------------------------------

LAYER_KEYS = {"name", "path", "op", "kind", "call", "depth", "output_shape", "params", "macs", "receptive_field",
              "activation_bytes"}


def test_json_keys(capsys):
    data = summary_json(capsys, "specs/lenet.arch")
    assert {"network", "input", "layers", "totals", "output_shape", "batch"} <= set(data)
    assert data["network"] == "lenet"
    assert data["input"] == [1, 1, 28, 28]
    assert data["output_shape"] == [1, 10]
    assert set(data["totals"]) == {"params", "macs", "activation_bytes"}
    assert data["totals"]["params"] == 61_706 and data["totals"]["macs"] == 416_520
    for layer in data["layers"]:
        assert set(layer) == LAYER_KEYS
        assert set(layer["receptive_field"]) == {"size", "stride"}
        assert len(layer["receptive_field"]["size"]) == len(layer["receptive_field"]["stride"]) == 2
    first = data["layers"][0]
    assert first == {
        "name": "0", "path": "0", "op": "conv2d", "kind": "layer", "call": "conv2d(6, kernel=5, padding=2)",
        "depth": 1, "output_shape": [1, 6, 28, 28], "params": 156, "macs": 117_600,
        "receptive_field": {"size": [5, 5], "stride": [1, 1]}, "activation_bytes": 4 * 6 * 28 * 28,
    }


def test_totals_are_the_sums_of_the_top_level_rows(capsys):
    for spec in NETWORKS:
        data = summary_json(capsys, *_argv(spec))
        for key in ("params", "macs", "activation_bytes"):
            if isinstance(data["totals"][key], str):  # `input [3, H, W]`: expressions, summed as such
                net = archspec.load(spec).network
                total = sum((getattr(n, key) for n in net.graph.nodes if n.kind != "input"), 0)
                assert str(total) == data["totals"][key], (spec, key)
                continue
            assert sum(r[key] for r in data["layers"]) == data["totals"][key], (spec, key)


def test_api_summary_equals_the_cli(capsys):
    assert archspec.load("specs/resnet18.arch").summary(depth=2) == summary_json(capsys, "specs/resnet18.arch",
                                                                                 "--depth", "2")


# ---- --depth -----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, rows", [("specs/lenet.arch", 12), ("specs/vgg11.arch", 13),
                                        ("specs/resnet18.arch", 6)])
def test_depth1_row_counts(spec, rows, capsys):
    assert len(summary_json(capsys, spec)["layers"]) == rows


def test_depth_counts_module_levels(capsys):
    """Depth 1 is the network's own graph; a block or named container's nodes are one deeper. Anonymous
    seq/add/concat are no level of their own: their nodes sit where they are, the add after its branches."""
    by_depth = {d: summary_json(capsys, "specs/resnet18.arch", "--depth", str(d))["layers"] for d in range(1, 6)}
    paths = {d: [r["path"] for r in rows] for d, rows in by_depth.items()}
    assert paths[1] == ["b1", "b2", "b3", "b4", "b5", "last"]
    assert paths[2][:7] == ["b1", "b1.0", "b1.1", "b1.2", "b1.3", "b2", "b2.0"]
    # b2.0.conv1 sits in resnet_stage -> residual: depth 3, and not before
    for path in ("b2.0.conv1", "b2.0.bn1", "b2.0.conv2", "b2.0.bn2", "b5.1.conv2"):
        assert path in paths[3], path
        assert path not in paths[2]
    assert all(r["depth"] <= d for d, rows in by_depth.items() for r in rows)
    assert by_depth[4] == by_depth[3]  # nothing in the book's ResNet-18 is deeper than three levels


def test_an_anonymous_add_is_a_row_after_its_branches(capsys):
    rows = summary_json(capsys, "specs/resnet18.arch", "--depth", "3")["layers"]
    start = [r["path"] for r in rows].index("b3.0")
    ops = [(r["name"], r["op"], r["depth"]) for r in rows[start:start + 10]]
    assert ops == [("0", "residual", 2), ("conv1", "conv2d", 3), ("bn1", "batchnorm2d", 3), ("2", "relu", 3),
                   ("conv2", "conv2d", 3), ("bn2", "batchnorm2d", 3), ("conv3", "conv2d", 3), ("", "add", 3),
                   ("6", "relu", 3), ("1", "residual", 2)]
    add = next(r for r in rows if r["op"] == "add" and r["depth"] == 3)
    assert add["output_shape"] == [1, 64, 24, 24] and add["params"] == 0


def test_a_top_level_add_follows_its_branches():
    spec = archspec.loads("network n() { input [4, 8, 8]  add { conv2d(4, kernel=3, padding=1)  identity }  relu }")
    assert [(r["name"], r["path"], r["op"]) for r in spec.summary(depth=1)["layers"]] == [
        ("0", "0", "conv2d"), ("1", "1", "identity"), ("", "", "add"), ("2", "2", "relu")]
    assert spec.summary_text(depth=1).splitlines()[4:8] == [
        "0     conv2d(4, kernel=3, padding=1)  [1, 4, 8, 8]     148  9,216           3x3/1",
        "1     identity                        [1, 4, 8, 8]       0      0           1x1/1",
        "·     add                             [1, 4, 8, 8]       0      0           3x3/1",
        "2     relu                            [1, 4, 8, 8]       0      0           3x3/1",
    ]


def test_depth_indents_the_text_table(capsys):
    _, out, _ = run(capsys, "summary", "specs/resnet18.arch", "--depth", "3")
    assert re.search(r"^b2 +resnet_stage\(2, 64, first_block=true\)", out, re.MULTILINE)
    assert re.search(r"^  0 +residual\(64\)", out, re.MULTILINE)
    assert re.search(r"^    conv1 +conv2d\(64, kernel=3, padding=1, stride=1\)", out, re.MULTILINE)


def test_depth_must_be_positive(capsys):
    with pytest.raises(SystemExit) as info:
        main(["summary", "specs/lenet.arch", "--depth", "0"])
    assert info.value.code == 2
    capsys.readouterr()


# ---- --batch -----------------------------------------------------------------------------

def test_batch_scales_shapes_macs_and_activations_not_params(capsys):
    one = summary_json(capsys, "specs/resnet18.arch", "--depth", "2")
    eight = summary_json(capsys, "specs/resnet18.arch", "--depth", "2", "--batch", "8")
    assert eight["input"] == [8, 1, 96, 96] and eight["output_shape"] == [8, 10] and eight["batch"] == 8
    assert eight["totals"] == {"params": one["totals"]["params"], "macs": 8 * one["totals"]["macs"],
                               "activation_bytes": 8 * one["totals"]["activation_bytes"]}
    for a, b in zip(one["layers"], eight["layers"]):
        assert b["output_shape"] == [8, *a["output_shape"][1:]]
        assert (b["params"], b["macs"], b["activation_bytes"]) == (a["params"], 8 * a["macs"],
                                                                    8 * a["activation_bytes"])
        assert b["receptive_field"] == a["receptive_field"]


def test_batch_in_the_text_header_and_footer(capsys):
    _, out, _ = run(capsys, "summary", "specs/lenet.arch", "--batch", "4")
    assert out.startswith("lenet (specs/lenet.arch): input [4, 1, 28, 28]\n")
    assert "\noutput [4, 10]\n" in out
    assert "\nparams 61,706  (61.71K)\n" in out
    assert "\nMACs 1,666,080  (1.67M, batch 4)\n" in out


def test_asserts_are_per_sample(capsys):
    """lenet.arch asserts params == 61_706; budgets do not move with --batch."""
    text = 'network n() { input [1, 28, 28]  conv2d(6, kernel=5)  assert macs == 6 * 24 * 24 * 25 }'
    assert archspec.loads(text, batch=16).summary()["totals"]["macs"] == 16 * 6 * 24 * 24 * 25


# ---- --set and --input ------------------------------------------------------------------

def test_set_overrides_a_parameter(capsys):
    data = summary_json(capsys, "specs/lenet.arch", "--set", "num_classes=100")
    assert data["output_shape"] == [1, 100]
    assert data["overrides"] == {"num_classes": "100"}
    assert data["totals"]["params"] == 61_706 - 850 + 84 * 100 + 100


def test_set_takes_the_languages_syntax(capsys):
    data = summary_json(capsys, "specs/vgg11.arch", "--set", "arch=[(1, 16), (1, 32), (2, 64), (2, 128), (2, 128)]")
    assert data["totals"]["params"] == archspec.load("specs/vgg_small.arch").params
    assert [r["output_shape"][1] for r in data["layers"][:5]] == [16, 32, 64, 128, 128]


def test_set_is_shown_in_the_text_header(capsys):
    _, out, _ = run(capsys, "summary", "specs/lenet.arch", "--set", "num_classes=100")
    assert out.splitlines()[0] == "lenet (specs/lenet.arch): input [1, 1, 28, 28], num_classes=100"


def test_set_equals_the_api_keyword(capsys):
    cli = summary_json(capsys, "specs/resnet18.arch", "--set", "num_classes=7", "--set", "arch=[(1, 64), (1, 128)]")
    api = archspec.load("specs/resnet18.arch", num_classes=7, arch=[(1, 64), (1, 128)]).summary()
    assert cli == api
    assert [r["path"] for r in cli["layers"]] == ["b1", "b2", "b3", "last"]


def test_set_unknown_parameter_is_an_error(capsys):
    code, out, err = run(capsys, "summary", "specs/lenet.arch", "--set", "num_clases=3")
    assert code == 2 and out == ""  # a mistake on the command line, not in the spec: a usage error
    assert "E203" in err and "did you mean `num_classes`" in err


def test_input_overrides_the_shape(capsys):
    data = summary_json(capsys, "specs/resnet18.arch", "--input", "3,224,224")
    assert data["input"] == [1, 3, 224, 224]
    assert [r["output_shape"] for r in data["layers"]] == [
        [1, 64, 56, 56], [1, 64, 56, 56], [1, 128, 28, 28], [1, 256, 14, 14], [1, 512, 7, 7], [1, 10]]
    assert data["layers"][0]["params"] == 3 * 64 * 49 + 64 + 2 * 64
    assert data["layers"][-1]["receptive_field"]["size"] == [224, 224]


def test_input_that_is_too_small_is_an_error(capsys):
    code, _, err = run(capsys, "summary", "specs/lenet.arch", "--input", "1,8,8")
    assert code == 1 and "E401" in err


# ---- determinism -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["text", "json"])
def test_output_is_deterministic(capsys, fmt):
    outputs = {run(capsys, "summary", "specs/densenet.arch", "--depth", "3", "--format", fmt)[1] for _ in range(2)}
    assert len(outputs) == 1


# ---- docs/language.md: every ```arch example passes `archspec check` ----------------------

DOCS = ROOT / "docs" / "language.md"
FENCE = re.compile(r"^```arch\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def doc_examples() -> list[str]:
    return FENCE.findall(DOCS.read_text(encoding="utf-8")) if DOCS.exists() else []


def test_docs_have_examples():
    assert len(doc_examples()) >= 10


@pytest.mark.parametrize("index", range(len(doc_examples())))
def test_docs_example_passes_check(index, tmp_path, capsys):
    text = doc_examples()[index]
    path = tmp_path / f"example{index}.arch"
    path.write_text(text)
    shutil.copytree("specs", tmp_path / "specs")  # examples import "specs/..." as from the root (a link
    # would lead outside the example's folder, where imports may not go)
    code, out, err = run(capsys, "check", str(path), "--werror")
    assert code == 0, f"example {index} fails `archspec check`:\n{text}\n{err}"
    assert ": ok" in out


def test_loads_finds_imports_beside_the_file_it_is_named_after(tmp_path, monkeypatch):
    path = Path("specs/vgg11.arch").resolve()
    from_file = archspec.load(str(path)).summary()["totals"]
    monkeypatch.chdir(tmp_path)  # the working folder holds no vgg.arch
    assert archspec.loads(path.read_text(), name=str(path)).summary()["totals"] == from_file
    with pytest.raises(archspec.ArchError) as exc:
        archspec.loads(path.read_text())  # unnamed text imports from the working folder
    assert exc.value.diagnostics[0].code == "E210"


@pytest.mark.parametrize("kw", [dict(input="3,64,64"), dict(input=(3.5, 64, 64)), dict(input=(True, 64, 64)),
                                dict(input=()), dict(input=(1, 0, 28)), dict(batch=-1), dict(batch=0),
                                dict(batch=2.0), dict(batch=True)])
def test_api_input_and_batch_are_checked_as_the_spec_would_check_them(kw):
    with pytest.raises(archspec.ArchError) as exc:
        archspec.load("specs/resnet18.arch", **kw)
    assert exc.value.diagnostics[0].code == "E302"


def test_api_input_and_batch_accept_lists_and_tuples():
    a = archspec.load("specs/resnet18.arch", input=(1, 64, 64), batch=4).summary()
    b = archspec.load("specs/resnet18.arch", input=[1, 64, 64], batch=4).summary()
    assert a == b and a["input"] == [4, 1, 64, 64]
