"""Export: every network of the zoo compiles to every format and passes verification, and the
ONNX file keeps its contract (opset, names, metadata, one self-contained file, same bytes anywhere).

The light networks are compiled once each (a cache shared by the tests below); the heavy ones
(VGG, AlexNet, torchvision's) only in `test_heavy_network_compiles`, which deletes what it
wrote as it goes (VGG-11 alone is half a gigabyte per format).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import numpy as np
from onnx import numpy_helper

import archspec
from archspec.codegen import source_of, spec_hash
from archspec.compile import FORMATS, SUFFIX, Options, compile_spec
from archspec.errors import Sources
from archspec.export.pt2 import example_input
from archspec.export.verify import close, verify
from archspec.loader import load_file
from archspec.passes import resolve

ROOT = Path(__file__).resolve().parent.parent
HEAVY_FILES = {"specs/alexnet.arch", "specs/vgg_small.arch", "specs/vgg11.arch", "specs/unet.arch",
               "specs/torchvision/vgg.arch", "specs/torchvision/resnet.arch"}
# The torchvision networks compiled here; tests/test_torchvision.py compiles one of each family.
TORCHVISION = [("specs/torchvision/vgg.arch", "vgg11"), ("specs/torchvision/resnet.arch", "resnet18"),
               ("specs/torchvision/resnet.arch", "resnet50"), ("specs/torchvision/resnet.arch", "resnext50_32x4d")]
FORBIDDEN = (b"/root/", b"site-packages", b'File "')  # paths and stack traces the exporter leaves


def zoo() -> list[tuple[str, str]]:
    """(spec file relative to the repository, network name) for every network in specs/."""
    nets = []
    for path in sorted(glob.glob(str(ROOT / "specs/*.arch"))):
        program = resolve(load_file(path, Sources()))
        nets += [(os.path.relpath(path, ROOT), n) for n in program.own if program.definitions[n].kind == "network"]
    return nets + TORCHVISION


ZOO = zoo()
LIGHT = [n for n in ZOO if n[0] not in HEAVY_FILES]
HEAVY = [n for n in ZOO if n[0] in HEAVY_FILES]
ids = [f"{os.path.basename(os.path.dirname(f))}/{n}" if "torchvision" in f else n for f, n in ZOO]
LIGHT_IDS = [i for i, n in zip(ids, ZOO) if n in LIGHT]
HEAVY_IDS = [i for i, n in zip(ids, ZOO) if n in HEAVY]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """`built(file, network)`: (spec, output folder), compiled to every format and verified once."""
    cache: dict[tuple[str, str], tuple[archspec.Spec, Path]] = {}
    root = tmp_path_factory.mktemp("zoo")

    def get(file: str, network: str) -> tuple[archspec.Spec, Path]:
        if (file, network) not in cache:
            spec = archspec.load(file, network)
            result = compile_spec(spec, Options(out_dir=str(root / file.replace("/", "_") / network)))
            assert [c.ok for c in result.checks] and all(c.ok for c in result.checks)
            cache[file, network] = spec, Path(result.out_dir)
        return cache[file, network]
    return get


def check_contract(spec: archspec.Spec, out: Path, full: bool = True) -> onnx.ModelProto:
    """What every compiled folder and its .onnx must be; `full` adds the checker and onnxruntime runs."""
    name = spec.name
    files = sorted(name + SUFFIX[f] for f in FORMATS)
    assert sorted(os.listdir(out)) == sorted([*files, "archspec-manifest.json"])  # no .onnx.data, no leftovers
    assert json.loads((out / "archspec-manifest.json").read_text())["files"] == files
    path = out / f"{name}.onnx"
    data = path.read_bytes()
    for bad in (*FORBIDDEN, str(ROOT).encode(), str(out).encode()):
        assert bad not in data, f"{bad!r} in {path.name}"
    model = onnx.load_from_string(data)
    assert [(o.domain, o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")] == [("", 18)]
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["archspec.spec_sha256"] == spec_hash(spec.sources.texts)
    assert meta["archspec.overrides"] == "{}"
    assert meta["archspec.version"] == archspec.__version__
    assert meta["archspec.network"] == name
    module = spec.to_torch(seed=0).eval()
    keys = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}  # unused in eval
    assert {i.name for i in model.graph.initializer} == keys
    modules = dict(module.named_modules())
    for node in model.graph.node:
        path_of = {p.key: p.value for p in node.metadata_props}.get("archspec.path")
        if path_of:
            assert path_of in modules and node.name.startswith(f"{path_of}/{node.op_type}"), node.name
        else:
            assert "/" not in node.name and not node.name.startswith("_"), node.name
    if full:
        onnx.checker.check_model(str(path), full_check=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for batch in (1, 5):
            x = example_input(spec.network.input_shape, batch, seed=batch).numpy()
            with torch.no_grad():
                want = module(torch.from_numpy(x)).numpy()
            (got,) = session.run(["logits"], {"input": x})
            assert got.shape == (batch, *spec.output_shape) and close(got, want)
    return model


@pytest.mark.parametrize("file,network", LIGHT, ids=LIGHT_IDS)
def test_light_network_compiles_and_keeps_the_contract(built, file: str, network: str) -> None:
    spec, out = built(file, network)
    check_contract(spec, out)


@pytest.mark.parametrize("file,network", HEAVY, ids=HEAVY_IDS)
def test_heavy_network_compiles(tmp_path: Path, file: str, network: str) -> None:
    """The big ones: every format, verified; the ONNX contract without a second checker pass."""
    spec = archspec.load(file, network)
    out = tmp_path / network
    try:
        result = compile_spec(spec, Options(out_dir=str(out)))
        assert all(c.ok for c in result.checks) and {c.artifact for c in result.checks} == {"torchscript", "pt2",
                                                                                           "onnx"}
        check_contract(spec, out, full=False)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_zoo_is_split_between_light_and_heavy() -> None:
    assert LIGHT and HEAVY and sorted(LIGHT + HEAVY) == sorted(ZOO)
    assert {"specs/alexnet.arch", "specs/vgg_small.arch", "specs/vgg11.arch", "specs/torchvision/vgg.arch",
            "specs/torchvision/resnet.arch"} <= {f for f, _ in HEAVY}


def test_node_names_carry_the_spec_path(built) -> None:
    _, out = built("specs/resnext.arch", "resnext")
    names = {n.name for n in onnx.load(str(out / "resnext.onnx")).graph.node}
    assert {"b3.0.conv2/Conv", "b3.0.bn2/BatchNormalization", "b3.0/Add", "b1.0/Conv"} <= names


def test_a_conv_without_bias_gets_no_runtime_zero_bias_so_onnxruntime_fuses_batch_norm(tmp_path: Path) -> None:
    """The exporter builds a missing bias as Expand(CastLike(0)); left in, onnxruntime cannot fuse the batch norm."""
    spec = archspec.loads("""network nobias() {
    input [3, 8, 8]
    conv1 = conv2d(4, kernel=3, padding=1, bias=false)
    bn1 = batchnorm2d  relu
    flatten  linear(2)
}""", name="nobias.arch")
    result = compile_spec(spec, Options(formats=("onnx",), out_dir=str(tmp_path / "out")))
    assert result.checks and all(c.ok for c in result.checks)
    path = str(tmp_path / "out" / "nobias.onnx")
    model = onnx.load(path)
    (conv,) = [n for n in model.graph.node if n.op_type == "Conv"]
    assert list(conv.input) == ["input", "conv1.weight"] and conv.name == "conv1/Conv"
    assert not [n.name for n in model.graph.node if n.op_type in ("Expand", "CastLike")]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "loaded.onnx")
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(str(tmp_path / "loaded.onnx")).graph.node}


# ---- the same bytes from another process, another folder, another working directory -----------


def _archspec(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_recompiling_elsewhere_gives_the_same_bytes(built, tmp_path: Path) -> None:
    """The spec tree copied under another working folder, compiled by another process."""
    _, out = built("specs/resnext.arch", "resnext")
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    proc = _archspec(["compile", "specs/resnext.arch", "-f", "onnx,python", "--no-verify", "-o", "elsewhere"],
                     tmp_path)
    assert proc.returncode == 0, proc.stderr
    for suffix in (".py", ".onnx"):
        assert (tmp_path / "elsewhere" / f"resnext{suffix}").read_bytes() == (out / f"resnext{suffix}").read_bytes()


def test_an_absolute_spec_path_gives_the_same_bytes_from_any_folder(tmp_path: Path) -> None:
    spec_path = str(ROOT / "specs/lenet.arch")
    here = compile_spec(archspec.load(spec_path), Options(formats=("python", "onnx"), out_dir=str(tmp_path / "a"),
                                                          verify=False))
    (tmp_path / "cwd").mkdir()
    proc = _archspec(["compile", spec_path, "-f", "python,onnx", "--no-verify", "-o", str(tmp_path / "b")],
                     tmp_path / "cwd")
    assert proc.returncode == 0, proc.stderr
    for name in here.files:
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes(), name


def test_any_spelling_of_the_spec_path_gives_the_same_hash_and_source(tmp_path: Path, monkeypatch) -> None:
    spellings = ["specs/vgg11.arch", "./specs/vgg11.arch", "specs/../specs/vgg11.arch", str(ROOT / "specs/vgg11.arch")]
    monkeypatch.chdir(ROOT)
    specs = [archspec.load(s) for s in spellings]
    monkeypatch.chdir(tmp_path)
    specs.append(archspec.load(str(ROOT / "specs/vgg11.arch")))
    assert len({spec_hash(s.sources.texts) for s in specs}) == 1
    assert len(specs[0].sources.texts) == 2  # vgg11.arch and the vgg.arch it imports, both hashed
    assert len({source_of(s) for s in specs}) == 1
    other = archspec.load(str(ROOT / "specs/vgg11.arch"), num_classes=1000)
    assert source_of(other) != source_of(specs[0])


# ---- options: opset, batch, overrides -------------------------------------------------------------


def test_opset_20_is_honoured(tmp_path: Path) -> None:
    spec = archspec.load("specs/lenet_bn.arch")
    result = compile_spec(spec, Options(formats=("onnx",), out_dir=str(tmp_path), opset=20))
    assert result.checks and all(c.ok for c in result.checks)
    model = onnx.load(str(tmp_path / "lenet_bn.onnx"))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [20]
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("opset", [17, onnx.defs.onnx_opset_version() + 1])
def test_an_opset_out_of_range_is_refused_before_any_work(tmp_path: Path, opset: int) -> None:
    with pytest.raises(archspec.ArchError) as exc:
        compile_spec(archspec.load("specs/lenet.arch"), Options(out_dir=str(tmp_path / "out"), opset=opset))
    assert exc.value.diagnostics[0].code == "E606" and exc.value.exit_code == 2
    assert os.listdir(tmp_path) == []


def test_a_static_batch(tmp_path: Path) -> None:
    spec = archspec.load("specs/lenet.arch")
    result = compile_spec(spec, Options(formats=("onnx",), out_dir=str(tmp_path), batch=4))
    assert {c.batch for c in result.checks} == {4}
    model = onnx.load(str(tmp_path / "lenet.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [4, 1, 28, 28]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [4, 10]
    session = ort.InferenceSession(str(tmp_path / "lenet.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((4, 1, 28, 28), np.float32)})[0].shape == (4, 10)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"input": np.zeros((5, 1, 28, 28), np.float32)})


def test_overrides_are_recorded(tmp_path: Path) -> None:
    spec = archspec.load("specs/lenet.arch", num_classes=5)
    compile_spec(spec, Options(formats=("python", "onnx"), out_dir=str(tmp_path), verify=False))
    model = onnx.load(str(tmp_path / "lenet.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["archspec.overrides"] == '{"num_classes": "5"}' and meta["archspec.output"] == "[5]"
    assert "num_classes=5" in (tmp_path / "lenet.py").read_text()


# ---- a corrupted artifact is caught, and the ONNX case names the layer -----------------------------


def _ort_runner(path: str):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})[0]


def _torch_runner(loaded):
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()
    return run


def _corrupt(tensor: torch.Tensor) -> None:
    with torch.no_grad():
        tensor.view(-1)[0] += 10.0


def test_a_corrupted_onnx_weight_is_caught_at_its_layer(built, tmp_path: Path) -> None:
    spec, out = built("specs/resnext.arch", "resnext")
    model = onnx.load(str(out / "resnext.onnx"))
    (init,) = [i for i in model.graph.initializer if i.name == "b3.0.conv2.weight"]
    weight = numpy_helper.to_array(init).copy()
    weight.flat[0] += 10.0
    init.CopyFrom(numpy_helper.from_array(weight, init.name))
    bad = str(tmp_path / "resnext.onnx")
    onnx.save(model, bad)
    with pytest.raises(archspec.ArchError) as exc:
        verify(spec.to_torch().eval(), spec.network, {"onnx": _ort_runner(bad)}, (1,), bad)
    message = str(exc.value)
    assert exc.value.diagnostics[0].code == "E607" and "onnx output differs" in message
    assert "`b3.0.conv2`" in message, message


@pytest.mark.filterwarnings("ignore:.*deprecated:FutureWarning")
def test_a_corrupted_torchscript_file_is_caught(built, tmp_path: Path) -> None:
    from archspec.export.torchscript import load_torchscript

    spec, out = built("specs/resnext.arch", "resnext")
    scripted = load_torchscript(str(out / "resnext.pt"))
    _corrupt(dict(scripted.named_parameters())["b3.0.conv2.weight"])
    bad = str(tmp_path / "resnext.pt")
    torch.jit.save(scripted, bad)
    module = spec.to_torch().eval()
    with pytest.raises(archspec.ArchError) as exc:
        verify(module, spec.network, {"torchscript": _torch_runner(load_torchscript(bad))}, (1,))
    assert "torchscript output differs" in str(exc.value)


def test_a_corrupted_pt2_file_is_caught(built, tmp_path: Path) -> None:
    from archspec.export.pt2 import load_program

    spec, out = built("specs/resnext.arch", "resnext")
    program = torch.export.load(str(out / "resnext.pt2"))
    _corrupt(program.state_dict["b3.0.conv2.weight"])
    bad = str(tmp_path / "resnext.pt2")
    torch.export.save(program, bad)
    module = spec.to_torch().eval()
    with pytest.raises(archspec.ArchError) as exc:
        verify(module, spec.network, {"pt2": _torch_runner(load_program(bad))}, (1,))
    assert "pt2 output differs" in str(exc.value)


# ---- the example ---------------------------------------------------------------------------------


def test_the_onnx_example_runs(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples/run_onnx.py"), "specs/lenet.arch", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "agreement with the torch module: 8/8" in proc.stdout, proc.stdout
    assert (tmp_path / "lenet.onnx").exists()


# ---- E608: the exporter or the ONNX checks refuse ---------------------------------------------------


def test_a_failing_torch_export_is_reported_as_e608_with_its_cause():
    from archspec.compile import _exporting

    def broken():
        raise RuntimeError("Dynamic control flow is not supported\nlong details")
    with pytest.raises(archspec.ArchError) as exc:
        _exporting(broken)
    d = exc.value.diagnostics[0]
    assert d.code == "E608" and d.message == "torch.export failed: Dynamic control flow is not supported"


def test_onnx_shapes_that_disagree_with_archspecs_are_e608(tmp_path: Path) -> None:
    from archspec.export.onnx import check_onnx

    spec = archspec.load("specs/lenet.arch")
    compile_spec(spec, Options(formats=("onnx",), out_dir=str(tmp_path), verify=False))
    path = str(tmp_path / "lenet.onnx")
    check_onnx(path, spec.network)  # agrees
    g = spec.network.graph
    last = g.outputs[0][1]
    nodes = list(g.nodes)
    nodes[last] = nodes[last].model_copy(update={"out_shape": (11,)})
    wrong = spec.network.model_copy(update={"graph": g.model_copy(update={"nodes": tuple(nodes)})})
    with pytest.raises(archspec.ArchError) as exc:
        check_onnx(path, wrong)
    d = exc.value.diagnostics[0]
    assert d.code == "E608" and "archspec infers ['batch', 11]" in d.message


def test_the_generated_modules_name_depends_on_its_source_only(tmp_path: Path, monkeypatch) -> None:
    """TorchScript stores the class's module name (code/__torch__/archspec_generated/NAME.py)."""
    from archspec.codegen import build_module

    spec = archspec.load(str(ROOT / "specs/lenet.arch"))
    here = type(build_module(spec)).__module__
    monkeypatch.chdir(tmp_path)
    assert type(build_module(spec)).__module__ == here
    assert type(build_module(archspec.load(str(ROOT / "specs/lenet.arch")))).__module__ == here
    assert type(build_module(archspec.load(str(ROOT / "specs/lenet_bn.arch")))).__module__ != here
