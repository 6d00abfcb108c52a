"""Low-precision artifacts beside a compile's fp32 ones, each with its accuracy report, or none at all.

`prepare` runs before any export (options, the network, the data: every mistake is found before
minutes of work); `build` runs inside the compile's staging folder, after the fp32 artifacts
exist, and raises E625 when a precision loses more top-1 accuracy than allowed, so that the
staging folder is removed and the output folder stays as it was (archspec/outdir.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

import numpy as np

from ..errors import ArchError, Diagnostic, Span, io_error
from . import data, report
from .options import PrecisionOptions

ARTIFACT = {"int8": "{}.int8.onnx", "fp16": "{}.fp16.onnx", "bf16": "{}.bf16.pt2"}
NEEDS = {"int8": "onnx", "fp16": "onnx", "bf16": "pt2"}  # the fp32 format each is made from
EVAL_SAMPLES_WITHOUT_DATA = 256
KEYS = ("precision", "artifact", "reference", "provider", "settings", "evaluated_on", "evaluation", "sqnr_threshold_db",
        "first_below", "layers", "fp32_ops", "environment")  # a report's fields, in the order it is written


@dataclass
class Prepared:
    popts: PrecisionOptions
    calibration: data.Samples | None = None
    evaluation: data.Samples | None = None
    reports: list[dict] = field(default_factory=list)


def prepare(spec, popts: PrecisionOptions, formats: tuple[str, ...]) -> Prepared:
    """Check the options against the formats and the network, and read the data (E620-E626, E628; exit 2)."""
    for p in popts.precisions:
        if NEEDS[p] not in formats:
            raise io_error("E626", f"--precision {p} is made from the {NEEDS[p]} export: add {NEEDS[p]} to --formats")
    if {"int8", "fp16"} & set(popts.precisions):
        try:
            import onnxruntime.quantization  # noqa: F401
            import onnxruntime.transformers.float16  # noqa: F401
        except ImportError as exc:
            raise io_error("E628", f"int8 and fp16 need onnxruntime's tools ({exc}): pip install 'archspec[onnx]'") \
                from None
    net = spec.network
    data.check_network(net)
    prepared = Prepared(popts)
    if "int8" in popts.precisions:
        prepared.calibration = data.synthetic(net, 64) if popts.synthetic and not popts.calibrate else \
            data.read(popts.calibrate, net, "calibrate", popts.samples)
    if popts.evaluate:
        prepared.evaluation = data.read(popts.evaluate, net, "evaluate")
    return prepared


def build(spec, prepared: Prepared, staging: Path, module, batch: int | None, device: str = "cpu") -> list[str]:
    """Write each precision's artifact and report into `staging`; return their file names. E625 if refused."""
    popts, net, name = prepared.popts, spec.network, spec.name
    inputs = prepared.evaluation or prepared.calibration or \
        data.synthetic(net, EVAL_SAMPLES_WITHOUT_DATA, "no --evaluate: agreement and SQNR only")
    size = batch or max(1, min(64, (256 << 20) // max(1, net.activation_bytes + 4 * prod(net.input_shape))))
    fixed = batch is not None
    fp32_onnx = staging / f"{name}.onnx"
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    reference = _ort_run(str(fp32_onnx), providers) if fp32_onnx.exists() else _torch_run(module)
    ref_pred = report.predictions(reference, inputs.x, size, fixed)
    work = staging / ".precision-work"
    work.mkdir()
    reports = []
    try:
        for p in popts.precisions:
            path = staging / ARTIFACT[p].format(name)
            made = _make(p, spec, prepared, str(fp32_onnx), path, module, batch, device, work, inputs, size, fixed)
            if path.suffix == ".onnx":
                _check(path)
            low_pred = report.predictions(made.pop("run"), inputs.x, size, fixed)
            made["evaluation"] = report.accuracy(ref_pred, low_pred, inputs.y, popts.max_drop)
            made["evaluated_on"] = inputs.description
            reports.append(made)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _gate(reports, net.file)
    files = []
    for i, r in enumerate(reports):
        r["first_below"] = report.first_below(r["layers"])
        reports[i] = r = {k: r[k] for k in KEYS}
        out = f"{name}.{r['precision']}.report.json"
        (staging / out).write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
        files += [r["artifact"], out]
    prepared.reports = reports
    return files


def _make(p: str, spec, prepared: Prepared, fp32_onnx: str, path: Path, module, batch, device, work, inputs,
          size: int, fixed: bool) -> dict:
    """One precision's artifact at `path`; its report so far, with `run` (its runner) to evaluate it."""
    import onnx

    env = _environment()
    base = {"precision": p, "artifact": path.name, "sqnr_threshold_db": report.SQNR_DB, "environment": env}
    if p == "int8":
        from . import int8

        q = int8.quantize(fp32_onnx, str(path), prepared.calibration.x, prepared.popts, batch, work)
        q.settings["calibration"] = prepared.calibration.description
        cpu = ["CPUExecutionProvider"]
        layers = report.onnx_sqnr(q.reference, onnx.load(str(path)), inputs.x, size, fixed, cpu)
        ops = int8.float_ops(str(path), work, q.settings["activation_type"])
        return {**base, "reference": f"{spec.name}.onnx (fp32) in onnxruntime", "provider": "CPUExecutionProvider",
                "settings": q.settings, "layers": layers, "fp32_ops": ops, "run": _ort_run(str(path), cpu)}
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    if p == "fp16":
        from . import fp16

        settings = fp16.convert(fp32_onnx, str(path))
        if device != "cuda":
            settings["note"] = ("on the CPU provider onnxruntime runs most fp16 ops in fp32 through inserted casts: "
                                "this measures fp16 weights and fp16 values between layers, not fp16 arithmetic")
        layers = report.onnx_sqnr(onnx.load(fp32_onnx), onnx.load(str(path)), inputs.x, size, fixed, providers)
        return {**base, "reference": f"{spec.name}.onnx (fp32) in onnxruntime", "provider": providers[0],
                "settings": settings, "layers": layers, "fp32_ops": fp16.kept_ops(str(path)),
                "run": _ort_run(str(path), providers)}
    from . import bf16

    low = bf16.to_bf16(module)
    bf16.export(module, tuple(spec.network.input_shape), batch, str(path))
    dev = next(module.parameters()).device if any(True for _ in module.parameters()) else "cpu"
    layers = report.torch_sqnr(module, low, lambda x: bf16.as_input(x, dev), inputs.x, size)
    return {**base, "reference": f"{spec.name} torch module (fp32)", "provider": f"torch ({dev})",
            "settings": {"weights": "bf16", "activations": "bf16", "memory_format": "channels_last"},
            "layers": layers, "fp32_ops": [], "run": bf16.runner(str(path), dev)}


def _check(path: Path) -> None:
    """The ONNX checker on what the quantizer or converter wrote (E627: their output, not the spec, is wrong)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        from ..errors import error, foreign_text

        raise error("E627", f"the ONNX checker refused `{path.name}`: {foreign_text(exc)}") from None


def _gate(reports: list[dict], where: str) -> None:
    """E625 (exit 1) for every precision that lost more top-1 accuracy than allowed: nothing is written."""
    diags = []
    for r in reports:
        ev = r["evaluation"]
        if ev["passed"] is not False:
            continue
        notes = []
        low = report.worst(r["layers"])
        if low:
            notes.append("lowest SQNR: " + ", ".join(f"`{x['layer']}` {x['sqnr_db']:.1f} dB" for x in low))
        first = report.first_below(r["layers"])
        if first:
            notes.append(f"first layer below {report.SQNR_DB:g} dB: `{first}`")
        if r["precision"] == "int8":
            s = r["settings"]
            notes.append(f"calibrated with {s['calibration_method']} on {s['calibration']}; try other calibration "
                         "inputs (as varied as the real ones), --calibration-method percentile or entropy, or "
                         "--activation-type int8")
        diags.append(Diagnostic("E625", f"{r['precision']}: top-1 accuracy {ev['top1']:.2f}% against fp32's "
                                        f"{ev['fp32_top1']:.2f}% on {ev['samples']:,} inputs: {ev['drop']:.2f} "
                                        f"points lost, more than --max-accuracy-drop {ev['max_drop']:g}; nothing was "
                                        "written", Span(where), tuple(notes)))
    if diags:
        raise ArchError(diags)


def _ort_run(path: str, providers: list[str]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=providers)
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x})[0], dtype=np.float32)
    return run


def _torch_run(module):
    import torch

    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x).to(device)).float().cpu().numpy()
    return run


def _environment() -> dict:
    import platform

    from . import cpu

    env = {"cpu_features": cpu.features(), "machine": platform.machine()}
    for pkg in ("onnxruntime", "torch"):
        try:
            env[pkg] = __import__(pkg).__version__
        except ImportError:
            pass
    return env
