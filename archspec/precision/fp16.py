"""fp16: the ONNX model in half precision with fp32 inputs and outputs, for a GPU provider.

onnxruntime's own converter (onnxruntime.transformers.float16, the same code as
onnxconverter-common's) with fp32 kept where half precision loses accuracy: softmax, and the
normalisations that compute statistics at run time. A batch norm in inference is an affine map
of constants and converts safely. On the CPU provider onnxruntime has few fp16 kernels and runs
the rest in fp32 through inserted casts, so a CPU measures the rounding of weights and of the
values between layers, not fp16 arithmetic.
"""

from __future__ import annotations

import onnx

from .graph import copy_metadata, topological
from .int8 import _tool

KEEP_FP32 = ("Softmax", "LogSoftmax", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
             "LpNormalization", "MeanVarianceNormalization")


def convert(fp32_path: str, out_path: str) -> dict:
    """Write the fp16 model of `fp32_path` to `out_path`; the settings for the report."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    source = onnx.load(fp32_path)
    with _tool("onnxruntime's float16 conversion"):
        model = convert_float_to_float16(source, keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST,
                                                                                     *KEEP_FP32])
    copy_metadata(source, model, {"archspec.precision": "fp16"})
    topological(model.graph)
    del model.graph.value_info[:]  # the converter marks constants it left in fp32 as fp16: let inference redo them
    onnx.save(model, out_path)
    kept = sorted({n.op_type for n in model.graph.node if n.op_type in KEEP_FP32})
    return {"io": "fp32 inputs and outputs", "kept_fp32_ops": kept}


def kept_ops(path: str) -> list[dict]:
    """The nodes the conversion kept in fp32, and why."""
    graph = onnx.load(path, load_external_data=False).graph
    return [{"node": n.name, "op": n.op_type, "why": "kept in fp32 for accuracy (softmax or normalisation "
                                                     "statistics)"} for n in graph.node if n.op_type in KEEP_FP32]

