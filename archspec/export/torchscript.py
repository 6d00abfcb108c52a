"""TorchScript: the module scripted (so branches survive), in eval mode.

torch 2.14 marks TorchScript deprecated with a FutureWarning on every call; `.pt` files are
still what libtorch (C++) loads, so archspec keeps writing them and keeps the warning quiet.
"""

from __future__ import annotations

import warnings

import torch


def quiet():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*TorchScript.*")
    return ctx


def export_torchscript(module: torch.nn.Module, path: str) -> None:
    ctx = quiet()
    try:
        scripted = torch.jit.script(module.eval())
        torch.jit.save(scripted, path)
    finally:
        ctx.__exit__(None, None, None)


def load_torchscript(path: str, device: str = "cpu") -> torch.nn.Module:
    ctx = quiet()
    try:
        return torch.jit.load(path, map_location=device)
    finally:
        ctx.__exit__(None, None, None)
