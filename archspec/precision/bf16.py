"""bf16: the torch module with bf16 weights, in channels-last memory, exported by torch.export.

bf16 keeps fp32's exponent range, so nothing overflows and no layer needs to stay in fp32; what
is lost is mantissa (8 bits against 24). The program takes bf16 inputs [N, C, H, W] and gives
bf16 outputs; `archspec bench --precision bf16` runs the same module through torch.compile.
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import ArchError, error, foreign_text


def to_bf16(module):
    """A bf16, channels-last copy of `module` (the fp32 one is left as it is)."""
    import torch

    low = copy.deepcopy(module).eval().to(torch.bfloat16)
    return low.to(memory_format=torch.channels_last)


def as_input(x: np.ndarray, device):
    """A float32 array as the bf16 model's input: bf16, channels-last when 4-D."""
    import torch

    t = torch.from_numpy(x).to(device=device, dtype=torch.bfloat16)
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def export(module, input_shape: tuple[int, ...], batch: int | None, path: str) -> None:
    """torch.export a bf16 copy of the fp32 `module` to `path` (a dynamic batch axis unless `batch`).

    The weights are saved contiguous (torch.export's archive groups a channels-last tensor's storage
    badly); the program runs on channels-last inputs all the same."""
    import torch

    from ..export.pt2 import export_program, save_program

    try:
        low = copy.deepcopy(module).eval().to(torch.bfloat16)
        save_program(export_program(low, input_shape, batch), path)
    except ArchError:
        raise
    except Exception as exc:  # torch.export's own failure, as compile reports an fp32 one
        raise error("E608", f"torch.export failed in bf16: {foreign_text(exc)}") from None


def runner(path: str, device):
    """Run the saved bf16 program on float32 arrays; float32 outputs."""
    import torch

    from ..export.pt2 import load_program

    program = load_program(path)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = program(as_input(x, device))
        return out.float().cpu().numpy()
    return run
