"""Source -> module: the in-memory nn.Module is built by executing the generated source.

One source of truth: what `archspec compile -f python` writes is what runs. The source is
registered in `linecache` and as a module in `sys.modules`, so tracebacks show its lines and
TorchScript (which reads a class's source) can script it.
"""

from __future__ import annotations

import linecache
import sys
import types

import torch


def load_source(source: str, tag: str) -> types.ModuleType:
    """Execute generated source as a module named after its content, so equal sources share it."""
    name = f"archspec_generated.{tag}"
    if name in sys.modules:
        return sys.modules[name]
    filename = f"<archspec:{tag}.py>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def instantiate(module: types.ModuleType, seed: int = 0) -> torch.nn.Module:
    """The network with initial weights fixed by `seed`, leaving the global RNG as it was."""
    cls = getattr(module, module.MODEL)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls()
