"""Files and their imports -> a Program: every definition in scope, and the text of each file."""

from __future__ import annotations

from pathlib import Path

from . import ir
from .errors import ArchError, Diagnostic, Sources, Span, error
from .parse import display_path, parse_text, read_source


class Program(ir.IR):
    root: str  # the file the user named
    definitions: dict[str, ir.Definition]
    own: tuple[str, ...]  # the definitions written in the root file itself, in order


def load_file(path: str, sources: Sources) -> Program:
    files: dict[str, ir.SourceFile] = {}
    _load(path, files, sources, stack=(), at=None)
    return _program(path, files)


def load_text(text: str, sources: Sources, name: str = "<input>") -> Program:
    sources.texts[name] = text
    files = {name: parse_text(text, name)}
    # Imports are relative to the folder of the file the text is named after, as they would be
    # in that file; text with no file name (`<input>`) imports relative to the working folder.
    importer = None if name.startswith("<") else name
    for imp in files[name].imports:
        _load(display_path(imp.path, importer), files, sources, stack=(name,), at=imp)
    return _program(name, files)


def _load(path: str, files: dict[str, ir.SourceFile], sources: Sources, stack: tuple[str, ...],
          at: ir.Import | None) -> None:
    key = str(Path(path).resolve()) if not path.startswith("<") else path
    if key in stack:
        cycle = " -> ".join([p for p in stack[stack.index(key):]] + [key])
        raise error("E209", f"import cycle: {_short(cycle)}", at.span if at else Span(path))
    if any(str(Path(p).resolve()) == key for p in files if not p.startswith("<")):
        return
    try:
        text = read_source(path)
    except ArchError as exc:
        if at is not None and exc.diagnostics[0].code in ("E001", "E006"):
            # A missing import is a mistake in the importing spec: point at the import.
            raise error("E210", f"cannot import `{at.path}`: {exc.diagnostics[0].message} ({path})", at.span) from None
        raise
    sources.texts[path] = text  # before parsing, so a syntax error can quote its line
    source = parse_text(text, path)
    files[path] = source
    for imp in source.imports:
        _load(display_path(imp.path, path), files, sources, stack + (key,), imp)


def _short(cycle: str) -> str:
    cwd = str(Path.cwd()) + "/"
    return cycle.replace(cwd, "")


def _program(root: str, files: dict[str, ir.SourceFile]) -> Program:
    definitions: dict[str, ir.Definition] = {}
    problems: list[Diagnostic] = []
    for source in files.values():
        for d in source.definitions:
            first = definitions.get(d.name)
            if first is not None:
                problems.append(Diagnostic("E206", f"`{d.name}` is defined twice", d.span,
                                           (f"first defined at {first.span}",)))
            else:
                definitions[d.name] = d
    if problems:
        raise ArchError(problems)
    own = tuple(d.name for d in files[root].definitions)
    return Program.model_construct(span=Span(root), root=root, definitions=definitions, own=own)
