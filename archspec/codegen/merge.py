"""One class for the calls of a block that differ only in the branches their `if`s took.

MobileNetV2's inverted residual expands its input only when `expand_ratio != 1` and adds it back
only when `use_res_connect`; ResNet's bottleneck has a `downsample` only where the shape changes.
Expanded, each call is a graph of its own, and a class written per graph would make twelve
`InvertedResidual` classes. torchvision writes one, with the `if`s inside. So does archspec: the
expansion records, on every node, the `if` decisions of its block that led to it (GNode.guard),
and the calls of a block are merged here into one graph holding every node any of them has, each
node kept with its guard. The class is written from that graph (codegen/python.py), its `if`s
rendered in the class's parameters.

A merge is refused (None: a class per structure, as before) unless it is exact: every node a call
lacks is explained by an `if` that call decided the other way, a node reads the same inputs in
every call that has it (a missing guarded node in a chain passes its input on; a missing operand
of a sum is left out), and the `if`s did not decide differently for one call inside a loop.
"""

from __future__ import annotations

from .. import ir

Key = tuple  # (the node's span, its occurrence among nodes of that span in the body)


def merge(bodies: list[ir.Graph], members: dict[int, dict[int, ir.GNode]] | None = None,
          calls: list[int] | None = None) -> ir.Graph | None:
    """The union of the bodies of the calls of one block (see the module's docstring), or None.

    `members`, when given, gets for each merged node (by id) the node of each call (by its index in
    `bodies`, or in `calls` where a named container's bodies are merged for some calls only) that it
    stands for."""
    members = {} if members is None else members
    calls = list(range(len(bodies))) if calls is None else calls
    if not bodies or any(len(b.inputs) != 1 or len(b.outputs) != 1 or b.training for b in bodies):
        return None
    keyed = [_keys(b) for b in bodies]
    decisions = []
    for b in bodies:
        d = _decisions(b)
        if d is None:
            return None
        decisions.append(d)
    drops: set[int] = set()
    order: list[Key] = []
    for keys in keyed:
        order = _merge_orders(order, keys)
        if order is None:
            return None
    if order[0] != keyed[0][0]:  # the input first, in every body
        return None
    index = {k: i for i, k in enumerate(order)}
    by_index: dict[int, dict[int, ir.GNode]] = {}
    where = [{k: j for j, k in enumerate(keys)} for keys in keyed]  # key -> node id in that body
    nodes: list[ir.GNode] = []
    for k in order:
        present = [b for b in range(len(bodies)) if k in where[b]]
        rep = bodies[present[0]].nodes[where[present[0]][k]]
        for b in range(len(bodies)):
            if b not in present and not _explained(rep.guard, decisions[b]):
                return None
        if rep.body is not None and rep.kind == "group":
            merged = merge([bodies[b].nodes[where[b][k]].body for b in present], members, [calls[b] for b in present])
            if merged is None:
                return None
            rep = rep.model_copy(update={"body": merged})
        nodes.append(rep)
        by_index[len(nodes) - 1] = {calls[b]: bodies[b].nodes[where[b][k]] for b in present}
    if all(_chain(b) for b in bodies):  # steps one after another: a call's steps are the merged ones it has
        nodes = [n.model_copy(update={"inputs": (m - 1,)}) if m else n for m, n in enumerate(nodes)]
        for m, node in enumerate(nodes):
            members[id(node)] = by_index[m]
        return ir.Graph.model_construct(nodes=tuple(nodes), inputs=(0,), outputs=(("", len(nodes) - 1),),
                                        training=())
    # inputs, in merged ids: the same in every body that has the node, after passing through the
    # guarded nodes a body lacks (a chain's optional step); a sum's operands: the union, in order
    for m, k in enumerate(order):
        if nodes[m].kind == "input":
            continue
        gots = [(b, [index[keyed[b][j]] for j in bodies[b].nodes[where[b][k]].inputs])
                for b in range(len(bodies)) if k in where[b]]
        if nodes[m].kind == "combine":
            # an operand stands for the latest node that passes into it (a branch's optional last step);
            # an operand some calls lack is guarded, and either passes into another one or is left out
            ups = set()
            for b, got in gots:
                for o in got:
                    ups.add(max(j for j in range(m) if _follow(j, nodes, where[b], order) == o))
            wanted = sorted(ups)
            left_out: set[int] = set()  # operands some call lacks and leaves out (not passed on)
            passed: set[int] = set()  # operands some call lacks whose input takes their place
            for b, got in gots:
                expected = []
                for j in wanted:
                    f = _follow(j, nodes, where[b], order)
                    if order[f] in where[b] and f in got and f not in expected:
                        expected.append(f)
                        if f != j:
                            passed.add(j)
                    elif not nodes[j].guard:
                        return None
                    else:
                        left_out.add(j)
                if expected != got:
                    return None  # an operand of one call is not an operand in another
            if left_out & passed:
                return None
            drops.update(left_out)
        else:
            if len({len(got) for _, got in gots}) != 1:
                return None
            wanted = [max(got[i] for _, got in gots) for i in range(len(gots[0][1]))]  # the latest producer
            if any(not _same_through(wanted, got, nodes, where[b], order) for b, got in gots):
                return None
        nodes[m] = nodes[m].model_copy(update={"inputs": tuple(wanted)})
    for m, node in enumerate(nodes):  # the calls' nodes each merged node stands for, by its identity
        members[id(node)] = by_index[m]
    outs = [index[keyed[b][bodies[b].outputs[0][1]]] for b in range(len(bodies))]
    out = max(outs)
    if any(not _same_through([out], [o], nodes, where[b], order) for b, o in enumerate(outs)):
        return None
    graph = ir.Graph.model_construct(nodes=tuple(nodes), inputs=(0,), outputs=(("", out),), training=(),
                                     left_out=tuple(sorted(drops)))
    return graph if _consumers_agree(graph) else None


def _chain(g: ir.Graph) -> bool:
    """Whether each node reads the one before it and the last is the output (an nn.Sequential)."""
    return all(n.inputs == (i - 1,) for i, n in enumerate(g.nodes) if i) and g.outputs[0][1] == len(g.nodes) - 1 \
        and all(n.kind != "combine" for n in g.nodes)


def guarded(g: ir.Graph) -> bool:
    """Whether a (merged) body has nodes that some calls lack."""
    return any(n.guard for n in g.nodes) or any(n.body is not None and n.kind == "group" and guarded(n.body)
                                               for n in g.nodes)


def _keys(g: ir.Graph) -> list[Key]:
    seen: dict[tuple, int] = {}
    out = []
    for n in g.nodes:
        base = ("input",) if n.kind == "input" else (n.span.line, n.span.column, n.span.file, n.kind, n.op)
        seen[base] = seen.get(base, 0) + 1
        out.append((base, seen[base]))
    return out


def _decisions(g: ir.Graph) -> dict[int, bool] | None:
    """Each `if` of the body's nodes (by statement) -> the branch taken; None where one `if` went both
    ways in one call (it sits in a loop)."""
    out: dict[int, bool] = {}
    for n in g.nodes:
        for stmt, taken, _ in n.guard:
            if out.setdefault(id(stmt), taken) != taken:
                return None
        if n.kind == "group" and n.body is not None:
            inner = _decisions(n.body)
            if inner is None:
                return None
            for k, v in inner.items():
                if out.setdefault(k, v) != v:
                    return None
    return out


def _explained(guard: tuple, decided: dict[int, bool]) -> bool:
    """A node a call lacks: one of its `if`s went the other way there (or was never reached)."""
    return any(decided.get(id(stmt)) != taken for stmt, taken, _ in guard)


def _merge_orders(a: list[Key], b: list[Key]) -> list[Key] | None:
    if not a:
        return list(b)
    sa, sb = set(a), set(b)
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif a[i] not in sb:
            out.append(a[i])
            i += 1
        elif b[j] not in sa:
            out.append(b[j])
            j += 1
        else:
            return None  # the two calls order their nodes differently
    return out + a[i:] + b[j:]


def _follow(j: int, nodes: list[ir.GNode], present: dict, order: list) -> int:
    """Where a merged node's value comes from in a call that lacks it: a guarded one-input step passes its
    input on (a step of a chain that only some calls take)."""
    while order[j] not in present and nodes[j].guard and len(nodes[j].inputs) == 1 and nodes[j].kind != "combine":
        j = nodes[j].inputs[0]
    return j


def _same_through(wanted: list[int], got: list[int], nodes: list[ir.GNode], present: dict, order: list) -> bool:
    """A node's inputs in one call equal the merged ones, following the guarded nodes the call lacks."""
    if len(wanted) != len(got):
        return False
    return all(_follow(w, nodes, present, order) == g for w, g in zip(wanted, got))


def _consumers_agree(g: ir.Graph) -> bool:
    """A guarded node feeds sums only, or chains only: what a call without it reads instead is then clear."""
    uses: dict[int, set[str]] = {}
    for n in g.nodes:
        for j in n.inputs:
            uses.setdefault(j, set()).add("combine" if n.kind == "combine" else "chain")
    return all(len(uses.get(i, ())) <= 1 for i, n in enumerate(g.nodes) if n.guard)


def reads_another(merged: ir.Graph, members: dict[int, dict[int, ir.GNode]],
                  bodies: list[ir.Graph]) -> dict[int, list[tuple[ir.GNode, ir.Graph]]]:
    """The merged nodes (by id) whose first input is, in some call, another node than the one the merged
    graph shows (a guarded step that call lacks passes its own input on), each with its node in every
    call and the graph that holds it. What holds of the merged input (a fresh tensor that nothing else
    reads) need not hold of what a call reads: whether such a node may overwrite its input in place is
    decided on every call's own graph. `if c { conv2d(...) }  relu` would otherwise overwrite the
    block's own input in the calls without the convolution."""
    where: dict[int, ir.Graph] = {}

    def index(g: ir.Graph) -> None:
        for n in g.nodes:
            where[id(n)] = g
            if n.body is not None:
                index(n.body)

    for body in bodies:
        index(body)
    out: dict[int, list[tuple[ir.GNode, ir.Graph]]] = {}

    def walk(g: ir.Graph) -> None:
        for n in g.nodes:
            if n.inputs:
                shown = members.get(id(g.nodes[n.inputs[0]]), {})
                owns = members.get(id(n), {})
                if any(own.inputs and where[id(own)].nodes[own.inputs[0]] is not shown.get(b)
                       for b, own in owns.items()):
                    out[id(n)] = [(own, where[id(own)]) for own in owns.values()]
            if n.body is not None:
                walk(n.body)

    walk(merged)
    return out
