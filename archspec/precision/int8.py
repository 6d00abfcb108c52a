"""int8: onnxruntime's static quantization in QDQ form, per-channel weights, calibrated on real inputs.

The fp32 ONNX goes through onnxruntime's pre-processing first (shape inference and its basic
graph optimisations, which fold every batch norm after a convolution into it), then a batch norm
after a linear layer is folded here (onnxruntime folds none of those), so that the quantized
graph has no batch norm left over in fp32 between two int8 layers. The activations' type is the
processor's (cpu.py): uint8 on x86, where onnxruntime's kernels multiply uint8 by int8.

What is left in fp32 is read from the graph onnxruntime really runs (its fully optimised form on
the CPU provider): any node that still computes on float values, with the reason.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from ..errors import ArchError, error, foreign_text
from . import cpu
from .graph import copy_metadata, fold_linear_batchnorms, shapes_from_floats, topological
from .options import PrecisionOptions

FLOAT = TensorProto.FLOAT
SHAPE_OPS = {"Shape", "Size", "Constant", "ConstantOfShape"}
BOUNDARY = {"QuantizeLinear", "DequantizeLinear"}
LAYOUT = {"ReorderInput", "ReorderOutput"}  # onnxruntime's blocked layout around an fp32 convolution, listed itself
INT_KERNELS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "QAttention",
               "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}  # and every com.microsoft QLinear* op


@dataclass
class Quantized:
    settings: dict  # what was chosen, for the report
    reference: onnx.ModelProto  # the prepared fp32 graph: the same tensor names as the quantized one


def quantize(fp32_path: str, out_path: str, x: np.ndarray, popts: PrecisionOptions, batch: int | None,
             work: Path) -> Quantized:
    """Write the int8 QDQ model of `fp32_path` to `out_path`, calibrated on the inputs `x`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    act = cpu.default_activation_type() if popts.activation_type == "auto" else popts.activation_type
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[popts.method]
    pre, prepared = work / "pre.onnx", work / "prepared.onnx"
    with _tool("onnxruntime's quantization pre-processing"):
        quant_pre_process(fp32_path, str(pre), skip_symbolic_shape=True)
    reference = onnx.load(str(pre))
    folded = fold_linear_batchnorms(reference.graph)
    onnx.save(reference, str(prepared))
    reader = Reader(x, batch)
    with _tool("onnxruntime's static quantization"):
        quantize_static(str(prepared), out_path, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=types[act], weight_type=types[popts.weight_type], calibrate_method=method,
                        extra_options={"CalibStridedMinMax": 1})  # one batch at a time: memory stays bounded
    model = onnx.load(out_path)
    shapes_from_floats(model.graph)
    topological(model.graph)
    copy_metadata(onnx.load(fp32_path, load_external_data=False), model, {
        "archspec.precision": "int8", "archspec.int8.activations": act, "archspec.int8.weights": popts.weight_type,
        "archspec.int8.calibration": f"{popts.method}, {len(x)} inputs"})
    onnx.save(model, out_path)
    settings = {"format": "QDQ", "activation_type": act, "weight_type": popts.weight_type, "per_channel": True,
                "calibration_method": popts.method, "calibration_samples": int(len(x)),
                "preprocessing": "onnxruntime quant_pre_process (shape inference, batch norms folded into "
                                 f"convolutions); {folded} batch norm{'s' * (folded != 1)} folded into linear layers"}
    return Quantized(settings, reference)


@contextlib.contextmanager
def _tool(what: str) -> Iterator[None]:
    """onnxruntime's quantization logs warnings through the root logger and prints progress; its failures
    become E627."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its histogram calibrators print progress
            yield
    except ArchError:
        raise
    except Exception as exc:  # the tool's own failure, whatever its type: report it as ours, with its cause
        raise error("E627", f"{what} failed: {foreign_text(exc)}") from None
    finally:
        root.setLevel(level)


class Reader:
    """onnxruntime's CalibrationDataReader over an array, in batches (of the export's batch, if fixed)."""

    def __init__(self, x: np.ndarray, batch: int | None, name: str = "input") -> None:
        self.x, self.size, self.name = x, batch or 16, name
        self.fixed = batch is not None
        self.start, self.end, self.at = 0, len(self), 0

    def __len__(self) -> int:
        return -(-len(self.x) // self.size)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end, self.at = start_index, end_index, start_index

    def get_next(self) -> dict | None:
        if self.at >= min(self.end, len(self)):
            return None
        chunk = self.x[self.at * self.size: (self.at + 1) * self.size]
        self.at += 1
        if self.fixed and len(chunk) < self.size:  # a fixed batch axis: repeat the last inputs to fill it
            chunk = np.concatenate([chunk, chunk[-1:].repeat(self.size - len(chunk), axis=0)])
        return {self.name: chunk}


# ---- what stays in fp32 ----------------------------------------------------------------------

def float_ops(path: str, work: Path, act: str) -> list[dict]:
    """The nodes of the graph onnxruntime runs for `path` (CPU provider, every optimisation) that compute on
    float values: fp32 islands in an int8 model, each with why it stayed."""
    import onnxruntime as ort

    qdq = onnx.load(path, load_external_data=False).graph
    requantized = {i for n in qdq.node if n.op_type == "QuantizeLinear" for i in n.input[:1]}
    quantized = {n.name: any(o in requantized for o in n.output) for n in qdq.node
                 if any(i.endswith("_DequantizeLinear_Output") for i in n.input)}  # name: its output requantized
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(work / "optimized.onnx")
    options.log_severity_level = 3  # its warning that the saved graph is for this processor only: we know
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(work / "optimized.onnx")).graph
    types = _types(graph)
    return [{"node": node.name, "op": node.op_type, "why": _why(node, quantized, act)}
            for node in graph.node if _computes_on_floats(node, types)]


def _types(graph: onnx.GraphProto) -> dict[str, int]:
    """Each tensor's element type, propagated through the optimised graph (it carries few value_infos)."""
    types = {v.name: v.type.tensor_type.elem_type for v in graph.input}
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:
        op = node.op_type
        if op == "QuantizeLinear":
            out = types.get(node.input[2], TensorProto.UINT8) if len(node.input) > 2 else TensorProto.UINT8
        elif op == "DequantizeLinear":
            out = types.get(node.input[1], FLOAT)
        elif op in ("Shape", "Size"):
            out = TensorProto.INT64
        elif op == "Cast":
            out = next(a.i for a in node.attribute if a.name == "to")
        elif op == "Constant":
            out = next((a.t.data_type for a in node.attribute if a.name == "value"), FLOAT)
        elif _int_kernel(node):
            out = FLOAT if op == "QGemm" and len(node.input) < 8 else TensorProto.UINT8
        else:
            ins = [types.get(i) for i in node.input if i]
            out = FLOAT if node.domain == "com.microsoft.nchwc" or FLOAT in ins else next((t for t in ins if t), 0)
        for o in node.output:
            types[o] = out
    return types


def _int_kernel(node: onnx.NodeProto) -> bool:
    return node.op_type in INT_KERNELS or (node.domain == "com.microsoft" and node.op_type.startswith("QLinear"))


def _computes_on_floats(node: onnx.NodeProto, types: dict[str, int]) -> bool:
    if node.op_type in BOUNDARY or node.op_type in SHAPE_OPS or node.op_type in LAYOUT or _int_kernel(node):
        return False
    return node.domain == "com.microsoft.nchwc" or any(types.get(i) == FLOAT for i in node.input if i)


def _why(node: onnx.NodeProto, quantized: dict[str, bool], act: str) -> str:
    """Why a node of the optimised graph computes in fp32, from how the quantizer left it (matched by name)."""
    op = node.op_type
    if op == "BatchNormalization":
        return "a batch norm after no convolution or linear layer to fold it into; onnxruntime has no int8 batch norm"
    if node.name not in quantized:
        return f"onnxruntime.quantization leaves {op} here in fp32: it has no int8 form for it in this place"
    if not quantized[node.name]:
        return "its output is not quantized again (what reads it stays in fp32), so it runs on dequantized values"
    return (f"onnxruntime's CPU provider has no int8 kernel for {op} with {act} activations on this processor; "
            "it runs on the dequantized values")
