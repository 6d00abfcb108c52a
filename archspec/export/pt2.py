"""torch.export: an ExportedProgram with a dynamic batch axis, saved as `.pt2`.

A batch-1 example would be specialised to a constant, so the example has a batch of 2.
"""

from __future__ import annotations

import torch

MAX_BATCH = 4096


def example_input(input_shape: tuple[int, ...], batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *input_shape), generator=g)


def export_program(module: torch.nn.Module, input_shape: tuple[int, ...], batch: int | None,
                   sizes: dict[int, str] | None = None):
    """The ExportedProgram; `batch` None means a dynamic batch axis; `sizes` the input's other dynamic
    axes (a spec's `input [3, H, W]`: {2: "H", 3: "W"}), whose constraints torch.export works out itself
    (Dim.AUTO) from what the module does with them, as archspec did from the spec."""
    param = next(module.parameters(), None)
    example = example_input(input_shape, batch or 2)
    if param is not None:  # the example lives where the module does, in its precision
        example = example.to(param.device, param.dtype)
    axes: dict[int, object] = {} if batch else {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    axes.update({axis: torch.export.Dim.AUTO for axis in (sizes or {})})
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=(axes,) if axes else None, strict=False)
    if sizes:
        shape = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name not in
                     program.graph_signature.inputs_to_parameters and n.name not in
                     program.graph_signature.inputs_to_buffers).meta["val"].shape
        fixed = [name for axis, name in sizes.items() if isinstance(shape[axis], int)]
        if fixed:
            from ..errors import error

            raise error("E608", f"torch.export made the size{'s' * (len(fixed) > 1)} {', '.join(fixed)} of the "
                                "input a constant: the module does not take any size")
    return program


def save_program(program, path: str) -> None:
    torch.export.save(program, path)


def load_program(path: str) -> torch.nn.Module:
    return torch.export.load(path).module()
