"""The tools for living with specs: each command is one module here.

A module `archspec/tools/NAME.py` (or a package `NAME/`) that defines

    def add_parser(sub) -> None     # adds its sub-command to argparse's subparsers
    def run(args) -> int            # runs it, returning the exit status

is found by `archspec.cli` and becomes `archspec NAME`. Modules are imported on every command,
so they import heavy libraries (torch, graphviz, pygls) inside `run`, never at the top.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def modules() -> list[ModuleType]:
    """Every tool module, in name order (so `archspec --help` lists them the same way every time)."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser") and hasattr(module, "run"):
            found.append(module)
    return found
