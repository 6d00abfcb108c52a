"""Pictures of a network, shared by `archspec graph` and `archspec report` (no torch anywhere here).

    dot.py        the dataflow graph -> Graphviz DOT text (pure, deterministic)
    graphviz.py   DOT -> svg, png or pdf through Graphviz's `dot` program
    charts.py     per-layer bar charts and the receptive field's growth, as inline SVG (pure)
    page.py       one self-contained HTML page per network: table, diagram, charts, asserts
"""

from __future__ import annotations
