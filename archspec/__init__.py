"""archspec: a declarative architecture compiler for convolutional networks.

    import archspec
    net = archspec.load("specs/lenet.arch")
    net.summary()["totals"]["params"]   # 61706, computed statically: no torch needed
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import Spec, load, loads  # noqa: E402
from .errors import ArchError, Diagnostic, Span  # noqa: E402

__all__ = ["ArchError", "Diagnostic", "Span", "Spec", "__version__", "load", "loads", "port_weights"]


def __getattr__(name: str):
    # torch is imported only when the torch-side API is used: the static path never imports it.
    if name == "port_weights":
        from .export.weights import port_weights

        return port_weights
    raise AttributeError(f"module 'archspec' has no attribute {name!r}")
