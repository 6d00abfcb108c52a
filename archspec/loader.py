"""Files and their imports -> a Program: every definition in scope, and the text of each file.

Imports are followed depth first with an explicit stack (no recursion), each file read once
and recognised by its real path in a dict, so a file with thousands of imports loads in linear
time. An import may name only a `.arch` file in the folder of the file being checked or below
it (after symbolic links are resolved), unless the caller allows imports outside it
(`--allow-import-outside`): a spec from elsewhere cannot make archspec read, and quote in an
error, a file such as /etc/shadow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import ir
from .errors import ArchError, Diagnostic, Sources, Span, error, io_error
from .evaluate import Budget
from .parse import display_path, parse_text, read_source

MAX_IMPORT_DEPTH = 64  # a chain of imports, each importing the next
MAX_FILES = 2_000  # files one spec may load, its imports and theirs


class Program(ir.IR):
    root: str  # the file the user named
    definitions: dict[str, ir.Definition]
    own: tuple[str, ...]  # the definitions written in the root file itself, in order
    functions: dict[str, ir.FuncDef] = {}  # every `def` in scope
    budget: Any = None  # the evaluation Budget every network of this file draws on
    files: tuple[str, ...] = ()  # every file read, as loaded: the root file, then its imports
    # block calls expanded so far, shared by every network of this file (passes/expand.py `_Expanded`)
    expansions: dict = {}


@dataclass
class _Loading:
    sources: Sources
    folder: str | None  # imports must stay under this real path; None: anywhere
    files: dict[str, ir.SourceFile] = field(default_factory=dict)  # display path -> parsed, in load order
    seen: set[str] = field(default_factory=set)  # real paths of the files loaded


def load_file(path: str, sources: Sources, allow_import_outside: bool = False) -> Program:
    folder = None if allow_import_outside else os.path.dirname(os.path.realpath(path))
    state = _Loading(sources, folder)
    text = read_source(path)
    sources.texts[path] = text  # before parsing, so a syntax error can quote its line
    _follow(path, parse_text(text, path), state)
    return _program(path, state.files)


def load_text(text: str, sources: Sources, name: str = "<input>", allow_import_outside: bool = False) -> Program:
    # Imports are relative to the folder of the file the text is named after, as they would be
    # in that file; text with no file name (`<input>`) imports relative to the working folder.
    importer = None if name.startswith("<") or "\0" in name else name  # a name no file can have
    base = os.path.dirname(os.path.realpath(name)) if importer else os.path.realpath(os.getcwd())
    state = _Loading(sources, None if allow_import_outside else base)
    sources.texts[name] = text
    _follow(name, parse_text(text, name), state, importer)
    return _program(name, state.files)


def _follow(path: str, source: ir.SourceFile, state: _Loading, importer: str | None = "") -> None:
    """Load `source`'s imports and theirs, depth first, with an explicit stack."""
    state.files[path] = source
    state.seen.add(_real(path))
    # Each frame: (display path, real path, its imports not yet followed). `importer` is how
    # imports of the first file are resolved: None for text with no file (the working folder).
    first = importer if importer != "" else path
    stack: list[tuple[str | None, str, list[ir.Import]]] = [(first, _real(path), list(reversed(source.imports)))]
    while stack:
        where, real, pending = stack[-1]
        if not pending:
            stack.pop()
            continue
        imp = pending.pop()
        child = display_path(imp.path, where)
        child_real = os.path.realpath(child)
        if any(child_real == r for _, r, _ in stack):
            cycle = [r for _, r, _ in stack][[r for _, r, _ in stack].index(child_real):] + [child_real]
            raise error("E209", f"import cycle: {_short(' -> '.join(cycle))}", imp.span)
        if child_real in state.seen:
            continue
        _allowed(imp, child, child_real, state)
        if len(stack) >= MAX_IMPORT_DEPTH:
            raise io_error("E005", f"imports are nested too deeply (a chain of more than {MAX_IMPORT_DEPTH} files)",
                           imp.span)
        if len(state.files) >= MAX_FILES:
            raise io_error("E008", f"the spec imports too many files (more than {MAX_FILES:,})", imp.span)
        text = _read_import(imp, child)
        state.sources.texts[child] = text
        parsed = parse_text(text, child)
        state.files[child] = parsed
        state.seen.add(child_real)
        stack.append((child, child_real, list(reversed(parsed.imports))))


def _real(path: str) -> str:
    return path if path.startswith("<") or "\0" in path else os.path.realpath(path)


def _allowed(imp: ir.Import, path: str, real: str, state: _Loading) -> None:
    """Refuse an import that is not a spec file, or that leaves the folder of the file being checked."""
    if not imp.path.endswith(".arch"):
        raise io_error("E216", f"cannot import `{imp.path}`: only `.arch` files can be imported", imp.span)
    if state.folder is not None and os.path.commonpath([state.folder, real]) != state.folder:
        raise io_error("E216", f"cannot import `{imp.path}`: it is outside `{_short(state.folder)}`, the folder "
                               "of the spec being checked", imp.span,
                       "imports may reach only that folder and the folders below it; pass --allow-import-outside "
                       "to lift this")


def _read_import(imp: ir.Import, path: str) -> str:
    try:
        return read_source(path)
    except ArchError as exc:
        d = exc.diagnostics[0]
        if d.code == "E001" and d.message == "no such file":
            # A missing import is a mistake in the importing spec: point at the import.
            raise error("E210", f"cannot import `{imp.path}`: no such file ({path})", imp.span) from None
        # Anything else about the file (a device, a folder, unreadable, too large, not text) is
        # said at the import, with the file's own code and exit status; nothing from it is quoted.
        raise ArchError(Diagnostic(d.code, f"cannot import `{imp.path}`: {d.message}", imp.span, d.notes,
                                   io=d.io)) from None


def _short(text: str) -> str:
    cwd = os.getcwd() + os.sep
    return text.replace(cwd, "")


def _program(root: str, files: dict[str, ir.SourceFile]) -> Program:
    definitions: dict[str, ir.Definition] = {}
    functions: dict[str, ir.FuncDef] = {}
    problems: list[Diagnostic] = []
    for source in files.values():
        for d in (*source.definitions, *source.functions):
            first = definitions.get(d.name) or functions.get(d.name)
            if first is not None:
                problems.append(Diagnostic("E206", f"`{d.name}` is defined twice", d.span,
                                           (f"first defined at {first.span}",)))
            elif isinstance(d, ir.FuncDef):
                functions[d.name] = d
            else:
                definitions[d.name] = d
    if problems:
        raise ArchError(problems)
    own = tuple(d.name for d in files[root].definitions)
    return Program.model_construct(span=Span(root), root=root, definitions=definitions, own=own,
                                   functions=functions, budget=Budget(functions=functions), expansions={},
                                   files=tuple(files))
