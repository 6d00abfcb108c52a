"""The accuracy report of a low-precision model: top-1 against fp32, agreement, per-layer SQNR, the gate.

Top-1 accuracy and agreement come from the artifact itself (the int8 or fp16 ONNX in
onnxruntime, the bf16 program in torch) over every evaluation input. The per-layer SQNR compares
each layer's output in the low-precision model with the same layer's output in fp32, on the same
inputs: 10 log10(sum x^2 / sum (x - x_low)^2), in dB; errors accumulate, so it falls with depth,
and the first layer under SQNR_DB is where a broken calibration shows first. For int8 the layers'
outputs are read after their QuantizeLinear/DequantizeLinear pair (the graph as quantized, run
without onnxruntime's int8 fusions, which agree with it to rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

SQNR_DB = 20.0  # below this a layer has lost more than 1% of its signal's power to rounding: named in the report
LAYOUT_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Shape", "Constant", "Cast",
              "QuantizeLinear", "DequantizeLinear"}
SQNR_SAMPLES = 256  # inputs the per-layer comparison runs on: enough for a stable ratio of powers
WORST = 3  # layers a refusal names

Run = Callable[[np.ndarray], np.ndarray]  # a batch of float32 inputs -> the network's first output


def batches(x: np.ndarray, size: int, fixed: bool) -> Iterator[tuple[np.ndarray, int]]:
    """(batch, how many of it are real): with a fixed batch axis the last one is filled by repetition."""
    for start in range(0, len(x), size):
        chunk = x[start: start + size]
        n = len(chunk)
        if fixed and n < size:
            chunk = np.concatenate([chunk, chunk[-1:].repeat(size - n, axis=0)])
        yield chunk, n


def predictions(run: Run, x: np.ndarray, size: int, fixed: bool) -> np.ndarray:
    out = [np.asarray(run(chunk))[:n].reshape(n, -1).argmax(axis=1) for chunk, n in batches(x, size, fixed)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def accuracy(reference: np.ndarray, low: np.ndarray, labels: np.ndarray | None, max_drop: float) -> dict:
    """Top-1 of both and their agreement, in percent; the drop and whether it passes the gate (labels only)."""
    out = {"samples": int(len(reference)), "agreement": round(float(np.mean(reference == low)) * 100, 3)}
    if labels is None:
        out.update({"labels": False, "fp32_top1": None, "top1": None, "drop": None, "passed": None})
        return out
    fp32, top1 = float(np.mean(reference == labels)) * 100, float(np.mean(low == labels)) * 100
    drop = fp32 - top1
    out.update({"labels": True, "fp32_top1": round(fp32, 3), "top1": round(top1, 3), "drop": round(drop, 3),
                "max_drop": max_drop, "passed": drop <= max_drop + 1e-9})
    return out


@dataclass
class Power:
    """Running sums for one layer's SQNR."""

    signal: float = 0.0
    noise: float = 0.0

    def add(self, ref: np.ndarray, low: np.ndarray) -> None:
        ref, low = ref.astype(np.float64), low.astype(np.float64)
        self.signal += float(np.sum(ref * ref))
        self.noise += float(np.sum((ref - low) ** 2))

    def db(self) -> float | None:
        """SQNR in dB; None when the layer is exact (no noise at all)."""
        if self.noise == 0:
            return None
        if self.signal == 0:
            return -math.inf
        return 10 * math.log10(self.signal / self.noise)


def layers_table(powers: list[tuple[str, str, Power]]) -> list[dict]:
    rows = []
    for layer, op, p in powers:
        db = p.db()
        rows.append({"layer": layer, "op": op, "sqnr_db": None if db is None else round(max(db, -999.0), 2)})
    return rows


def first_below(rows: list[dict], threshold: float = SQNR_DB) -> str | None:
    return next((r["layer"] for r in rows if r["sqnr_db"] is not None and r["sqnr_db"] < threshold), None)


def worst(rows: list[dict], k: int = WORST) -> list[dict]:
    return sorted((r for r in rows if r["sqnr_db"] is not None), key=lambda r: r["sqnr_db"])[:k]


# ---- per-layer SQNR: ONNX ---------------------------------------------------------------------

def onnx_sqnr(reference, low, x: np.ndarray, size: int, fixed: bool, providers: list[str]) -> list[dict]:
    """Per-layer SQNR of the ONNX model `low` against `reference` (ModelProtos with the same tensor names)."""
    import onnx

    ref = onnx.shape_inference.infer_shapes(reference)
    lowi = onnx.shape_inference.infer_shapes(low)
    ref_types = _elem_types(ref.graph)
    low_types = _elem_types(lowi.graph)
    pairs: list[tuple[str, str, str, str]] = []  # (layer, op, tensor in ref, tensor in low)
    seen = set()
    for node in ref.graph.node:
        if node.op_type in LAYOUT_OPS or not node.output or ref_types.get(node.output[0]) != onnx.TensorProto.FLOAT:
            continue
        t = node.output[0]
        name = t + "_DequantizeLinear_Output" if t + "_DequantizeLinear_Output" in low_types else t
        if name in low_types and name not in seen:
            seen.add(name)
            pairs.append((_layer(node.name), node.op_type, t, name))
    if not pairs:
        return []
    ref_run = _session_with_outputs(ref, [(p[2], ref_types[p[2]]) for p in pairs], providers)
    low_run = _session_with_outputs(lowi, [(p[3], low_types[p[3]]) for p in pairs], providers)
    powers = [Power() for _ in pairs]
    batched = [True] * len(pairs)  # a layer's output, not a constant or a shape computed beside the layers
    for chunk, n in batches(x[:SQNR_SAMPLES], size, fixed):
        for i, (p, a, b) in enumerate(zip(powers, ref_run(chunk), low_run(chunk))):
            if a.ndim == 0 or a.shape != b.shape or a.shape[0] != len(chunk):
                batched[i] = False
            elif batched[i]:
                p.add(a[:n], b[:n])
    return layers_table([(layer, op, p) for (layer, op, _, _), p, ok in zip(pairs, powers, batched) if ok])


def _layer(node_name: str) -> str:
    """`b2.0.conv1/Conv` -> `b2.0.conv1/Conv` (the spec's path and the op); onnxruntime's own names as they are."""
    return node_name or "(unnamed)"


def _elem_types(graph) -> dict[str, int]:
    """The element type of every tensor a node computes (value_info may also name tensors no longer there)."""
    known = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.output, *graph.input)}
    return {o: known.get(o, 0) for node in graph.node for o in node.output if o}


def _session_with_outputs(model, outputs: list[tuple[str, int]], providers: list[str]):
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.helper.make_tensor_value_info(n, t, None) for n, t in outputs if n not in have)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(m.SerializeToString(), options, providers=providers)
    name = session.get_inputs()[0].name
    names = [n for n, _ in outputs]

    def run(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(a, dtype=np.float32) for a in session.run(names, {name: x})]
    return run


# ---- per-layer SQNR: torch --------------------------------------------------------------------

def torch_sqnr(reference, low, prepare: Callable, x: np.ndarray, size: int) -> list[dict]:
    """Per-layer SQNR of torch module `low` against `reference`, leaf module by leaf module, in the order the
    reference runs them; `prepare` turns a float32 array into `low`'s input."""
    import torch

    def leaves(m):
        return {name: mod for name, mod in m.named_modules() if name and not any(True for _ in mod.children())}

    order: list[str] = []
    powers: dict[str, Power] = {}
    kinds: dict[str, str] = {}
    for chunk, _ in batches(x[:SQNR_SAMPLES], size, False):
        got: dict[str, dict[str, torch.Tensor]] = {"ref": {}, "low": {}}
        hooks = []
        for side, model in (("ref", reference), ("low", low)):
            for name, mod in leaves(model).items():
                hooks.append(mod.register_forward_hook(
                    lambda m, a, out, side=side, name=name, got=got: got[side].__setitem__(name, out)
                    if isinstance(out, torch.Tensor) else None))
                kinds[name] = type(mod).__name__
        try:
            with torch.inference_mode():
                reference(torch.from_numpy(chunk))
                low(prepare(chunk))
        finally:
            for h in hooks:
                h.remove()
        for name, a in got["ref"].items():
            b = got["low"].get(name)
            if b is None or b.shape != a.shape:
                continue
            if name not in powers:
                order.append(name)
                powers[name] = Power()
            powers[name].add(a.float().cpu().numpy(), b.float().contiguous().cpu().numpy())
    return layers_table([(f"{name}/{kinds[name]}", kinds[name], powers[name]) for name in order])


# ---- the report as text -------------------------------------------------------------------------

def as_text(report: dict) -> str:
    """A few lines: what was built how, accuracy against fp32, the layers where it lost most, what stayed fp32."""
    ev = report["evaluation"]
    lines = [f"{report['precision']}: {report['artifact']} ({describe(report)})"]
    lines.append(f"  on {report['evaluated_on']}:")
    if ev["labels"]:
        state = "ok" if ev["passed"] else "REFUSED"
        lines.append(f"  top-1 fp32 {ev['fp32_top1']:.2f}%, {report['precision']} {ev['top1']:.2f}% (drop "
                     f"{ev['drop']:+.2f} points, limit {ev['max_drop']:g}: {state}); agreement {ev['agreement']:.2f}%")
    else:
        lines.append(f"  agreement with fp32 {ev['agreement']:.2f}% (no labels: accuracy not checked; pass --evaluate)")
    rows = report["layers"]
    if rows:
        low = ", ".join(f"{r['layer']} {r['sqnr_db']:.1f} dB" for r in worst(rows))
        below = report["first_below"]
        lines.append(f"  SQNR per layer ({len(rows)} layers): lowest {low or 'none (exact)'}; "
                     + (f"first below {report['sqnr_threshold_db']:g} dB: {below}" if below
                        else f"none below {report['sqnr_threshold_db']:g} dB"))
    ops = report.get("fp32_ops")
    if ops is not None:
        lines.append("  left in fp32: " + ("none" if not ops else "; ".join(
            f"{o['node']} ({o['why']})" for o in ops[:5]) + (f"; and {len(ops) - 5} more" if len(ops) > 5 else "")))
    return "\n".join(lines) + "\n"


def describe(report: dict) -> str:
    s = report["settings"]
    if report["precision"] == "int8":
        return (f"QDQ, {s['activation_type']} activations, {s['weight_type']} per-channel weights, "
                f"{s['calibration_method']} calibration on {s['calibration']}")
    if report["precision"] == "fp16":
        return f"fp16 with fp32 inputs and outputs; kept in fp32: {', '.join(s['kept_fp32_ops']) or 'nothing'}"
    return "bf16 weights and activations, channels-last"
