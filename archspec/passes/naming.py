"""Name every node: the dotted module path that codegen and state_dict keys use.

A named node adds its name as a segment; an unnamed layer or block call adds its index
among its siblings, as in nn.Sequential. An anonymous seq, add or concat adds no segment:
its children are numbered with its parent's, so `features = seq { ... }` holding a loop
gives torchvision's flat `features.0` .. `features.20`.
"""

from __future__ import annotations

from .. import ir
from ..errors import ArchError, Diagnostic, error
from ..names import label_problem, network_problem


def assign_paths(net: ir.Network) -> ir.Network:
    problem = network_problem(net.name)
    if problem:
        raise error("E208", f"`{net.name}` cannot name a network: {problem}", net.span)
    root = _owner(net.root, "")
    return net.model_copy(update={"root": root})


def _owner(node: ir.Node, path: str, update: dict | None = None) -> ir.Node:
    """A node that adds a segment: number the segment-adding nodes beneath it."""
    flat: list[ir.Node] = []
    _flatten(node.children, flat)
    seen: dict[str, ir.Node] = {}
    problems: list[Diagnostic] = []
    segments: dict[int, str] = {}
    for i, child in enumerate(flat):
        seg = child.label if child.label is not None else str(i)
        if child.label is not None:
            problem = _bad_name(child)
            if problem:
                problems.append(problem)
        if seg in seen:
            where = f"in `{path}`" if path else "at the top level"
            problems.append(Diagnostic("E208", f"two modules are named `{seg}` {where}", child.label_span or child.span,
                                       (f"the first is at {seen[seg].label_span or seen[seg].span}",)))
        seen[seg] = child
        segments[id(child)] = seg
    if problems:
        raise ArchError(problems)
    return _rebuild(node, path, segments, path, update)


def _flatten(children: tuple[ir.Node, ...], out: list[ir.Node]) -> None:
    for c in children:
        if c.kind in ("seq", "add", "concat") and c.label is None:
            _flatten(c.children, out)
        else:
            out.append(c)


def _rebuild(node: ir.Node, path: str, segments: dict[int, str], owner_path: str,
             update: dict | None = None) -> ir.Node:
    """The node with its path and its children's; `update` adds fields (the segment) to the same copy."""
    children = []
    for c in node.children:
        seg = segments.get(id(c))
        if seg is None:  # anonymous container: shares the owner's numbering and path
            children.append(_rebuild(c, owner_path, segments, owner_path, {"segment": None}))
        else:
            child_path = f"{owner_path}.{seg}" if owner_path else seg
            children.append(_owner(c, child_path, {"segment": seg}) if c.children
                            else c.model_copy(update={"path": child_path, "segment": seg}))
    return node.model_copy(update={"children": tuple(children), "path": path, **(update or {})})


def _bad_name(node: ir.Node) -> Diagnostic | None:
    problem = label_problem(node.label or "")
    if problem:
        return Diagnostic("E208", f"`{node.label}` cannot name a module: {problem}", node.label_span or node.span)
    return None
