"""archspec: a declarative architecture compiler for convolutional networks.

    import archspec
    net = archspec.load("specs/lenet.arch")
    net.summary()["totals"]["params"]   # 61706, computed statically: no torch needed
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import Spec, load, loads  # noqa: E402
from .errors import ArchError, Diagnostic, Span  # noqa: E402

__all__ = ["ArchError", "Diagnostic", "Span", "Spec", "__version__", "load", "loads"]
