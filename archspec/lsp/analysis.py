"""A document -> its program, its networks and their diagnostics, with what did not change kept.

`archspec check` starts over for every file. An editor asks again after every keystroke, so the
server keeps three things between edits:

- the parsed items of each document, by their text (chunks.py): an edit re-parses one item;
- imported files, which the parser already keeps by their text (parse.py's cache);
- each expanded network, with the definitions and functions it was built from. Unchanged items
  come back from the item cache as the same objects, so when every definition a network reaches
  (its own, its variant's, the blocks and functions they call, through imports) is the same object
  as last time, the network is the same, and its last check is used again.

The server checks a file's other networks in a background thread; a newer edit stops that check
at its next expression (StoppableBudget), so it never holds up the check of the edit.

Each network is checked like `archspec check` checks it (`api.build`), so the diagnostics are the
command's: same codes, same spans, a note naming the networks when the file has several.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from .. import ir, loader
from ..api import build
from ..errors import ArchError, Diagnostic, Sources, Span, foreign_text
from ..evaluate import Budget
from ..layers import LAYERS
from ..loader import Program
from ..passes import Overrides, resolve
from .chunks import ItemCache, Parsed


@dataclass(frozen=True)
class Checked:
    """One network's check: the network and its warnings, or the errors that stopped it."""

    name: str
    network: ir.Network | None
    diagnostics: tuple[Diagnostic, ...]


@dataclass
class Analysis:
    """A document at one version, checked as far as asked."""

    path: str
    text: str
    parsed: Parsed
    program: Program | None = None
    problems: list[Diagnostic] = field(default_factory=list)  # reading, syntax, imports, names
    networks: list[str] = field(default_factory=list)  # the file's own networks, in order
    checked: dict[str, Checked] = field(default_factory=dict)
    focus: str | None = None  # the network that hover, inlay hints and the first diagnostics use
    index: tuple | None = None  # (network, its nodes by span), built on the first hover or hint

    @property
    def source(self) -> ir.SourceFile:
        """The document's items that parse (all of them when it parses)."""
        return self.parsed.partial

    @property
    def pending(self) -> list[str]:
        return [n for n in self.networks if n not in self.checked]

    def network(self) -> ir.Network | None:
        c = self.checked.get(self.focus or "")
        return c.network if c else None

    def diagnostics(self) -> list[Diagnostic]:
        """Every problem found so far, as `archspec check` lists them: one problem of several
        networks once, with a note naming them."""
        found: dict[Diagnostic, list[str]] = {}
        for name in self.networks:
            for d in self.checked[name].diagnostics if name in self.checked else ():
                found.setdefault(d, []).append(name)
        out = list(self.problems)
        for d, names in found.items():
            if len(self.networks) > 1:
                which = ", ".join(f"`{n}`" for n in names)
                d = dataclasses.replace(d, notes=(*d.notes, f"checking network{'s' * (len(names) > 1)} {which}"))
            out.append(d)
        return sorted(out, key=Diagnostic.sort_key)


class Analyzer:
    """Checks documents, keeping parsed items and expanded networks between calls."""

    def __init__(self, allow_import_outside: bool = False, cache_size: int = 256) -> None:
        self.allow_import_outside = allow_import_outside
        self.items = ItemCache()
        self.cache_size = cache_size
        self._checks: OrderedDict[tuple[str, str], tuple[tuple, Checked]] = OrderedDict()
        self._refs: OrderedDict[int, tuple[ir.IR, tuple[str, ...]]] = OrderedDict()
        self.expanded = 0  # networks expanded (not taken from the cache), for tests and benchmarks
        self._lock = threading.RLock()

    def analyse(self, path: str, text: str, focus: str | None = None) -> Analysis:
        """Parse, load and resolve a document, and check its `focus` network (or its default one)."""
        text = text.removeprefix("\ufeff")
        a = Analysis(path, text, self.items.parse(text, path))
        if a.parsed.error is not None:
            a.problems = list(a.parsed.error.diagnostics)
            return a
        try:
            a.program = self._load(path, text, a.parsed.source)
        except ArchError as exc:
            a.problems = list(exc.diagnostics)
            return a
        except RecursionError:
            a.problems = [Diagnostic("E005", "the spec is nested too deeply to analyse", Span(path), io=True)]
            return a
        except Exception as exc:  # a bug in archspec
            a.problems = [internal(exc, path)]
            return a
        a.networks = [n for n in a.program.own if a.program.definitions[n].kind == "network"]
        a.focus = focus if focus in a.networks else default_network(a.networks, path)
        if a.focus is not None:
            self.check(a, a.focus)
        return a

    def check(self, a: Analysis, name: str) -> Checked:
        """Check one network of an analysed document (kept from last time when nothing it reads changed)."""
        if name not in a.checked:
            a.checked[name] = self.result(a, name)
        return a.checked[name]

    def check_all(self, a: Analysis) -> None:
        for name in a.pending:
            self.check(a, name)

    def result(self, a: Analysis, name: str) -> Checked:
        """One network's check, without recording it in `a`: safe to call from a background thread
        (the caches are shared under a lock; the expansion itself runs outside it). Raises Cancelled
        in a background thread whose analysis has been cancelled."""
        key = (a.path, name)
        with self._lock:
            deps = self.dependencies(a.program, name)
            kept = self._checks.get(key)
            if kept is not None and _same(kept[0], deps):
                self._checks.move_to_end(key)
                return kept[1]
        done = self._build(a, name)
        with self._lock:
            self._checks[key] = (deps, done)
            if len(self._checks) > self.cache_size:
                self._checks.popitem(last=False)
        return done

    def _build(self, a: Analysis, name: str) -> Checked:
        self.expanded += 1
        try:
            spec = build(a.program, Sources(), name, Overrides())
        except ArchError as exc:
            return Checked(name, None, tuple(exc.diagnostics))
        except RecursionError:
            return Checked(name, None, (Diagnostic("E005", "the spec is nested too deeply to analyse",
                                                   Span(a.path), io=True),))
        except Cancelled:
            raise
        except Exception as exc:  # a bug in archspec: said on the document, not left to kill the server
            return Checked(name, None, (internal(exc, a.path),))
        return Checked(name, spec.network, tuple(spec.warnings))

    def _load(self, path: str, text: str, source: ir.SourceFile) -> Program:
        """The document's program, as `archspec.loads(text, name=path)` loads it, from parsed items.

        Imports are read from disk each time (and parsed once per text by parse.py's cache)."""
        named = not path.startswith("<")
        base = os.path.dirname(os.path.realpath(path)) if named else os.path.realpath(os.getcwd())
        state = loader._Loading(Sources(), None if self.allow_import_outside else base)
        state.sources.texts[path] = text
        loader._follow(path, source, state, path if named else None)
        program = resolve(loader._program(path, state.files))
        return program.model_copy(update={"budget": StoppableBudget(program.budget)})

    def dependencies(self, program: Program, name: str) -> tuple[tuple[str, ir.IR | None], ...]:
        """Every definition and function the network `name` reaches, by name, in a stable order."""
        with self._lock:
            return self._dependencies(program, name)

    def _dependencies(self, program: Program, name: str) -> tuple[tuple[str, ir.IR | None], ...]:
        out: list[tuple[str, ir.IR | None]] = []
        seen: set[str] = set()
        todo = [name]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            found = program.definitions.get(n) or program.functions.get(n)
            out.append((n, found))
            if found is not None:
                todo.extend(self._names(found))
        return tuple(out)

    def _names(self, node: ir.IR) -> tuple[str, ...]:
        """The blocks, networks and functions a definition names (kept per definition object)."""
        kept = self._refs.get(id(node))
        if kept is not None and kept[0] is node:
            return kept[1]
        names = set()
        for x in walk_syntax(node):
            if isinstance(x, ir.Call) and x.name not in LAYERS:
                names.add(x.name)
            elif isinstance(x, ir.FuncCall):
                names.add(x.func)
        self._refs[id(node)] = (node, found := tuple(sorted(names)))
        if len(self._refs) > 4 * self.cache_size:
            self._refs.popitem(last=False)
        return found


class Cancelled(Exception):
    """A background check given up: a newer version of its document has arrived."""


class StoppableBudget(Budget):
    """A file's evaluation budget (evaluate.py) that a background check of the file also reads as a
    signal to stop: once `cancel()` is called, the next expression the background thread evaluates
    raises Cancelled. Checks in other threads (the server's own, of the focus network) go on.

    Until then it is a plain Budget, `spend` and all: cancelling changes its class to one whose
    `spend` looks at the thread, so the checks that are never cancelled pay nothing for it."""

    __slots__ = ("background",)

    def __init__(self, budget: Budget) -> None:
        super().__init__(budget.total, budget.functions)
        self.background: int | None = None  # the thread that checks the file's other networks

    @property
    def cancelled(self) -> bool:
        return isinstance(self, _Stopping)

    def cancel(self) -> None:
        self.__class__ = _Stopping


class _Stopping(StoppableBudget):
    __slots__ = ()

    def spend(self, units: int, span: Span) -> None:
        if threading.get_ident() == self.background:
            raise Cancelled
        Budget.spend(self, units, span)


def internal(exc: Exception, path: str) -> Diagnostic:
    """A bug in archspec, as the command line's JSON output reports one (E900)."""
    return Diagnostic("E900", f"internal error: {type(exc).__name__}: {foreign_text(exc)}; this is a bug in "
                              "archspec, please report it", Span(path))


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and x[1] is y[1] for x, y in zip(a, b))


def default_network(networks: list[str], path: str) -> str | None:
    """The network a document shows first: the one named like the file, else its first."""
    stem = os.path.basename(path).removesuffix(".arch")
    return stem if stem in networks else (networks[0] if networks else None)


def walk_syntax(node: ir.IR):
    """Every syntax node under `node` (itself included), parents before children."""
    stack = [node]
    while stack:
        x = stack.pop()
        yield x
        for v in x.__dict__.values():
            if isinstance(v, ir.IR):
                stack.append(v)
            elif isinstance(v, tuple):
                stack.extend(i for i in reversed(v) if isinstance(i, ir.IR))
