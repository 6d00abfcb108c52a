"""`archspec diff`: golden text for two reviewed diffs, the JSON's keys and figures, and the exit statuses
(0 the same network, 1 they differ, 2 either side cannot be built or read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import archspec
from archspec.cli import main
from archspec.format import format_text
from archspec.tools.diff import compare

RESNET = "specs/torchvision/resnet.arch"
MOBILENET = "specs/torchvision/mobilenet_v2.arch"


def _diff(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["diff", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name, argv", [
    ("resnet18_resnet34.txt", [f"{RESNET}:resnet18", f"{RESNET}:resnet34"]),
    ("mobilenet_v2_width_0.75.txt", [MOBILENET, "--set-b", "width_mult=0.75", "--depth", "2"]),
])
def test_text_output(capsys, golden, name, argv):
    code, out, err = _diff(capsys, *argv)
    assert code == 1 and err == ""
    golden(f"diff/{name}", out)


def test_json_keys_and_figures(capsys):
    code, out, _ = _diff(capsys, RESNET, "--network", "resnet18", "--network-b", "resnet34", "--format", "json")
    d = json.loads(out)
    assert code == 1 and d["same"] is False
    assert set(d) == {"a", "b", "same", "counts", "modules", "totals", "wiring_differs"}
    assert d["a"] == {"label": RESNET, "file": RESNET, "network": "resnet18", "overrides": {}}
    assert d["b"]["network"] == "resnet34"
    assert set(d["totals"]) == {"params", "macs", "activation_bytes", "input", "output_shape", "layers"}
    params = d["totals"]["params"]
    r18, r34 = archspec.load(RESNET, network="resnet18"), archspec.load(RESNET, network="resnet34")
    assert params == {"a": r18.params, "b": r34.params, "delta": r34.params - r18.params}
    assert d["totals"]["output_shape"] == {"a": [1, 1000], "b": [1, 1000]}  # no delta for shapes
    assert [m["path"] for m in d["modules"]] == ["layer1", "layer2", "layer3", "layer4"]  # depth 1
    layer3 = d["modules"][2]
    assert set(layer3) == {"path", "change", "fields", "a", "b"}
    assert layer3["change"] == "changed" and layer3["fields"] == ["layer", "params", "macs", "receptive_field",
                                                                 "arguments"]
    assert set(layer3["a"]) == {"layer", "kind", "depth", "output_shape", "params", "macs", "receptive_field",
                                "activation_bytes"}
    # ResNet-34 has 3, 4, 6, 3 basic blocks where ResNet-18 has 2 of each: 8 blocks of 8 modules each added
    assert d["counts"]["added"] == 8 * 8 and d["counts"]["removed"] == 0


def test_deeper_listing_shows_added_and_removed_modules(capsys):
    _, out, _ = _diff(capsys, f"{RESNET}:resnet34", f"{RESNET}:resnet18", "--depth", "2", "--format", "json")
    d = json.loads(out)
    removed = [m["path"] for m in d["modules"] if m["change"] == "removed"]
    assert removed == ["layer1.2", "layer2.2", "layer2.3", "layer3.2", "layer3.3", "layer3.4", "layer3.5", "layer4.2"]
    assert all(m["b"] is None and m["a"]["kind"] == "block" for m in d["modules"] if m["change"] == "removed")


def test_the_same_network_exits_0(capsys, tmp_path):
    code, out, _ = _diff(capsys, "specs/lenet.arch", "specs/lenet.arch")
    assert code == 0 and "(the same network)" in out and "~" not in out
    # written differently, the same network: a formatted copy, and the same override on both sides
    messy = tmp_path / "lenet.arch"
    messy.write_text(format_text(Path("specs/lenet.arch").read_text()).replace("    ", "  ").replace(", ", " ,"))
    assert _diff(capsys, "specs/lenet.arch", str(messy))[0] == 0
    assert _diff(capsys, MOBILENET, "--set", "width_mult=0.5", "--set-b", "width_mult=0.5")[0] == 0
    assert _diff(capsys, MOBILENET, "--set-b", "width_mult=0.5")[0] == 1
    code, out, _ = _diff(capsys, f"{RESNET}:resnet18", "--network-b", "resnet34")  # B: A's file, another network
    assert code == 1 and out.startswith(f"--- resnet18 ({RESNET})\n+++ resnet34 ({RESNET})\n")


def test_a_difference_in_wiring_alone_is_a_difference():
    add = archspec.loads("network n() {\n input [4, 8, 8]\n add { relu  identity }\n}\n")
    mul = archspec.loads("network n() {\n input [4, 8, 8]\n mul { relu  identity }\n}\n")
    d = compare(add.network, mul.network)
    assert d["modules"] == [] and d["wiring_differs"] and not d["same"]
    assert compare(add.network, add.network)["same"]


def test_errors_in_either_spec_are_reported_as_check_reports_them_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.arch"
    bad.write_text("network n() {\n    input [3, 8, 8]\n    conv2d(4, kernal=3)\n}\n")
    code, out, err = _diff(capsys, "specs/lenet.arch", str(bad))
    assert code == 2 and out == ""
    assert f"{bad}:3:15: error[E203]" in err and "conv2d(4, kernal=3)" in err  # located, with its line
    code, out, _ = _diff(capsys, str(bad), "specs/lenet.arch", "--format", "json")
    assert code == 2 and "E203" in {d["code"] for d in json.loads(out)["diagnostics"]}
    code, _, err = _diff(capsys, "specs/nope.arch", "specs/lenet.arch")
    assert code == 2 and "error[E001]" in err
    code, _, err = _diff(capsys, f"{RESNET}:resnet19", RESNET)
    assert code == 2 and "error[E212]" in err
    with pytest.raises(SystemExit) as exc:  # argparse: no file at all
        main(["diff"])
    assert exc.value.code == 2
