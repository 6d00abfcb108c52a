"""Edits of ONNX graphs around quantization and conversion: small functions over GraphProtos.

Each keeps what the graph computes and changes only how onnxruntime can run it: a batch norm
folded into the linear layer before it, Shape nodes reading a tensor that does not stand in the
way of a fusion, nodes put back in topological order, archspec's metadata carried over.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


def fold_linear_batchnorms(graph: onnx.GraphProto) -> int:
    """Fold BatchNormalization after Gemm (linear, then batchnorm1d) into the Gemm's weight and bias.

    y = ((x W^T + b) - mean) / sqrt(var + eps) * gamma + beta  =  x (s W)^T + (b - mean) s + beta,
    with s = gamma / sqrt(var + eps) per output feature. Only where the Gemm's output feeds the
    batch norm alone and every tensor involved is a constant of the graph.
    """
    inits = {t.name: t for t in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    folded = []
    for bn in graph.node:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        gemm = producer.get(bn.input[0])
        if gemm is None or gemm.op_type != "Gemm" or users.get(gemm.output[0]) != 1 or gemm.output[0] in outputs:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            continue
        names = [gemm.input[1], *(gemm.input[2:3]), *bn.input[1:5]]
        if not all(n in inits for n in names):
            continue
        w = numpy_helper.to_array(inits[gemm.input[1]]).astype(np.float64)
        w = w.T if not attrs.get("transB", 0) else w  # [out, in]
        b = numpy_helper.to_array(inits[gemm.input[2]]).astype(np.float64) if len(gemm.input) > 2 \
            else np.zeros(w.shape[0])
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        s = gamma / np.sqrt(var + eps)
        w2, b2 = (w * s[:, None]).astype(np.float32), ((b - mean) * s + beta).astype(np.float32)
        wname, bname = gemm.input[1] + ".bn_folded", (gemm.input[2] if len(gemm.input) > 2 else gemm.name) + \
            ".bn_folded"
        graph.initializer.extend([numpy_helper.from_array(w2, wname), numpy_helper.from_array(b2, bname)])
        del gemm.input[1:]
        gemm.input.extend([wname, bname])
        del gemm.attribute[:]
        gemm.attribute.extend([onnx.helper.make_attribute("transB", 1)])
        gemm.output[0] = bn.output[0]
        folded.append(bn)
    for bn in folded:
        graph.node.remove(bn)
    _drop_unused_initializers(graph)
    return len(folded)


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    if len(keep) != len(graph.initializer):
        copies = []
        for t in keep:
            copies.append(TensorProto())
            copies[-1].CopyFrom(t)
        del graph.initializer[:]
        graph.initializer.extend(copies)


def shapes_from_floats(graph: onnx.GraphProto) -> None:
    """Point each Shape node of a quantized graph where it costs nothing and blocks no fusion.

    A Shape of a dequantized graph input reads the input itself: onnxruntime need not dequantize
    the whole input just to measure it. A Shape of a layer's float output reads that output's
    dequantized copy instead: a layer whose output feeds anything but its QuantizeLinear cannot
    become an int8 kernel. The shape is the same either way; call `topological` afterwards."""
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    inputs = {v.name for v in graph.input}
    for node in graph.node:
        if node.op_type != "Shape":
            continue
        src = node.input[0]
        dq = producer.get(src)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear" and q.input[0] in inputs:
            node.input[0] = q.input[0]
            continue
        if src in inputs or src not in producer:
            continue
        q = next((r for r in readers.get(src, []) if r.op_type == "QuantizeLinear"), None)
        dq = next((r for r in readers.get(q.output[0], []) if r.op_type == "DequantizeLinear"), None) if q else None
        if dq is not None:
            node.input[0] = dq.output[0]


def topological(graph: onnx.GraphProto) -> None:
    """Put the nodes in an order where each comes after what it reads (the converter appends the casts of the
    inputs at the end; onnxruntime sorts a graph itself, the ONNX checker and other runtimes do not)."""
    ready = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, order = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                order.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a dangling input: leave the order to the checker's message
            order += rest
            break
        pending = rest
    copies = []
    for node in order:
        copies.append(onnx.NodeProto())
        copies[-1].CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def copy_metadata(source: onnx.ModelProto, model: onnx.ModelProto, extra: dict[str, str]) -> None:
    props = {p.key: p.value for p in source.metadata_props}
    props.update(extra)
    del model.metadata_props[:]
    for k in sorted(props):
        model.metadata_props.add(key=k, value=props[k])
    model.producer_name, model.producer_version = source.producer_name, source.producer_version
    model.graph.name = source.graph.name
