"""Codegen: every network of the zoo as generated torch source, checked against torch itself.

- shapes: at every registered submodule, torch's output shape is archspec's inferred one;
- torchvision: specs/torchvision/ load torchvision's state_dicts strictly and compute the same;
- the book: specs/lenet, vgg11, resnet18 equal the book's own code (Dive into Deep Learning
  7.6, 8.2, 8.6) once the weights are ported in execution order;
- training: a forward, backward and SGD step of every network lowers the loss;
- the source: golden files, `ruff check` clean, deterministic, and what runs is what is shown.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from book_nets import book_lenet, book_resnet, book_vgg
from torch import nn
from torch.nn import functional as F

import archspec
from archspec import ir
from archspec.codegen import source_of
from archspec.errors import Sources
from archspec.export.weights import port_weights
from archspec.loader import load_file
from archspec.passes import resolve

ROOT = Path(__file__).resolve().parent.parent


# ---- the zoo --------------------------------------------------------------------------------

def _networks(path: Path) -> list[str]:
    program = resolve(load_file(str(path.relative_to(ROOT)), Sources()))
    return [n for n in program.own if program.definitions[n].kind == "network"]


# The torchvision networks whose generated source has a golden file; tests/test_torchvision.py checks
# every torchvision builder against torchvision itself.
TORCHVISION = {"vgg11": "specs/torchvision/vgg.arch", "resnet18": "specs/torchvision/resnet.arch",
               "resnet50": "specs/torchvision/resnet.arch", "resnext50_32x4d": "specs/torchvision/resnet.arch"}


def _zoo() -> dict[str, tuple[str, str]]:
    """golden name -> (spec path, network): every network of specs/ (files of blocks only left out), and
    the torchvision networks above."""
    out = {}
    for path in sorted(ROOT.glob("specs/*.arch")):
        for net in _networks(path):
            name = path.stem if net == path.stem else f"{path.stem}_{net}"
            out[name] = (str(path.relative_to(ROOT)), net)
    out.update({f"torchvision_{net}": (path, net) for net, path in TORCHVISION.items()})
    return out


ZOO = _zoo()


@functools.cache
def spec_of(name: str) -> archspec.Spec:
    path, net = ZOO[name]
    return archspec.load(path, network=net)


@functools.cache
def module_of(name: str) -> nn.Module:
    """One module per network for the whole run; tests that change it work on a copy."""
    return spec_of(name).to_torch(seed=0)


def walk(graph: ir.Graph) -> Iterator[ir.GNode]:
    return ir.walk(graph)


def test_the_zoo_is_all_there():
    assert {"lenet", "vgg11", "resnet18", *(f"torchvision_{n}" for n in TORCHVISION)} <= set(ZOO)
    assert "residual" not in ZOO and "vgg" not in ZOO  # files of blocks only


# ---- shapes and parameters against torch ----------------------------------------------------

@pytest.mark.parametrize("name", ZOO)
def test_shapes_and_params(name):
    """Every node that is a registered submodule (layers, block classes, Sequentials): its output shape.
    A spec with symbolic sizes (`input [3, H, W]`): one module, checked at two sizes it allows."""
    module = module_of(name)
    for spec in spec_of(name).examples():
        _shapes_agree(spec, module)


def _shapes_agree(spec: archspec.Spec, module: nn.Module) -> None:
    modules = dict(module.named_modules())
    nodes = {n.path: n for n in walk(spec.network.graph) if n.segment is not None and n.path in modules}
    for n in walk(spec.network.graph):
        if n.kind == "layer" and n.params:  # whatever holds weights is a submodule at its spec path
            assert n.path in nodes, n.path
            assert sum(p.numel() for p in modules[n.path].parameters()) == n.params, n.path
    seen: dict[str, tuple[int, ...]] = {}

    def record(path: str):
        def hook(m, inputs, out) -> None:  # returns None: a hook's result would replace the output
            seen[path] = tuple(out.shape)
        return hook

    hooks = [modules[p].register_forward_hook(record(p)) for p in nodes]
    try:
        with torch.no_grad():
            y = module.eval()(torch.randn(2, *spec.network.input_shape))
    finally:
        for h in hooks:
            h.remove()
    assert {p: (2, *n.out_shape) for p, n in nodes.items()} == seen
    assert tuple(y.shape) == (2, *spec.output_shape)
    assert sum(p.numel() for p in module.parameters()) == spec.params


# ---- torchvision ----------------------------------------------------------------------------

def randomise_batchnorm(net: nn.Module) -> nn.Module:
    """Non-trivial statistics and affine terms, so that a misplaced batch norm shows."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return net


@pytest.fixture(scope="module", params=TORCHVISION)
def torchvision_pair(request) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    theirs = randomise_batchnorm(getattr(torchvision.models, request.param)()).eval()  # no download
    return module_of(f"torchvision_{request.param}"), theirs


def test_torchvision_state_dict_loads_strictly_and_outputs_agree(torchvision_pair):
    ours, theirs = torchvision_pair
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = theirs(x)
        got = ours.eval()(x)
    assert want.std() > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# ---- the book's own code ----------------------------------------------------------------------

BOOK = {
    "lenet": lambda: book_lenet(),
    "vgg11": lambda: book_vgg(((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))),
    "resnet18": lambda: book_resnet(((2, 64), (2, 128), (2, 256), (2, 512))),
}


@pytest.mark.parametrize("name", BOOK)
def test_the_book_after_porting_its_weights(name):
    spec = spec_of(name)
    torch.manual_seed(1)
    book = BOOK[name]()
    x = torch.randn(2, *spec.network.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        book.eval()(x[:1])  # materialise the Lazy modules, as the book does
    book = randomise_batchnorm(book)
    ours = spec.to_torch(seed=0)  # a fresh one: the weights are about to change
    port_weights(ours, book, x[:1])
    with torch.no_grad():
        want = book(x)
        got = ours.eval()(x)
    assert want.std() > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    if name == "resnet18":  # the book's registration order is not its execution order
        pairs = zip(book.state_dict().values(), ours.state_dict().values())
        assert any(a.shape != b.shape for a, b in pairs)


# ---- training -------------------------------------------------------------------------------

def training_input(name: str) -> tuple[int, ...]:
    """The spec's input, or 64x64 where the same network (the same parameters) takes that too.

    The module trained is the zoo's, built for the spec's input; a network with adaptive
    pooling (the torchvision ones) runs on smaller images as well, at a fraction of the time.
    """
    spec = spec_of(name)
    if spec.symbolic:
        return spec.example_shape(64)
    c, *hw = spec.network.input_shape
    if len(hw) == 2 and min(hw) > 64:
        try:
            small = archspec.load(*ZOO[name], input=(c, 64, 64))
        except archspec.ArchError:
            return spec.network.input_shape
        if small.params == spec.params and small.output_shape == spec.output_shape:
            return small.network.input_shape
    return spec.network.input_shape


@pytest.mark.parametrize("name", ZOO)
def test_one_sgd_step_lowers_the_loss(name):
    spec = spec_of(name)
    module = copy.deepcopy(module_of(name)).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, *training_input(name), generator=g)
    with torch.no_grad():
        out = module.eval()(x).shape[2:]  # a dense output (U-Net): a class per pixel
    module.train()
    y = torch.randint(0, spec.output_shape[0], (4, *out), generator=g)

    def loss() -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same dropout masks before and after the step
            return F.cross_entropy(module(x), y)

    before = loss()
    before.backward()
    for key, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
    torch.optim.SGD(module.parameters(), lr=0.01).step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


# ---- the generated source ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ZOO)
def test_golden_source(name, golden):
    golden(f"python/{name}.py", source_of(spec_of(name)))


def _ruff() -> list[str]:
    exe = shutil.which("ruff")
    if exe:
        return [exe]
    try:
        import ruff  # noqa: F401
    except ImportError:
        pytest.skip("ruff is not installed")
    return [sys.executable, "-m", "ruff"]


@pytest.mark.parametrize("name", ZOO)
def test_generated_source_passes_ruff(name, tmp_path):
    """pycodestyle, pyflakes, isort, pyupgrade and bugbear, at the project's line length."""
    path = tmp_path / f"{name}.py"
    path.write_text(source_of(spec_of(name)), encoding="utf-8")
    done = subprocess.run([*_ruff(), "check", "--isolated", "--no-cache", "--line-length", "120",
                           "--target-version", "py310", "--select", "E,W,F,I,UP,B", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_same_seed_same_weights_another_seed_others():
    spec = spec_of("resnet18")
    rng = torch.get_rng_state()
    a, b, c = spec.to_torch(seed=0), spec.to_torch(seed=0), spec.to_torch(seed=1)
    assert torch.equal(torch.get_rng_state(), rng)  # building leaves the global RNG alone
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    drawn = [k for k, m in a.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert drawn and all(not torch.equal(sa[f"{k}.weight"], sc[f"{k}.weight"]) for k in drawn)


def test_two_processes_write_the_same_source():
    code = ("import hashlib, sys\n"
            "import archspec\n"
            "from archspec.codegen import source_of\n"
            "h = hashlib.sha256()\n"
            "for path, net in zip(sys.argv[1::2], sys.argv[2::2]):\n"
            "    h.update(source_of(archspec.load(path, network=net)).encode())\n"
            "print(h.hexdigest())\n")
    args = [a for pair in ZOO.values() for a in pair]
    here = hashlib.sha256()
    for path, net in ZOO.values():
        here.update(source_of(archspec.load(path, network=net)).encode())
    seen = []
    for seed in ("1", "2"):  # a different hash seed for each: no set or dict order leaks in
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                              env=env, check=True)
        seen.append(done.stdout.strip())
    assert seen == [here.hexdigest()] * 2


@pytest.mark.parametrize("name", ZOO)
def test_what_runs_is_the_generated_source(name):
    """One source of truth: inspect sees the generated text, class by class."""
    source, module = source_of(spec_of(name)), module_of(name)
    assert inspect.getsource(inspect.getmodule(type(module))) == source
    root = inspect.getsource(type(module))
    assert root.startswith(f"class {type(module).__name__}(") and source.endswith(root)
    generated = {type(m) for m in module.modules() if type(m).__module__ == type(module).__module__}
    for cls in generated:
        text = inspect.getsource(cls)
        assert f"\n\n\n{text}" in source, cls.__name__


def test_a_traceback_shows_the_generated_lines():
    module = module_of("resnet18")
    with pytest.raises(RuntimeError) as info:
        module(torch.zeros(1, 3, 96, 96))  # three channels where the network takes one
    text = "".join(traceback.format_exception(info.value))
    assert f'File "{inspect.getfile(type(module))}"' in text and "<archspec:" in text
    assert "x = self.b1(x)" in text


# ---- examples -------------------------------------------------------------------------------

def test_example_train_one_step():
    done = subprocess.run([sys.executable, "examples/train_one_step.py"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "loss before" in done.stdout and "after" in done.stdout


# ---- named containers: a named add or concat is a module that sums or joins its branches ------------

NAMED = """
network named() {
    input [8, 8, 8]
    r = concat { conv2d(3, kernel=1) conv2d(5, kernel=1) }
    s = add { a = conv2d(8, kernel=1) b = conv2d(8, kernel=1) }
    t = add { c = seq { conv2d(8, kernel=3, padding=1) relu } identity }
    u = concat { identity relu }
}
"""


def test_named_add_and_concat_compute_their_branches():
    spec = archspec.loads(NAMED)
    m = spec.to_torch(seed=0).eval()
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        r = torch.cat([getattr(m.r, "0")(x), getattr(m.r, "1")(x)], dim=1)
        s = m.s.a(r) + m.s.b(r)
        t = torch.relu(m.t.c[0](s)) + s
        want = torch.cat([t, torch.relu(t)], dim=1)
        got = m(x)
    assert got.shape == (2, 16, 8, 8) == (2, *spec.output_shape)
    torch.testing.assert_close(got, want)


def test_check_module_runs_the_spec_independently_and_catches_a_miswired_forward():
    from archspec.errors import ArchError
    from archspec.export.verify import check_module

    spec = archspec.loads(NAMED)
    m = spec.to_torch(seed=0)
    check_module(m, spec.network)  # the generated module is the spec's network
    m.s.forward = lambda x: m.s.b(m.s.a(x))  # the branches run in a chain, not summed: same shapes
    with pytest.raises(ArchError) as exc:
        check_module(m, spec.network)
    assert exc.value.diagnostics[0].code == "E607" and "differs from the spec's" in exc.value.diagnostics[0].message
    m = spec.to_torch(seed=0)
    m.r.forward = lambda x: getattr(m.r, "1")(getattr(m.r, "0")(x))  # a concat run as a chain: fails to run
    with pytest.raises(ArchError) as exc:
        check_module(m, spec.network)
    assert exc.value.diagnostics[0].code == "E607"


def test_compile_refuses_a_module_that_is_not_the_spec(tmp_path, monkeypatch):
    import archspec.codegen
    from archspec.compile import Options, compile_spec
    from archspec.errors import ArchError

    spec = archspec.loads(NAMED)
    real = archspec.codegen.build_module

    def miswired(s, seed=0):
        m = real(s, seed=seed)
        m.s.forward = lambda x: m.s.b(m.s.a(x))
        return m
    monkeypatch.setattr(archspec.codegen, "build_module", miswired)
    with pytest.raises(ArchError) as exc:
        compile_spec(spec, Options(formats=("python", "torchscript"), out_dir=str(tmp_path / "out")))
    assert exc.value.diagnostics[0].code == "E607"
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_a_file_name_with_backslashes_and_quotes_still_gives_valid_source(tmp_path):
    import ast

    odd = tmp_path / 'le\\Nnet """x""".arch'
    odd.write_text(Path("specs/lenet.arch").read_text())
    source = source_of(archspec.load(str(odd)))
    ast.parse(source)  # the name is escaped in every docstring it appears in
    assert 'from le\\\\Nnet \\"\\"\\"x\\"\\"\\".arch.' in source
    assert archspec.load(str(odd)).to_torch()(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
