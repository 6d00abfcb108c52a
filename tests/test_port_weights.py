"""Porting weights: port_weights from a module, a state_dict or a file; `archspec port-weights`.

Tensors are matched in execution order and every shape is checked; a checkpoint is read with
weights_only=True. Each failure has its code and exit status, and writes nothing.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

import archspec
from archspec.cli import main
from archspec.export.weights import check_metadata, fit, port_weights, read_checkpoint

ROOT = Path(__file__).resolve().parent.parent
SPEC = "specs/lenet.arch"


class HandLeNet(nn.Module):
    """LeNet written by hand: other names, and registered in another order than it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc3 = nn.Linear(84, 10)
        self.fc2 = nn.Linear(120, 84)
        self.fc1 = nn.Linear(400, 120)
        self.c3 = nn.Conv2d(6, 16, kernel_size=5)
        self.c1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(torch.sigmoid(self.c1(x)), 2)
        x = F.avg_pool2d(torch.sigmoid(self.c3(x)), 2)
        x = torch.sigmoid(self.fc1(torch.flatten(x, 1)))
        return self.fc3(torch.sigmoid(self.fc2(x)))


def in_running_order(hand: HandLeNet) -> list[tuple[str, torch.Tensor]]:
    return [(f"{m}.{p}", getattr(getattr(hand, m), p)) for m in ("c1", "c3", "fc1", "fc2", "fc3")
            for p in ("weight", "bias")]


class Evil:
    """Unpickling this would run a command: a safe reader never does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def hand() -> HandLeNet:
    torch.manual_seed(3)
    return HandLeNet().eval()


@pytest.fixture(scope="module")
def spec() -> archspec.Spec:
    return archspec.load(SPEC)


X = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def same_outputs(ours: nn.Module, theirs: nn.Module) -> None:
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(X), theirs.eval()(X), rtol=1e-5, atol=1e-6)


# ---- the API --------------------------------------------------------------------------------

def test_from_a_module_in_execution_order(spec, hand):
    ours = spec.to_torch(seed=1)
    state = port_weights(ours, hand, X[:1])
    same_outputs(ours, hand)
    assert list(state) == list(ours.state_dict())
    assert torch.equal(state["0.weight"], hand.c1.weight) and torch.equal(state["11.bias"], hand.fc3.bias)


def test_the_package_api_takes_the_input_shape_from_the_generated_source(spec, hand, tmp_path):
    ours = spec.to_torch(seed=1)
    state = archspec.port_weights(ours, hand)  # no example: INPUT_SHAPE of the module's source
    same_outputs(ours, hand)
    assert list(state) == list(ours.state_dict())
    # the same for a module imported from the .py that `compile` writes
    assert main(["compile", SPEC, "-f", "python", "-o", str(tmp_path)]) == 0
    sys.path.insert(0, str(tmp_path))
    try:
        import lenet as compiled

        assert compiled.INPUT_SHAPE == (1, 28, 28)
        mine = compiled.Lenet()
        archspec.port_weights(mine, hand)
        same_outputs(mine, hand)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lenet", None)


def test_a_module_of_unknown_input_needs_an_example(hand):
    with pytest.raises(archspec.ArchError) as exc:
        archspec.port_weights(HandLeNet(), hand)
    assert exc.value.diagnostics[0].code == "E601" and "pass `example`" in exc.value.diagnostics[0].message


def test_from_a_state_dict_file_in_execution_order(spec, hand, tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({f"tensor{i}": v.detach() for i, (_, v) in enumerate(in_running_order(hand))}, path)
    ours = spec.to_torch(seed=1)
    port_weights(ours, str(path), X[:1])
    same_outputs(ours, hand)


def test_from_a_state_dict_with_the_networks_names_in_any_order(spec, hand, tmp_path):
    ours = spec.to_torch(seed=1)
    port_weights(ours, hand, X[:1])
    shuffled = dict(reversed(list(ours.state_dict().items())))
    for state in (shuffled, {"state_dict": {f"module.{k}": v for k, v in shuffled.items()}}):
        path = tmp_path / "named.pth"
        torch.save(state, path)
        again = spec.to_torch(seed=2)
        port_weights(again, str(path), X[:1])
        same_outputs(again, hand)


def test_from_a_safetensors_file(spec, hand, tmp_path):
    """With the network's names it ports; with others it cannot: safetensors keeps no order."""
    ours = spec.to_torch(seed=1)
    port_weights(ours, hand, X[:1])
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in ours.state_dict().items()}, str(path))
    again = spec.to_torch(seed=2)
    port_weights(again, str(path), X[:1])
    same_outputs(again, hand)

    save_file({k: v.detach().contiguous() for k, v in in_running_order(hand)}, str(path))
    with pytest.raises(archspec.ArchError) as exc:
        port_weights(again, str(path), X[:1])
    d = exc.value.diagnostics[0]
    assert d.code == "E601" and "`c1.bias` [6] does not fit `0.weight`" in d.message
    assert "safetensors file sorts them by name" in " ".join(d.notes)


def test_a_state_dict_in_registration_order_names_the_first_misfit(spec, hand):
    """A file knows no execution order: HandLeNet's state_dict starts with fc3, which fits nothing."""
    ours = spec.to_torch(seed=1)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    with pytest.raises(archspec.ArchError) as exc:
        port_weights(ours, hand.state_dict(), X[:1])
    d = exc.value.diagnostics[0]
    assert d.code == "E601" and "`fc3.weight` [10, 84]" in d.message and "`0.weight`" in d.message
    assert exc.value.exit_code == 1
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())  # left as it was


@pytest.mark.parametrize("change, named", [
    (lambda pairs: pairs[:-1], "the network's `11.bias` [10]"),
    (lambda pairs: [*pairs, ("spare", torch.zeros(3))], "the source's `spare` [3]"),
])
def test_a_tensor_without_a_counterpart_is_named(spec, hand, change, named):
    ours = spec.to_torch(seed=1)
    with pytest.raises(archspec.ArchError) as exc:
        port_weights(ours, dict(change(in_running_order(hand))), X[:1])
    d = exc.value.diagnostics[0]
    assert d.code == "E601" and named in d.message, d.message


# ---- the command line -----------------------------------------------------------------------

def test_cli_writes_safetensors_that_compile_accepts(spec, hand, tmp_path, capsys):
    src, out = tmp_path / "hand.pth", tmp_path / "lenet.safetensors"
    torch.save({f"t{i}": v.detach() for i, (_, v) in enumerate(in_running_order(hand))}, src)
    assert main(["port-weights", SPEC, "--from", str(src), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    fresh = spec.to_torch(seed=5)
    with safe_open(str(out), framework="pt") as f:
        assert set(f.keys()) == set(fresh.state_dict())
        assert f.metadata()["archspec.network"] == "lenet"
    # what `archspec compile --weights` does with it
    state, meta = read_checkpoint(str(out))
    check_metadata(meta, spec.network.input_shape, str(out))
    fit(fresh, state, str(out))
    same_outputs(fresh, hand)
    assert sorted(os.listdir(tmp_path)) == ["hand.pth", "lenet.safetensors"]  # no temporary left
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # as any other output; it was 0600


def _misfit(tmp: Path, hand: HandLeNet) -> Path:
    torch.save(hand.state_dict(), tmp / "ckpt.pth")  # registration order: fc3 first
    return tmp / "ckpt.pth"


def _short(tmp: Path, hand: HandLeNet) -> Path:
    torch.save(dict(in_running_order(hand)[:-1]), tmp / "ckpt.pth")
    return tmp / "ckpt.pth"


def _write(name: str, data: bytes) -> Callable[[Path, HandLeNet], Path]:
    def make(tmp: Path, hand: HandLeNet) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name
    return make


def _saved(obj_of: Callable[[Path], object], protocol: int = 2) -> Callable[[Path, HandLeNet], Path]:
    def make(tmp: Path, hand: HandLeNet) -> Path:
        torch.save(obj_of(tmp), tmp / "ckpt.pth", pickle_protocol=protocol)
        return tmp / "ckpt.pth"
    return make


def _raw_pickle(tmp: Path, hand: HandLeNet) -> Path:
    (tmp / "ckpt.pth").write_bytes(pickle.dumps({"weight": Evil(tmp / "PWNED")}, protocol=2))
    return tmp / "ckpt.pth"


FAILURES = {
    # name: (make the checkpoint, code, exit status, text the message must hold)
    "mis-shaped": (_misfit, "E601", 1, "`fc3.weight` [10, 84] does not fit `0.weight`"),
    "one short": (_short, "E601", 1, "`11.bias`"),
    "garbage": (_write("ckpt.pth", bytes(range(256)) * 8), "E602", 1, "not a checkpoint"),
    "random bytes": (_write("ckpt.bin", torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                                      dtype=torch.uint8).numpy().tobytes()), "E602", 1, ""),
    "text": (_write("ckpt.pth", b"conv1.weight = [1, 2, 3]\n" * 20), "E602", 1, ""),
    "empty": (_write("ckpt.pth", b""), "E602", 1, ""),
    "bad safetensors header": (_write("w.safetensors", (24).to_bytes(8, "little") + b'{"a": not json at all}  '),
                               "E602", 1, "safetensors"),
    "not a state_dict": (_saved(lambda tmp: [torch.zeros(2), torch.ones(3)]), "E602", 1, "not a state_dict"),
    "object that runs code": (_saved(lambda tmp: {"w": torch.zeros(2), "x": Evil(tmp / "PWNED")}), "E603", 1,
                              "refusing to load"),
    "a callable": (_saved(lambda tmp: {"w": torch.zeros(2), "hook": print}), "E603", 1, "could run code"),
    "a whole module": (_saved(lambda tmp: HandLeNet()), "E603", 1, "could run code"),
    "raw pickle that runs code": (_raw_pickle, "E603", 1, "could run code"),
    "missing": (lambda tmp, hand: tmp / "nowhere.pth", "E001", 2, "no such checkpoint"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_cli_failures_write_nothing(case, hand, tmp_path, capsys):
    make, code, status, text = FAILURES[case]
    src = make(tmp_path, hand)
    out = tmp_path / "out" / "lenet.safetensors"
    out.parent.mkdir()
    files = sorted(os.listdir(tmp_path))
    assert main(["port-weights", SPEC, "--from", str(src), "-o", str(out)]) == status
    err = capsys.readouterr().err
    assert f"error[{code}]" in err and text in err, err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == files and not os.listdir(out.parent)
    assert not (tmp_path / "PWNED").exists()


def test_cli_output_that_is_a_folder(hand, tmp_path, capsys):
    src = tmp_path / "ckpt.pth"
    torch.save(dict(in_running_order(hand)), src)
    assert main(["port-weights", SPEC, "--from", str(src), "-o", str(tmp_path)]) == 2
    assert "error[E604]" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pth"]


def test_example_port_torchvision_weights():
    done = subprocess.run([sys.executable, "examples/port_torchvision_weights.py"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "max abs difference" in done.stdout


def test_names_first_then_order_and_never_a_guess(tmp_path):
    """Tensors the network names are taken by name; the rest by order, unless a state_dict's order alone
    would decide between two tensors of the same shape."""
    from archspec.errors import ArchError

    spec = archspec.loads("network twins() { input [8, 6, 6]  a = conv2d(8, kernel=3, padding=1)  "
                          "b = conv2d(8, kernel=3, padding=1)  flatten  fc = linear(4) }")
    target = spec.to_torch(seed=1)
    source = spec.to_torch(seed=2).state_dict()
    renamed = {("first." + k[2:] if k.startswith("a.") else "second." + k[2:] if k.startswith("b.") else k): v
               for k, v in source.items()}
    with pytest.raises(ArchError) as exc:
        port_weights(target, renamed, torch.zeros(2, 8, 6, 6))
    d = exc.value.diagnostics[0]
    assert d.code == "E601" and "cannot port by order" in d.message and "of the same shape [8, 8, 3, 3]" in d.message
    # with the names (in any order) nothing is left to guess
    shuffled = dict(reversed(list(source.items())))
    state = port_weights(target, shuffled, torch.zeros(2, 8, 6, 6))
    assert all(torch.equal(state[k], source[k]) for k in source)
    # one name kept: the other pair is no longer ambiguous, and goes by order
    half = {("a." + k[6:] if k.startswith("first.") else k): v for k, v in renamed.items()}
    state = port_weights(target, half, torch.zeros(2, 8, 6, 6))
    assert torch.equal(state["b.weight"], source["b.weight"]) and torch.equal(state["a.weight"], source["a.weight"])
