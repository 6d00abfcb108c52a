"""archspec: a declarative architecture compiler for convolutional networks.

    import archspec
    net = archspec.load("specs/lenet.arch")
    net.summary()["totals"]["params"]   # 61706, computed statically: no torch needed
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ArchError, Diagnostic, Span  # noqa: E402

__all__ = ["ArchError", "Diagnostic", "Span", "Spec", "__version__", "load", "loads", "port_weights"]


def __getattr__(name: str):
    # Imported when first used: the command line answers `archspec check` from its cache without
    # the IR (pydantic) and the parser, and torch only ever comes with the torch-side API.
    if name in ("Spec", "load", "loads"):
        from . import api

        return getattr(api, name)
    if name == "port_weights":
        from .export.weights import port_weights

        return port_weights
    raise AttributeError(f"module 'archspec' has no attribute {name!r}")
