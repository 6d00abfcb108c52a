"""int8, fp16 and bf16 beside fp32: `archspec compile --precision`, its accuracy report and gate, and bench.

The networks are LeNet, BN-LeNet and a small ResNet (the book's ResNet-18 spec with two two-block
stages), trained here for a few seconds on 2,000 real Fashion-MNIST images, so that accuracy
means something; evaluation runs on 500 real test images. Nothing is timed here
(benchmarks/bench_precision.py does that).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

import numpy as np
from torch.nn import functional as F

import archspec
from archspec.cli import main
from archspec.errors import ArchError
from archspec.precision import cpu, data, int8, report
from archspec.precision.graph import fold_linear_batchnorms
from archspec.train.data import read_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist (.ci/run installs it)
needs_fashion = pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
                                   reason="needs Debian's dataset-fashion-mnist (installed by .ci/run)")
TINY_RESNET = ["--set", "arch=[(2, 64), (2, 64)]", "--input", "1,28,28"]
NETWORKS = {  # name: (spec, extra arguments, overrides for archspec.load)
    "lenet": ("specs/lenet.arch", [], {}),
    "lenet_bn": ("specs/lenet_bn.arch", [], {}),
    "resnet": ("specs/resnet18.arch", TINY_RESNET, {"arch": [(2, 64), (2, 64)], "input": (1, 28, 28)}),
}


def cli(capfd, *args: str) -> tuple[int, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capfd.readouterr()
    return code, out + err


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- the data: real Fashion-MNIST, a few trained networks -------------------------------------------

@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict[str, Path]:
    """2,000 training images (x, y), calib.npy (256 of them) and eval.npz (500 test images with labels)."""
    if not (FASHION / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("needs Debian's dataset-fashion-mnist (installed by .ci/run)")
    d = tmp_path_factory.mktemp("fashion")
    xt = read_idx(FASHION / "train-images-idx3-ubyte.gz", 3)[:2000].numpy()
    yt = read_idx(FASHION / "train-labels-idx1-ubyte.gz", 1)[:2000].numpy()
    xv = read_idx(FASHION / "t10k-images-idx3-ubyte.gz", 3)[:500].numpy()
    yv = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz", 1)[:500].numpy()
    scale = lambda a: (a[:, None].astype(np.float32) / 255)  # noqa: E731  training's preprocessing at 28x28
    np.savez(d / "train.npz", x=scale(xt), y=yt)
    np.save(d / "calib.npy", scale(xt[:256]))
    np.savez(d / "eval.npz", x=scale(xv), y=yv)
    np.save(d / "constant.npy", np.full((1, 1, 28, 28), 0.5, np.float32))
    return {"train": d / "train.npz", "calib": d / "calib.npy", "eval": d / "eval.npz", "constant": d / "constant.npy"}


def train(name: str, sample: dict[str, Path], out: Path) -> Path:
    """A few seconds of Adam on 2,000 images: well above chance, enough for accuracy to mean something."""
    spec, _, overrides = NETWORKS[name]
    model = archspec.load(spec, **overrides).to_torch().train()
    d = np.load(sample["train"])
    x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["y"]).long()
    lr, epochs = (1e-2, 6) if name == "lenet" else (3e-3, 4)  # sigmoids without batch norm learn slowly
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: more threads only wait for each other on a shared machine
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(y), generator=g).split(64):
                opt.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    path = out / f"{name}.pth"
    torch.save(model.eval().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def compiled(sample, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Each network trained, then compiled with int8, fp16 and bf16, evaluated on the 500 test images."""
    torch.manual_seed(0)
    work = tmp_path_factory.mktemp("compiled")
    out = {}
    for name, (spec, extra, _) in NETWORKS.items():
        weights = train(name, sample, work)
        folder = work / name
        code = main(["compile", spec, *extra, "-o", str(folder), "--weights", str(weights), "--precision",
                     "int8,fp16,bf16", "--calibrate", str(sample["calib"]), "--evaluate", str(sample["eval"])])
        assert code == 0, name
        out[name] = (folder, Path(spec).stem)
    return out


def load_report(folder: Path, stem: str, precision: str) -> dict:
    return json.loads((folder / f"{stem}.{precision}.report.json").read_text())


# ---- what a compile writes ---------------------------------------------------------------------------

@needs_fashion
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_each_precision_writes_its_artifact_and_report_in_the_manifest(compiled, name) -> None:
    folder, stem = compiled[name]
    manifest = json.loads((folder / "archspec-manifest.json").read_text())
    for p, artifact in (("int8", f"{stem}.int8.onnx"), ("fp16", f"{stem}.fp16.onnx"), ("bf16", f"{stem}.bf16.pt2")):
        assert artifact in manifest["files"] and f"{stem}.{p}.report.json" in manifest["files"]
        r = load_report(folder, stem, p)
        assert r["precision"] == p and r["artifact"] == artifact
        assert r["evaluation"]["samples"] == 500 and r["evaluation"]["labels"] is True
        assert r["layers"], "no per-layer SQNR"
        assert r["environment"]["cpu_features"] == cpu.features()
    for p in ("int8", "fp16"):
        onnx.checker.check_model(str(folder / f"{stem}.{p}.onnx"), full_check=True)
        meta = {m.key: m.value for m in onnx.load(str(folder / f"{stem}.{p}.onnx")).metadata_props}
        assert meta["archspec.precision"] == p and meta["archspec.network"] == stem


@needs_fashion
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_int8_has_qdq_around_every_convolution_and_linear_layer_and_nothing_left_in_fp32(compiled, name) -> None:
    folder, stem = compiled[name]
    graph = onnx.load(str(folder / f"{stem}.int8.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    users: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    layers = [n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    spec_layers = [n for n in archspec.load(NETWORKS[name][0], **NETWORKS[name][2]).to_torch().modules()
                   if isinstance(n, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == len(spec_layers)
    for node in layers:
        for i in node.input[:2]:  # the activation and the weight come dequantized
            assert producer[i].op_type == "DequantizeLinear", (node.name, i)
        assert [u.op_type for u in users[node.output[0]]] == ["QuantizeLinear"], node.name
    for node in layers:  # per channel: one scale for each output channel of the weight
        scale = onnx.numpy_helper.to_array(_init(graph, producer[node.input[1]].input[1]))
        weight = onnx.numpy_helper.to_array(_init(graph, producer[node.input[1]].input[0]))
        axis = next((a.i for a in producer[node.input[1]].attribute if a.name == "axis"), 1)
        assert scale.shape == (weight.shape[axis],) and weight.dtype == np.int8, node.name
    assert load_report(folder, stem, "int8")["fp32_ops"] == []
    assert load_report(folder, stem, "int8")["settings"]["activation_type"] == cpu.default_activation_type()


def _init(graph, name: str):
    return next(t for t in graph.initializer if t.name == name)


@needs_fashion
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_accuracy_on_real_images_stays_close_to_fp32(compiled, sample, name) -> None:
    """Run each artifact here, apart from the report's code, and compare with fp32 and with the report."""
    folder, stem = compiled[name]
    d = np.load(sample["eval"])
    x, y = d["x"], d["y"]
    fp32 = _ort_predict(folder / f"{stem}.onnx", x)
    acc32 = np.mean(fp32 == y) * 100
    assert acc32 > 50, f"the trained {name} is barely trained ({acc32:.1f}%): the comparison would say nothing"
    program = torch.export.load(str(folder / f"{stem}.bf16.pt2")).module()
    with torch.no_grad():
        bf16 = program(torch.from_numpy(x).bfloat16()).float().argmax(1).numpy()
    got = {"int8": _ort_predict(folder / f"{stem}.int8.onnx", x), "fp16": _ort_predict(folder / f"{stem}.fp16.onnx", x),
           "bf16": bf16}
    tolerance = {"int8": 2.0, "fp16": 0.4, "bf16": 1.0}  # points of top-1 on 500 images (one image is 0.2)
    for p, pred in got.items():
        acc = np.mean(pred == y) * 100
        assert acc32 - acc <= tolerance[p], (p, acc32, acc)
        ev = load_report(folder, stem, p)["evaluation"]
        assert ev["fp32_top1"] == pytest.approx(acc32, abs=1e-6)
        assert ev["top1"] == pytest.approx(acc, abs=1e-6)
        assert ev["agreement"] == pytest.approx(np.mean(pred == fp32) * 100, abs=1e-6)
        assert ev["passed"] is True


def _ort_predict(path: Path, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"input": x[i:i + 100]})[0].argmax(1) for i in range(0, len(x), 100)])


@needs_fashion
def test_the_sqnr_falls_where_the_int8_model_loses_signal(compiled) -> None:
    folder, stem = compiled["lenet_bn"]
    r = load_report(folder, stem, "int8")
    assert r["first_below"] is None and all(row["sqnr_db"] > report.SQNR_DB for row in r["layers"])
    fp16 = load_report(folder, stem, "fp16")
    assert min(row["sqnr_db"] for row in fp16["layers"]) > max(row["sqnr_db"] for row in r["layers"]), \
        "fp16 keeps far more of the signal than int8"


@needs_fashion
def test_the_compile_prints_the_accuracy_table(capfd, sample, tmp_path) -> None:
    code, out = cli(capfd, "compile", "specs/lenet.arch", "-f", "onnx", "-o", tmp_path / "o", "--precision", "int8",
                    "--calibrate", sample["calib"], "--calibration-method", "percentile", "--evaluate",
                    sample["eval"], "--max-accuracy-drop", "100")
    assert code == 0, out
    assert "int8: lenet.int8.onnx (QDQ, " in out and "percentile calibration on 256 inputs of `calib.npy`" in out
    assert "top-1 fp32 " in out and "agreement" in out and "SQNR per layer" in out and "left in fp32: none" in out


NORMS = """network norms() {
    input [1, 8, 8]
    conv2d(4, kernel=3, padding=1)
    groupnorm(2)
    relu
    flatten
    linear(10)
    layernorm
    softmax(0)
}
"""


def test_fp16_keeps_softmax_and_normalisation_statistics_in_fp32_and_int8_says_what_stays(capfd, tmp_path) -> None:
    (tmp_path / "norms.arch").write_text(NORMS)
    np.save(tmp_path / "c.npy", np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32))
    code, text = cli(capfd, "compile", tmp_path / "norms.arch", "-f", "onnx", "-o", tmp_path / "out", "--precision",
                     "fp16,int8", "--calibrate", tmp_path / "c.npy")
    assert code == 0, text
    model = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "out" / "norms.fp16.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.input)}
    first_input = {n.op_type: types.get(n.input[0]) for n in model.graph.node if n.input}
    kept = {"InstanceNormalization", "LayerNormalization", "Softmax"}  # groupnorm exports as InstanceNormalization
    assert {op: first_input[op] for op in kept} == dict.fromkeys(kept, onnx.TensorProto.FLOAT)
    assert first_input["Conv"] == first_input["Gemm"] == onnx.TensorProto.FLOAT16
    fp16 = json.loads((tmp_path / "out" / "norms.fp16.report.json").read_text())
    assert sorted(o["op"] for o in fp16["fp32_ops"]) == sorted(kept) and fp16["settings"]["kept_fp32_ops"]
    left = json.loads((tmp_path / "out" / "norms.int8.report.json").read_text())["fp32_ops"]
    assert {o["op"] for o in left} == {"InstanceNormalization", "LayerNormalization"}, left
    assert all("no int8 kernel" in o["why"] for o in left)
    assert "left in fp32: 1/InstanceNormalization (onnxruntime's CPU provider has no int8 kernel" in text


# ---- the accuracy gate: a broken model is never written ------------------------------------------------

@needs_fashion
def test_a_calibration_on_one_constant_image_is_refused_and_nothing_is_written(capfd, compiled, sample,
                                                                               tmp_path) -> None:
    folder, _ = compiled["lenet_bn"]
    weights = folder.parent / "lenet_bn.pth"
    out = tmp_path / "out"
    code, text = cli(capfd, "compile", "specs/lenet_bn.arch", "-f", "onnx", "-o", out, "--weights", weights)
    assert code == 0, text
    before = files_under(tmp_path)
    code, text = cli(capfd, "compile", "specs/lenet_bn.arch", "-f", "onnx", "-o", out, "--weights", weights,
                     "--precision", "int8", "--calibrate", sample["constant"], "--evaluate", sample["eval"])
    assert code == 1, text
    assert "error[E625]" in text and "nothing was written" in text and "lowest SQNR: `" in text, text
    assert "first layer below 20 dB" in text and "Traceback" not in text
    assert files_under(tmp_path) == before  # the previous compile untouched, no staging folder left
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@needs_fashion
def test_a_looser_limit_lets_the_same_model_through(capfd, compiled, sample, tmp_path) -> None:
    folder, _ = compiled["lenet_bn"]
    code, text = cli(capfd, "compile", "specs/lenet_bn.arch", "-f", "onnx", "-o", tmp_path / "o", "--weights",
                     folder.parent / "lenet_bn.pth", "--precision", "int8", "--calibrate", sample["constant"],
                     "--evaluate", sample["eval"], "--max-accuracy-drop", "100")
    assert code == 0, text
    r = json.loads((tmp_path / "o" / "lenet_bn.int8.report.json").read_text())
    assert r["evaluation"]["drop"] > 1 and r["first_below"] is not None


# ---- bad data and bad options: located errors, exit 2, nothing written ----------------------------------

def _bad_files(d: Path) -> dict[str, Path]:
    np.save(d / "empty.npy", np.zeros((0, 1, 28, 28), np.float32))
    np.save(d / "shape.npy", np.zeros((4, 3, 32, 32), np.float32))
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(d / "nan.npy", np.full((2, 1, 28, 28), np.nan, np.float32))
    (d / "text.npy").write_text("not an array")
    np.savez(d / "labels.npz", x=np.zeros((3, 1, 28, 28), np.float32), y=np.array([0, 1, 10]))
    np.savez(d / "unnamed.npz", a=np.zeros((3, 1, 28, 28), np.float32), b=np.zeros(3))
    (d / "folder").mkdir()
    np.save(d / "good.npy", np.zeros((2, 1, 28, 28), np.float32))
    return {p.name: p for p in d.iterdir()}


BAD = {  # case: (flag, file, code, phrase)
    "missing": ("--calibrate", "nowhere.npy", "E620", "no such file"),
    "missing-fashion": ("--calibrate", "fashion-mnist:{d}/nowhere", "E620", "Fashion-MNIST not found"),
    "empty": ("--calibrate", "empty.npy", "E622", "holds no inputs"),
    "wrong-shape": ("--calibrate", "shape.npy", "E623", "inputs of shape [4, 3, 32, 32]; `lenet` takes [N, 1, 28, 28]"),
    "objects": ("--calibrate", "objects.npy", "E623", "of type object"),
    "nan": ("--calibrate", "nan.npy", "E623", "NaN or infinite"),
    "not-an-array": ("--calibrate", "text.npy", "E621", "cannot read"),
    "not-a-format": ("--calibrate", "data.csv", "E621", "neither `fashion-mnist[:ROOT]` nor an .npy or .npz"),
    "a-folder": ("--calibrate", "folder", "E621", "is a folder"),
    "label-out-of-range": ("--evaluate", "labels.npz", "E624", "label 10 of input 2 is not a class"),
    "npz-without-inputs": ("--evaluate", "unnamed.npz", "E621", "holds no inputs"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_data_is_a_located_error_with_exit_2_and_nothing_written(capfd, tmp_path, case) -> None:
    flag, name, code_, phrase = BAD[case]
    files = _bad_files(tmp_path)
    path = name.format(d=tmp_path) if name.startswith("fashion") else str(files.get(name, tmp_path / name))
    args = ["--calibrate", path] if flag == "--calibrate" else ["--calibrate", str(files["good.npy"]), "--evaluate",
                                                                    path]
    before = files_under(tmp_path)
    code, text = cli(capfd, "compile", "specs/lenet.arch", "-f", "onnx", "-o", tmp_path / "out", "--precision",
                     "int8", *args)
    assert code == 2, text
    shown = path.split(":", 1)[1] if path.startswith("fashion-mnist:") else path
    assert f"{shown}: error[{code_}]" in text and phrase in text, text
    assert "Traceback" not in text and files_under(tmp_path) == before and not (tmp_path / "out").exists()


USAGE = {
    "calibrate-without-int8": (["--precision", "fp16", "--calibrate", "x.npy"], "--calibrate is for int8 only"),
    "evaluate-without-precision": (["--evaluate", "x.npz"], "--evaluate needs a low precision"),
    "int8-without-data": (["--precision", "int8"], "--precision int8 needs calibration inputs"),
    "bf16-without-pt2": (["--precision", "bf16", "-f", "onnx"], "add pt2 to --formats"),
    "int8-without-onnx": (["--precision", "int8", "--calibrate", "x.npy", "-f", "pt2"], "add onnx to --formats"),
}


@pytest.mark.parametrize("case", sorted(USAGE))
def test_options_that_do_not_go_together_are_usage_errors(capfd, tmp_path, case) -> None:
    args, phrase = USAGE[case]
    code, text = cli(capfd, "compile", "specs/lenet.arch", "-o", tmp_path / "out", *args)
    assert code == 2 and "error[E626]" in text and phrase in text, text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["--precision", "int4"], ["--max-accuracy-drop", "-1"],
                                  ["--calibration-method", "mse"], ["--activation-type", "int16"]])
def test_bad_values_are_argparse_errors(capfd, args) -> None:
    code, text = cli(capfd, "compile", "specs/lenet.arch", *args)
    assert code == 2 and "error: argument" in text


# ---- the parts -----------------------------------------------------------------------------------------

def test_folding_a_batch_norm_into_the_linear_layer_before_it_keeps_the_function() -> None:
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    gamma, beta = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    mean, var = rng.standard_normal(5).astype(np.float32), rng.random(5).astype(np.float32) + 0.1
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
         h.make_node("BatchNormalization", ["g", "gamma", "beta", "mean", "var"], ["y"], epsilon=1e-3)],
        "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 7])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 5])],
        [onnx.numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (gamma, "gamma"), (beta, "beta"),
                                                         (mean, "mean"), (var, "var"))])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], ir_version=10)
    x = rng.standard_normal((4, 7)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert fold_linear_batchnorms(model.graph) == 1
    assert [n.op_type for n in model.graph.node] == ["Gemm"]
    onnx.checker.check_model(model)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    assert fold_linear_batchnorms(model.graph) == 0  # nothing more to fold


def test_the_cpu_features_are_read_from_the_flags() -> None:
    info = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n"
    feats = cpu.features(info)
    assert feats["AVX-512 VNNI"] and feats["AVX-512 BF16"] and not feats["AMX"] and not feats["AVX-VNNI"]
    assert cpu.describe(feats).startswith("AVX-512 VNNI yes, AVX-VNNI no, AMX no, AVX-512 BF16 yes")
    assert cpu.features("") == {name: False for name in cpu.FLAGS.values()}


def test_a_fixed_batch_axis_is_filled_and_the_fill_is_dropped() -> None:
    x = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    got = list(report.batches(x, 4, fixed=True))
    assert [len(b) for b, _ in got] == [4, 4] and [n for _, n in got] == [4, 1]
    assert (got[1][0] == x[4]).all()
    pred = report.predictions(lambda b: b, x, 4, fixed=True)
    assert pred.tolist() == [1, 1, 1, 1, 1]  # argmax of each real row, the fill dropped
    reader = int8.Reader(x, 4)
    assert len(reader) == 2 and [len(reader.get_next()["input"]) for _ in range(2)] == [4, 4]
    assert reader.get_next() is None


def test_inputs_are_read_by_name_up_to_the_limit_and_their_labels_checked(tmp_path) -> None:
    net = archspec.load("specs/lenet.arch").network
    x = np.random.default_rng(0).random((6, 1, 28, 28)).astype(np.float64)
    np.savez_compressed(tmp_path / "a.npz", inputs=x, labels=np.arange(6))
    s = data.read(str(tmp_path / "a.npz"), net, "evaluate", limit=4)
    assert s.x.dtype == np.float32 and s.x.shape == (4, 1, 28, 28) and s.y.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(s.x, x[:4].astype(np.float32))
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    assert np.array_equal(data.read(str(tmp_path / "f.npy"), net, "calibrate").x, x.astype(np.float32))
    np.savez(tmp_path / "b.npz", x=x, y=np.arange(5))
    with pytest.raises(ArchError, match="E624"):
        data.read(str(tmp_path / "b.npz"), net, "evaluate")


@needs_fashion
def test_fashion_mnist_is_preprocessed_as_training_preprocesses_it() -> None:
    from archspec.train.data import load as train_load
    from archspec.train.recipe import Source

    net = archspec.load("specs/resnet18.arch", input=(3, 32, 32)).network
    s = data.read(f"fashion-mnist:{FASHION}", net, "evaluate")
    assert s.x.shape == (10000, 3, 32, 32) and s.y is not None and "all 10,000 test images" in s.description
    val = train_load(Source("fashion-mnist", str(FASHION)), (3, 32, 32)).val
    for i in (0, 1234, 9999):
        img, label = val[i]
        assert np.array_equal(s.x[i], img.float().numpy() / 255) and s.y[i] == label
    c = data.read(f"fashion-mnist:{FASHION}", net, "calibrate", limit=64)
    assert c.x.shape == (64, 3, 32, 32) and c.y is None and "64 of the 60,000 training images" in c.description


# ---- bench ---------------------------------------------------------------------------------------------

def test_bench_times_each_precision_on_the_backends_that_run_it(capfd, tmp_path) -> None:
    code, text = cli(capfd, "bench", "specs/lenet.arch", "--precision", "fp32,int8,fp16,bf16", "--backends",
                     "torch,onnxruntime", "--batch", "2", "--iters", "2", "--warmup", "0", "--format", "json",
                     "-o", tmp_path / "b.json")
    assert code == 0, text
    result = json.loads((tmp_path / "b.json").read_text())
    runs = sorted((r["precision"], r["backend"]) for r in result["results"])
    assert runs == [("bf16", "torch"), ("fp16", "onnxruntime"), ("fp32", "onnxruntime"), ("fp32", "torch"),
                    ("int8", "onnxruntime")]
    assert result["environment"]["cpu_features"] == cpu.features()
    low = [r for r in result["results"] if r["precision"] != "fp32"]
    assert all("accuracy" in r and r["accuracy"]["top1"] is None for r in low)  # random inputs: agreement only
    assert all(0 <= r["accuracy"]["agreement"] <= 100 for r in low)


def test_bench_refuses_a_precision_no_chosen_backend_runs(capfd) -> None:
    code, text = cli(capfd, "bench", "specs/lenet.arch", "--precision", "int8", "--backends", "torch")
    assert code == 2 and "error[E626]" in text and "int8 runs on onnxruntime" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_bench_fp16_on_a_missing_gpu_fails_cleanly(capfd) -> None:
    code, text = cli(capfd, "bench", "specs/lenet.arch", "--precision", "fp16", "--backends", "onnxruntime",
                     "--device", "cuda")
    assert code == 2 and "error[E804]" in text and "Traceback" not in text


def test_a_failure_inside_onnxruntimes_quantizer_is_reported_as_ours(capfd, tmp_path, monkeypatch) -> None:
    import onnxruntime.quantization as q

    def broken(*args, **kwargs):
        raise RuntimeError("\x1b[31msomething inside the quantizer\x1b[0m\nsecond line")

    monkeypatch.setattr(q, "quantize_static", broken)
    np.save(tmp_path / "c.npy", np.zeros((2, 1, 28, 28), np.float32))
    code, text = cli(capfd, "compile", "specs/lenet.arch", "-f", "onnx", "-o", tmp_path / "out", "--precision", "int8",
                     "--calibrate", tmp_path / "c.npy")
    assert code == 1 and "error[E627]: onnxruntime's static quantization failed: something inside the quantizer" \
        in text and "\x1b" not in text and "second line" not in text, text
    assert not (tmp_path / "out").exists()


def test_without_onnxruntimes_tools_int8_says_what_to_install(capfd, tmp_path, monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_quantization(name, *args, **kwargs):
        if name.startswith("onnxruntime.quantization"):
            raise ImportError(f"No module named '{name}'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_quantization)
    code, text = cli(capfd, "compile", "specs/lenet.arch", "-o", tmp_path / "out", "--precision", "fp16")
    assert code == 2 and "error[E628]" in text and "pip install 'archspec[onnx]'" in text, text
