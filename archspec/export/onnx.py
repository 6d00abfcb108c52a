"""ONNX: one self-contained file, named and annotated so that it maps back to the spec.

The exporter is torch's dynamo-based `torch.onnx.export(..., dynamo=True)`, fed the same
ExportedProgram that becomes the `.pt2`: it keeps the state_dict names for the weights and,
with `optimize=False`, the graph as the spec wrote it (batch norm stays a node; onnxruntime
fuses it when it loads the model). Nodes are renamed `<spec path>/<op>`; exporter metadata
that carries file paths or stack traces is stripped, so the same spec gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings

import onnx
import onnx.numpy_helper
import torch

from .. import __version__, ir
from ..errors import error, foreign_text, io_error
from .lowering import translations

DEFAULT_OPSET = 18  # what the exporter's own op library (onnxscript) targets
MIN_OPSET = 18
INPUT, OUTPUT = "input", "logits"
SCOPES = "pkg.torch.onnx.name_scopes"


def export_onnx(program, path: str, net: ir.Network, opset: int, metadata: dict[str, str]) -> onnx.ModelProto:
    check_opset(opset)
    with _quiet_exporter():
        try:
            onnx_program = torch.onnx.export(program, dynamo=True, opset_version=opset, input_names=input_names(net),
                                             output_names=output_names(net), optimize=False, verbose=False,
                                             custom_translation_table=translations())
        except Exception as exc:  # the exporter's own errors: an op without a rule in this opset
            raise io_error("E606", f"the ONNX exporter failed at opset {opset}: {foreign_text(exc)}") from None
    model = onnx_program.model_proto
    got = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        raise io_error("E606", f"asked for opset {opset} but the exporter wrote opset {got}")
    _drop_zero_biases(model.graph)
    _tidy(model, net, metadata)
    return model


def check_opset(opset: int) -> None:
    """Refuse an opset the exporter cannot write, before any work is done (E606, a usage error)."""
    if opset < MIN_OPSET:
        raise io_error("E606", f"opset {opset} is too old: the exporter writes opset {MIN_OPSET} and newer "
                               f"(archspec's default is {DEFAULT_OPSET})")
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise io_error("E606", f"opset {opset} is newer than this onnx {onnx.__version__} knows (at most {newest})")


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter reports progress on stdout and its fallbacks through logging; keep both quiet."""
    loggers = [logging.getLogger(n) for n in ("onnxscript", "torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _drop_zero_biases(graph: onnx.GraphProto) -> None:
    """A convolution without bias gets a zero bias built at run time (Shape, Expand, CastLike of 0).

    onnxruntime does not fold that chain, so it cannot fuse the batch norm that follows into the
    convolution and the model runs slower (benchmarks/export_results.md). Conv's bias is optional.
    """
    producer = {out: node for node in graph.node for out in node.output}
    dropped = False
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) == 3 and _zero_fill(producer, node.input[2]):
            del node.input[2]
            dropped = True
    if dropped:
        _prune(graph)


def _prune(graph: onnx.GraphProto) -> None:
    """Remove the nodes (and value_info) that no graph output needs; ONNX ops have no side effects."""
    needed = {o.name for o in graph.output}
    live = []
    for node in reversed(graph.node):  # nodes are in topological order
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(i for i in node.input if i)
    _replace(graph.node, reversed(live))
    _replace(graph.value_info, [v for v in graph.value_info if v.name in needed])


def _replace(field, items) -> None:
    copies = []
    for item in items:
        copies.append(type(item)())
        copies[-1].CopyFrom(item)
    del field[:]
    field.extend(copies)


def _zero_fill(producer: dict[str, onnx.NodeProto], name: str) -> bool:
    """Whether `name` is Expand(CastLike?(Constant 0), shape): a tensor of zeros."""
    expand = producer.get(name)
    if expand is None or expand.op_type != "Expand":
        return False
    value = producer.get(expand.input[0])
    if value is not None and value.op_type == "CastLike":
        value = producer.get(value.input[0])
    if value is None or value.op_type != "Constant" or len(value.attribute) != 1 or value.attribute[0].name != "value":
        return False
    return not onnx.numpy_helper.to_array(value.attribute[0].t).any()


def _tidy(model: onnx.ModelProto, net: ir.Network, metadata: dict[str, str]) -> None:
    """Names from the spec, no paths or stack traces, and archspec's own metadata."""
    used: dict[str, int] = {}
    for node in model.graph.node:
        props = {p.key: p.value for p in node.metadata_props}
        path = _path(props.get(SCOPES))
        base = f"{path}/{node.op_type}" if path else node.op_type
        used[base] = used.get(base, 0) + 1
        node.name = base if used[base] == 1 else f"{base}_{used[base]}"
        node.doc_string = ""
        del node.metadata_props[:]
        if path:
            node.metadata_props.add(key="archspec.path", value=path)
    values = list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)
    first = model.graph.input[0].type.tensor_type.shape.dim
    names = {first[0].dim_param: "batch"} if first and first[0].dim_param else {}
    for d, size in zip(first[1:], net.input_shape):  # `input [3, H, W]`: the dynamic axes keep the spec's names
        if d.dim_param and not isinstance(size, int):
            names[d.dim_param] = str(size)
    for value in values:
        del value.metadata_props[:]
        value.doc_string = ""
        for d in value.type.tensor_type.shape.dim:  # the exporter names them after its symbols (`s77`)
            if d.dim_param in names:
                d.dim_param = names[d.dim_param]
    for init in model.graph.initializer:
        del init.metadata_props[:]
    del model.metadata_props[:]
    model.doc_string = ""
    model.graph.doc_string = ""
    model.graph.name = net.name
    model.producer_name = "archspec"
    model.producer_version = __version__
    info = {  # ours last: a checkpoint's `archspec.input` or `archspec.overrides` (training's format) never wins
        **metadata,
        "archspec.version": __version__,
        "archspec.network": net.name,
        "archspec.spec": os.path.basename(net.file),  # a name, not a path: no home folders, same bytes anywhere
        "archspec.input": json.dumps([d if isinstance(d, int) else str(d) for d in net.input_shape]),
        "archspec.output": json.dumps([d if isinstance(d, int) else str(d) for d in net.out_shape]),
        "archspec.overrides": json.dumps(net.overrides, sort_keys=True),
    }
    for k in sorted(info):
        model.metadata_props.add(key=k, value=info[k])


def _path(scopes: str | None) -> str:
    """The module path of a node from the exporter's name scopes: `['', 'b3', 'b3.0', 'relu_3']`."""
    if not scopes:
        return ""
    try:
        names = json.loads(scopes.replace("'", '"'))
    except ValueError:
        return ""
    # Scopes not rooted at the network ('' first) are torch's own, e.g. the batch size's Shape node.
    return names[-2] if len(names) >= 2 and names[0] == "" else ""


def save_onnx(model: onnx.ModelProto, path: str) -> None:
    """One file while under protobuf's 2 GB limit; beside it a `.data` file only past that."""
    if model.ByteSize() < 2**31 - 2**24:
        onnx.save_model(model, path)
    else:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.rsplit("/", 1)[-1] + ".data")


def check_onnx(path: str, net: ir.Network) -> None:
    """onnx's full checker, and its shape inference against archspec's shapes, layer by layer."""
    try:
        onnx.checker.check_model(path, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise error("E608", f"the ONNX checker refused the export: {foreign_text(exc)}") from None
    model = onnx.load(path, load_external_data=False)
    dynamic = False
    for value, (_, i) in zip(model.graph.input, ((None, i) for i in net.graph.inputs)):
        for d, size in zip(value.type.tensor_type.shape.dim[1:], net.graph.nodes[i].out_shape):
            if d.dim_param and d.dim_param != "batch":  # a dynamic size: inferred at this net's number
                d.dim_value = size
                dynamic = True
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output)}

    def differ(got: list, want: tuple) -> bool:
        """Whether ONNX's sizes contradict archspec's. With dynamic sizes the exporter annotates some sizes
        as expressions of its own symbols (`((s53 - 1)//8) + 1`), which inference keeps: those are not
        compared (onnxruntime runs the graph at two sizes in the verification instead); every number is."""
        if len(got) != len(want):
            return True
        return any(g != w for g, w in zip(got, want) if not (dynamic and isinstance(g, str)))

    expected = {n.path: n.out_shape for n in ir.layers(net.graph) if n.batched}
    last: dict[str, str] = {}
    for node in model.graph.node:
        path = next((p.value for p in node.metadata_props if p.key == "archspec.path"), "")
        if path in expected and node.output:
            last[path] = node.output[0]
    for path, out in last.items():
        got = shapes.get(out)
        if got is not None and differ(got[1:], expected[path]):
            raise error("E608", f"ONNX shape inference gives {got} at `{path}`, archspec infers "
                                f"{['batch', *expected[path]]}")
    for onnx_name, (_, i) in zip(output_names(net), net.graph.outputs):
        final = shapes.get(onnx_name)
        want = net.graph.nodes[i].out_shape
        if final is None or differ(final[1:], want):
            raise error("E608", f"ONNX shape inference gives output {final}, archspec infers {['batch', *want]}")


def output_names(net: ir.Network) -> list[str]:
    """The ONNX graph's outputs: `logits` for one unnamed output, else the spec's names."""
    names = [name for name, _ in net.graph.outputs]
    return [OUTPUT] if names == [""] else names


def input_names(net: ir.Network) -> list[str]:
    return [INPUT] if len(net.graph.inputs) == 1 else [net.graph.nodes[i].op for i in net.graph.inputs]
