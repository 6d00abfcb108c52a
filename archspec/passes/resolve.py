"""Resolve names: every call, argument, name and type in every definition, before anything runs.

Reports all problems at once: unknown layers, blocks, parameters and names (with a
did-you-mean), argument counts, duplicate arguments, misplaced `input`, and recursion.
"""

from __future__ import annotations

import keyword
from typing import Iterator

from .. import ir
from ..errors import ArchError, Diagnostic, Span, did_you_mean, io_error
from ..evaluate import BUILTINS
from ..layers import LAYERS, REQUIRED
from ..loader import Program
from ..names import RESERVED

TYPES = ("int", "float", "bool", "str", "list", "tuple")
RESULT_NAMES = ("params", "macs", "output", "activation_bytes", "input")
BLOCK_NAMES = ("in_shape", "in_channels")  # the shape of the tensor reaching a block, readable in its body
CONTAINER_ARGS = {"concat": ("dim",)}


def resolve(program: Program) -> Program:
    problems: list[Diagnostic] = []
    for d in program.definitions.values():
        problems += _check_definition(d, program)
    for f in program.functions.values():
        problems += _check_function(f, program)
    try:
        problems += _check_recursion(program)
    except RecursionError:  # a chain of calls through thousands of distinct blocks
        raise io_error("E005", "blocks call each other too deeply to analyse", program.span) from None
    if problems:
        raise ArchError(problems)
    return program


LITERALS = ("true", "false", "none")  # words the language reads as values, wherever a name could stand


def _literal_names(d) -> list[Diagnostic]:
    """Parameters, lets and loop targets named like a literal: the name could never be read."""
    named = [(p.name, p.span) for p in d.params]
    body = d.body if isinstance(d, ir.Definition) else ()
    for s, _ in _statements(body, True):
        if isinstance(s, ir.Let):
            named.append((s.name, s.span))
        elif isinstance(s, ir.For):
            named += [(n, s.target.span) for n in _target_names(s.target)]
    if isinstance(d, ir.FuncDef):
        named += [(let.name, let.span) for let in d.lets]
    return [Diagnostic("E218", f"`{n}` cannot be a name: the language reads it as a value", span)
            for n, span in named if n in LITERALS]


def _check_definition(d: ir.Definition, program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = _literal_names(d)
    seen: set[str] = set()
    for p in d.params:
        if p.name in seen:
            out.append(Diagnostic("E211", f"parameter `{p.name}` is declared twice", p.span))
        seen.add(p.name)
        if p.type is not None and p.type not in TYPES:
            out.append(Diagnostic("E205", f"unknown type `{p.type}`{did_you_mean(p.type, TYPES)}", p.span,
                                  ("types are " + ", ".join(TYPES),)))
    bound = set(seen) | _bound_in(d.body) | set(BUILTINS) | set(program.functions)
    if d.kind == "block":
        bound |= set(BLOCK_NAMES)
    inputs = [s for s in d.body if isinstance(s, ir.Input)]
    bound |= size_variables(inputs, bound)  # `input [3, H, W]`: H and W are sizes, readable afterwards
    named: dict[str | None, ir.Input] = {}
    for i in inputs:
        first = named.get(i.name)
        if first is not None or (named and (i.name is None or None in named)):
            shown = f"input `{i.name}`" if i.name else "`input`"
            first = first or inputs[0]
            out.append(Diagnostic("E214", f"the network's {shown} is declared twice" if i.name == first.name else
                                  "a network with several inputs names each of them: `input image [3, 224, 224]`",
                                  i.span, (f"first declared at {first.span}",)))
        named.setdefault(i.name, i)
    for stmt, top in _statements(d.body, top=True):
        out += _check_statement(stmt, top, d, bound, program)
    if d.alias is not None:
        out += _check_alias(d, bound, program)
    return out


def size_variables(inputs: list[ir.Input], bound: set[str]) -> set[str]:
    """The names an `input` statement declares as symbolic sizes: a bare name in its shape that is not
    a value in scope (`input [3, H, W]`)."""
    return {e.id for i in inputs for e in i.dims if isinstance(e, ir.Name) and e.id not in bound}


def _check_alias(d: ir.Definition, bound: set[str], program: Program) -> list[Diagnostic]:
    """`network resnet50(...) = resnet(...)`: the other network exists, and takes these arguments."""
    c = d.alias
    target = program.definitions.get(c.name)
    if target is None or target.kind != "network":
        networks = [n for n, x in program.definitions.items() if x.kind == "network"]
        what = "a block" if target is not None else "no network"
        return [Diagnostic("E201", f"`{c.name}` is {what}; a network can be a variant of a network only"
                                   f"{did_you_mean(c.name, networks) if target is None else ''}", c.span)]
    out = _check_call(c.model_copy(update={"name": c.name}), program, network=True)
    for a in c.args or ():
        out += _check_names(a.value, bound, d, program.functions)
    return out


def _statements(body: tuple, top: bool) -> Iterator[tuple[ir.IR, bool]]:
    """Every statement of a body, nested ones too; `top` says whether it sits at the top level."""
    for s in body:
        yield s, top
        if isinstance(s, (ir.Repeat, ir.For)):
            yield from _statements(s.body, top)
        elif isinstance(s, ir.If):
            yield from _statements(s.body, top)
            yield from _statements(s.orelse, top)
        elif isinstance(s, ir.NodeStmt) and isinstance(s.node, ir.Container):
            yield from _statements(s.node.body, False)


def _bound_in(body: tuple) -> set[str]:
    names: set[str] = set()
    for s, _ in _statements(body, True):
        if isinstance(s, ir.Let):
            names.add(s.name)
        elif isinstance(s, ir.For):
            names |= _target_names(s.target)
    return names


def _target_names(t: ir.Target) -> set[str]:
    if isinstance(t, ir.NameTarget):
        return {t.id}
    return set().union(*(_target_names(x) for x in t.items))


def _check_statement(s: ir.IR, top: bool, d: ir.Definition, bound: set[str], program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    exprs: list[ir.IR] = []
    if isinstance(s, ir.Input):
        if d.kind != "network" or not top:
            out.append(Diagnostic("E213", "`input` belongs at the top level of a network", s.span))
        exprs += s.dims
    elif isinstance(s, ir.Output):
        if d.kind != "network" or not top:
            out.append(Diagnostic("E213", "`output` belongs at the top level of a network", s.span))
        if s.ref is not None and s.ref.index is not None:
            exprs.append(s.ref.index)
    elif isinstance(s, ir.NodeStmt):
        if s.label is not None:
            if s.label.index is not None:
                exprs.append(s.label.index)
            exprs += [p for p in s.label.parts or () if not isinstance(p, str)]
        if isinstance(s.node, ir.Call):
            out += _check_call(s.node, program)
            exprs += [a.value for a in s.node.args or ()]
        elif isinstance(s.node, ir.Ref) and s.node.index is not None:
            exprs.append(s.node.index)
        elif isinstance(s.node, ir.Container) and s.node.args:
            allowed = CONTAINER_ARGS.get(s.node.kind, ())
            for a in s.node.args:
                if a.name not in allowed:
                    what = a.name or "a positional argument"
                    out.append(Diagnostic("E203", f"`{s.node.kind}` takes no argument {what}" if not allowed else
                                          f"`{s.node.kind}` takes only {', '.join(allowed)}=, not {what}", a.span))
                exprs.append(a.value)
    elif isinstance(s, ir.Repeat):
        exprs.append(s.count)
    elif isinstance(s, ir.For):
        exprs.append(s.iter)
    elif isinstance(s, ir.If):
        exprs.append(s.test)
    elif isinstance(s, ir.Let):
        exprs.append(s.value)
    elif isinstance(s, ir.Assert):
        exprs.append(s.test)
    names = bound | set(RESULT_NAMES) if isinstance(s, ir.Assert) and d.kind == "network" else bound
    for e in exprs:
        out += _check_names(e, names, d, program.functions)
    return out


def _check_function(f: ir.FuncDef, program: Program) -> list[Diagnostic]:
    """A `def`: its parameters, and the names its lets and result read (its parameters, earlier lets,
    builtins and other functions; nothing of a block or network)."""
    out: list[Diagnostic] = _literal_names(f)
    if f.name in BUILTINS or f.name in LAYERS or f.name in RESERVED:
        what = ("a builtin function" if f.name in BUILTINS else "a layer" if f.name in LAYERS
                else "a name Python or the generated file uses")
        out.append(Diagnostic("E206", f"`{f.name}` is {what}; a function needs a name of its own", f.span))
    bound = set(BUILTINS) | set(program.functions)
    seen: set[str] = set()
    for p in f.params:
        if p.name in seen:
            out.append(Diagnostic("E211", f"parameter `{p.name}` is declared twice", p.span))
        if keyword.iskeyword(p.name) or p.name in ("math", "torch", "nn"):
            out.append(Diagnostic("E206", f"`{p.name}` cannot name a function's parameter: the function is written "
                                          "as Python, where it is taken", p.span))
        seen.add(p.name)
        if p.default is not None:
            out += _check_names(p.default, bound | {q.name for q in f.params}, f, program.functions)
        bound.add(p.name)
    for let in f.lets:
        out += _check_names(let.value, bound, f, program.functions)
        bound.add(let.name)
    out += _check_names(f.result, bound, f, program.functions)
    return out


def _check_names(e: ir.IR, bound: set[str], d, functions=()) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for node in _walk(e):
        if isinstance(node, ir.Name) and node.id not in bound:
            notes = ()
            if node.id in RESULT_NAMES:
                notes = (f"`{node.id}` is a static result, readable only in a network's `assert`",)
            hint = "; write `true` or `false`" if node.id in ("True", "False") else did_you_mean(node.id, bound)
            out.append(Diagnostic("E202", f"unknown name `{node.id}`{hint}", node.span, notes))
        elif isinstance(node, ir.FuncCall) and node.func not in BUILTINS and node.func not in functions:
            known = [*BUILTINS, *functions]
            out.append(Diagnostic("E202", f"unknown function `{node.func}`{did_you_mean(node.func, known)}",
                                  node.span, ("functions are " + ", ".join(sorted(known)),)))
    return out


def _walk(e: ir.IR) -> Iterator[ir.IR]:
    yield e
    for field in type(e).model_fields:
        v = getattr(e, field)
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, ir.IR):
                yield from _walk(x)


def signature(name: str, program: Program, network: bool = False) -> list[tuple[str, bool]] | None:
    """(parameter, required) pairs of a layer or block (or network), or None if there is no such thing."""
    if name in LAYERS and not network:
        return [(a.name, a.default is REQUIRED) for a in LAYERS[name].args]
    d = program.definitions.get(name)
    if d is None or d.kind != ("network" if network else "block"):
        return None
    return [(p.name, p.default is None) for p in d.params]


def _check_call(c: ir.Call, program: Program, network: bool = False) -> list[Diagnostic]:
    sig = signature(c.name, program, network)
    if sig is None:
        d = program.definitions.get(c.name)
        if d is not None:  # a network
            return [Diagnostic("E201", f"`{c.name}` is a network; only blocks and layers can be used here",
                               c.span, ("declare it with `block` to reuse it",))]
        known = list(LAYERS) + [n for n, x in program.definitions.items() if x.kind == "block"]
        return [Diagnostic("E201", f"unknown layer or block `{c.name}`{did_you_mean(c.name, known)}", c.span)]
    out: list[Diagnostic] = []
    names = [n for n, _ in sig]
    args = c.args or ()
    positional = [a for a in args if a.name is None]
    seen_keyword = False
    for a in args:
        if a.name is not None:
            seen_keyword = True
        elif seen_keyword:
            out.append(Diagnostic("E215", "a positional argument cannot follow a keyword argument", a.span,
                                  ("write the arguments by position first, then by name",)))
            return out
    if len(positional) > len(sig):
        out.append(Diagnostic("E204", f"`{c.name}` takes at most {len(sig)} argument{'s' * (len(sig) != 1)}, "
                                      f"got {len(positional)}", positional[len(sig)].span))
    given = set(names[: len(positional)])
    for a in args:
        if a.name is None:
            continue
        if a.name not in names:
            out.append(Diagnostic("E203", f"`{c.name}` has no parameter `{a.name}`{did_you_mean(a.name, names)}",
                                  a.span, (f"its parameters are {', '.join(names) or 'none'}",)))
        elif a.name in given:
            out.append(Diagnostic("E211", f"argument `{a.name}` is given twice", a.span))
        given.add(a.name)
    for n, required in sig:
        if required and n not in given:
            out.append(Diagnostic("E204", f"`{c.name}` is missing its argument `{n}`", c.span))
    return out


def _check_recursion(program: Program) -> list[Diagnostic]:
    """Blocks calling themselves through other blocks, and functions through other functions (E207)."""
    blocks = {name: [(s.node.name, s.node.span) for s, _ in _statements(d.body, True)
                     if isinstance(s, ir.NodeStmt) and isinstance(s.node, ir.Call)
                     and s.node.name in program.definitions]
              + ([(d.alias.name, d.alias.span)] if d.alias is not None else [])
              for name, d in program.definitions.items()}
    functions = {name: [(n.func, n.span) for e in (*[p.default for p in f.params if p.default is not None],
                                                  *[let.value for let in f.lets], f.result)
                        for n in _walk(e) if isinstance(n, ir.FuncCall) and n.func in program.functions]
                 for name, f in program.functions.items()}
    return _cycles(blocks, "block") + _cycles(functions, "function")


def _cycles(calls: dict[str, list[tuple[str, Span]]], what: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in calls:
        if start in state:
            continue
        path, stack = [start], [iter(calls.get(start, ()))]
        state[start] = 1
        while stack:  # depth first, with an explicit stack: any number of definitions
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            callee, span = step
            if state.get(callee) == 1:
                cycle = path[path.index(callee):] + [callee]
                how = "calls itself" if len(cycle) == 2 else "is recursive"
                out.append(Diagnostic("E207", f"{what} `{callee}` {how}: {' -> '.join(cycle)}", span))
            elif callee not in state:
                state[callee] = 1
                path.append(callee)
                stack.append(iter(calls.get(callee, ())))
    return out
