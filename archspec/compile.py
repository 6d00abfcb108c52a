"""`archspec compile`: a checked spec -> its artifacts in one folder, verified, published as one unit.

Every artifact is written into a fresh folder beside DIR, and that folder becomes DIR in one
step only when all of them exist and agree with the torch module (archspec/outdir.py): a failed
or interrupted compile leaves DIR as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .api import Spec
from .codegen import source_of, spec_hash
from .errors import ArchError, error, foreign_text, io_error
from .outdir import check_target, publish, staged

FORMATS = ("python", "torchscript", "pt2", "onnx")
SUFFIX = {"python": ".py", "torchscript": ".pt", "pt2": ".pt2", "onnx": ".onnx"}


@dataclass
class Options:
    formats: tuple[str, ...] = FORMATS
    out_dir: str | None = None
    weights: str | None = None
    opset: int = 18
    batch: int | None = None  # None: a dynamic batch axis
    seed: int = 0
    verify: bool = True
    device: str = "cpu"  # where the exports are made and verified
    dtype: str = "fp32"  # fp16: half precision, on a CUDA device only
    precision: object = None  # precision.options.PrecisionOptions: int8, fp16, bf16 beside fp32 (archspec/precision)


@dataclass
class Result:
    out_dir: str
    files: list[str] = field(default_factory=list)
    checks: list = field(default_factory=list)
    reports: list = field(default_factory=list)  # one accuracy report per low precision


def prepare_out_dir(spec: Spec, out_dir: str | None) -> Path:
    """The real output folder, checked before any work (E604, E001)."""
    return check_target(Path(out_dir or os.path.join("build", spec.name)), spec.name)


def compile_spec(spec: Spec, opts: Options) -> Result:
    shown = opts.out_dir or os.path.join("build", spec.name)
    real = prepare_out_dir(spec, opts.out_dir)
    if "onnx" in opts.formats:  # a usage error, or a layer ONNX cannot compute, before minutes of exporting
        from .export.onnx import check_opset
        from .targets import problems

        check_opset(opts.opset)
        found = problems(spec.network, "onnx")
        if found:
            raise ArchError(found)
    low = None
    if opts.precision is not None and opts.precision.active:  # its options and data checked before any work
        from .precision.build import prepare

        low = prepare(spec, opts.precision, opts.formats)
    module = metadata = None
    if opts.weights or any(f != "python" for f in opts.formats):  # a bad checkpoint fails before any write
        module, metadata = _module(spec, opts)
    with staged(real) as staging:
        result = _build(spec, opts, staging, module, metadata)
        if low is not None:  # E625 here, before publish, leaves the output folder as it was
            from .precision.build import build

            result.files += build(spec, low, staging, module, opts.batch, opts.device)
            result.reports = low.reports
        extra = {"version": __version__, "spec": os.path.basename(spec.network.file),
                 "spec_sha256": spec_hash(spec.sources.texts), "seed": opts.seed, "formats": list(opts.formats),
                 "overrides": dict(spec.network.overrides)}
        if opts.weights:
            extra["weights"] = os.path.basename(opts.weights)
        publish(staging, real, spec.name, result.files, extra)
        result.out_dir = shown
        return result


def _build(spec: Spec, opts: Options, staging: Path, module, metadata: dict[str, str] | None) -> Result:
    result = Result(str(staging))
    name = spec.name
    source = source_of(spec)
    if "python" in opts.formats:
        (staging / f"{name}.py").write_text(source)
        result.files.append(f"{name}.py")
    rest = [f for f in opts.formats if f != "python"]
    if module is None:
        return result
    examples = spec.examples()  # a symbolic spec (`input [3, H, W]`) is exported once, verified at two sizes
    module = module.to(opts.device)
    if opts.dtype == "fp16":
        module = module.half()
        metadata["archspec.dtype"] = "fp16"
    runners = {}
    program = None
    if "torchscript" in rest:
        from .export.torchscript import export_torchscript, load_torchscript

        path = staging / f"{name}.pt"
        export_torchscript(module, str(path))
        result.files.append(path.name)
        runners["torchscript"] = _torch_runner(lambda p=str(path): load_torchscript(p, opts.device), module)
    if "pt2" in rest or "onnx" in rest:
        from .export.pt2 import export_program, load_program, save_program

        program = _exporting(lambda: export_program(module, examples[0].network.input_shape, opts.batch,
                                                    _dynamic_axes(spec.network)))
        if "pt2" in rest:
            path = staging / f"{name}.pt2"
            save_program(program, str(path))
            result.files.append(path.name)
            runners["pt2"] = _torch_runner(lambda p=str(path): load_program(p), module)
    onnx_path = None
    if "onnx" in rest:
        from .export.onnx import check_onnx, export_onnx, save_onnx

        model = export_onnx(program, str(staging / f"{name}.onnx"), spec.network, opts.opset, metadata)
        onnx_path = str(staging / f"{name}.onnx")
        save_onnx(model, onnx_path)
        for example in examples:
            check_onnx(onnx_path, example.network)
        result.files += [f for f in sorted(os.listdir(staging)) if f.startswith(f"{name}.onnx")]
        runners["onnx"] = _ort_runner(onnx_path, _providers(opts.device), opts.dtype)
    if opts.verify and runners:
        from .export.verify import verify

        batches = (opts.batch,) if opts.batch else (1, 3)
        tol = {"rtol": 1e-2, "atol": 1e-2} if opts.dtype == "fp16" else {}  # half precision: wider, stated
        for example in examples:
            result.checks += verify(module, example.network, runners, batches, onnx_path, _providers(opts.device),
                                    **tol)
    return result


def _dynamic_axes(net) -> dict[int, str]:
    """The input's symbolic sizes, by axis (the batch is axis 0): {2: "H", 3: "W"}."""
    return {k + 1: str(d) for k, d in enumerate(net.input_shape) if not isinstance(d, int)}


def _module(spec: Spec, opts: Options):
    try:
        import torch  # noqa: F401
    except ImportError:
        raise io_error("E609", "compiling to torch formats needs torch: pip install 'archspec[torch,onnx]'") \
            from None
    from .codegen import build_module
    from .codegen.build import check_memory

    # The module, a TorchScript copy and an ONNX copy of its weights at once; verification runs
    # batches of up to 3 (the interpreter check keeps every layer's output of a batch of 2).
    check_memory(spec, batch=opts.batch or 3, copies=3)
    module = build_module(spec, seed=opts.seed).eval()
    if opts.verify:  # the module is the spec's network, shape for shape, before anything is exported
        from .export.verify import check_module

        for example in spec.examples():  # two sizes of a symbolic spec: the module takes any
            check_module(module, example.network)  # batch 2: enough to show the batch is not mixed in
    metadata = {"archspec.spec_sha256": spec_hash(spec.sources.texts), "archspec.seed": str(opts.seed)}
    if opts.weights:
        from .export.weights import check_metadata, fit, read_checkpoint, state_bytes

        state, meta = read_checkpoint(opts.weights, state_bytes(module))
        check_metadata(meta, spec.network.input_shape, opts.weights)
        fit(module, state, opts.weights)
        metadata.update({k: v for k, v in meta.items() if k.startswith("archspec.") and k not in metadata})
        metadata["archspec.weights"] = os.path.basename(opts.weights)
    return module, metadata


def _exporting(fn):
    try:
        return fn()
    except ArchError:
        raise
    except Exception as exc:  # torch.export's own failure: report it as ours, with the cause
        raise error("E608", f"torch.export failed: {foreign_text(exc)}") from None


def _providers(device: str) -> list[str]:
    return ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]


def _torch_runner(load, like):
    """Run a loaded artifact on numpy input, on the reference module's device and dtype: its outputs, in order."""
    import torch

    from .export.verify import arrays

    param = next(like.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
    loaded = []

    def run(x):
        if not loaded:
            loaded.append(load())
        with torch.no_grad():
            return arrays(loaded[0](torch.from_numpy(x).to(device, dtype)))
    return run


def _ort_runner(path: str, providers: list[str] | None = None, dtype: str = "fp32"):
    import numpy as np
    import onnxruntime as ort

    session = []

    def run(x):
        if not session:
            if providers and providers[0] != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
                ort.preload_dlls()
            session.append(ort.InferenceSession(path, providers=providers or ["CPUExecutionProvider"]))
        s = session[0]
        feed = x.astype(np.float16) if dtype == "fp16" else x
        return [y.astype(np.float32) for y in s.run(None, {s.get_inputs()[0].name: feed})]
    return run
