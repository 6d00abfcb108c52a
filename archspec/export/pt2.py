"""torch.export: an ExportedProgram with a dynamic batch axis, saved as `.pt2`.

A batch-1 example would be specialised to a constant, so the example has a batch of 2.
"""

from __future__ import annotations

import torch

MAX_BATCH = 4096


def example_input(input_shape: tuple[int, ...], batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *input_shape), generator=g)


def export_program(module: torch.nn.Module, input_shape: tuple[int, ...], batch: int | None):
    """The ExportedProgram; `batch` None means a dynamic batch axis."""
    param = next(module.parameters(), None)
    example = example_input(input_shape, batch or 2)
    if param is not None:  # the example lives where the module does, in its precision
        example = example.to(param.device, param.dtype)
    dynamic = None if batch else ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)
    return torch.export.export(module.eval(), (example,), dynamic_shapes=dynamic, strict=False)


def save_program(program, path: str) -> None:
    torch.export.save(program, path)


def load_program(path: str) -> torch.nn.Module:
    return torch.export.load(path).module()
