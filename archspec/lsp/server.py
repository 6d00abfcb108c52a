"""The server's state: the documents' analyses, checked as they change, their diagnostics published,
and positions translated between archspec's Spans and the protocol's ranges (features.py answers
the requests with it).

Every change is checked at once, for the document's focus network (the one named like the file,
or the last network the cursor was in): its diagnostics are published, once for each version,
before the next message is read. The file's other networks are checked after a moment of quiet
in a background thread, which a newer version of the document stops at its next expression
(analysis.StoppableBudget); their diagnostics are published again when they add anything.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import PositionCodec

from .. import __version__
from ..errors import Diagnostic, Span
from ..parse import display_path
from . import lookup
from .analysis import Analysis, Analyzer, Cancelled, Checked, StoppableBudget

REST_DELAY = 0.3  # seconds of quiet before the other networks of a file are checked
_NOTE_PLACE = re.compile(r"(\S+\.arch):(\d+):(\d+)")
@dataclass
class Options:
    """What the client may set in `initializationOptions`."""

    allow_import_outside: bool = False
    inlay_hints: bool = True
    errors_url: str | None = None  # the page that documents error codes; default: docs/errors.md here


class ArchServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("archspec", __version__, text_document_sync_kind=t.TextDocumentSyncKind.Incremental)
        self.options = Options()
        self.analyzer = Analyzer()
        self.analyses: dict[str, Analysis] = {}
        self.focus: dict[str, str] = {}
        self.published: dict[str, list[Diagnostic]] = {}
        self.anchors = _anchors()
        self.waiting: dict[str, asyncio.TimerHandle] = {}  # background checks about to start
        self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archspec-check")

    # -- checking --------------------------------------------------------------------------------
    def refresh(self, uri: str) -> Analysis:
        """Check the document's current text now and publish what its focus network gives."""
        doc = self.workspace.get_text_document(uri)
        self.cancel(uri)
        a = self.analyzer.analyse(_path(uri), doc.source, self.focus.get(uri))
        self.analyses[uri] = a
        self.publish(uri, a, doc.version, always=True)
        if a.pending:
            loop = asyncio.get_running_loop()
            self.waiting[uri] = loop.call_later(REST_DELAY, self._start_rest, uri, a, doc.version, loop)
        return a

    def cancel(self, uri: str) -> None:
        """Stop the background check of the document's last version, waiting or running."""
        waiting = self.waiting.pop(uri, None)
        if waiting is not None:
            waiting.cancel()
        old = self.analyses.get(uri)
        if old is not None and isinstance(getattr(old.program, "budget", None), StoppableBudget):
            old.program.budget.cancel()

    def _start_rest(self, uri: str, a: Analysis, version: int | None, loop: asyncio.AbstractEventLoop) -> None:
        self.waiting.pop(uri, None)
        if self.analyses.get(uri) is a:
            self.background.submit(self._rest, uri, a, version, a.pending, loop)

    def _rest(self, uri: str, a: Analysis, version: int | None, names: list[str],
              loop: asyncio.AbstractEventLoop) -> None:
        """In the background thread: check the other networks, handing each result to the event loop."""
        a.program.budget.background = threading.get_ident()
        for name in names:
            if a.program.budget.cancelled:
                return
            try:
                done = self.analyzer.result(a, name)
            except Cancelled:
                return
            loop.call_soon_threadsafe(self._record, uri, a, done)
        loop.call_soon_threadsafe(self._finish, uri, a, version)

    def _record(self, uri: str, a: Analysis, done: Checked) -> None:
        if self.analyses.get(uri) is a:
            a.checked.setdefault(done.name, done)

    def _finish(self, uri: str, a: Analysis, version: int | None) -> None:
        if self.analyses.get(uri) is a:
            self.publish(uri, a, version)

    def publish(self, uri: str, a: Analysis, version: int | None, always: bool = False) -> None:
        """Send the document's diagnostics: for every new version, and after that when they change."""
        found = a.diagnostics()
        if not always and self.published.get(uri) == found:
            return
        self.published[uri] = found
        lines = a.text.splitlines(keepends=True)
        self.text_document_publish_diagnostics(t.PublishDiagnosticsParams(
            uri=uri, version=version, diagnostics=[self.diagnostic(d, a, lines) for d in found]))

    def diagnostic(self, d: Diagnostic, a: Analysis, lines: list[str]) -> t.Diagnostic:
        here = _same_file(d.span.file, a.path)
        span = d.span if here else _import_of(a, d.span.file)
        message = d.message if here or not d.span.line else f"{d.span}: {d.message}"
        related = [t.DiagnosticRelatedInformation(location=self.location(p), message=note)
                   for note in d.notes for p in _places(note)]
        if not here and d.span.line:
            related.insert(0, t.DiagnosticRelatedInformation(location=self.location(d.span), message=d.message))
        return t.Diagnostic(
            range=self.range(span, lines), message="\n".join((message, *d.notes)), code=d.code, source="archspec",
            severity=t.DiagnosticSeverity.Warning if d.severity == "warning" else t.DiagnosticSeverity.Error,
            code_description=self.code_description(d.code), related_information=related or None)

    def code_description(self, code: str) -> t.CodeDescription | None:
        anchor = self.anchors.get(code, code.lower())
        if self.options.errors_url:
            return t.CodeDescription(href=f"{self.options.errors_url}#{anchor}")
        page = DOCS / "errors.md"
        return t.CodeDescription(href=f"{page.as_uri()}#{anchor}") if page.is_file() else None

    # -- positions -------------------------------------------------------------------------------
    def range(self, span: Span, lines: list[str]) -> t.Range:
        return to_range(span, lines, self.workspace.position_codec)

    def location(self, span: Span) -> t.Location:
        lines = _lines_of(span.file, self)
        return t.Location(uri=from_fs_path(os.path.abspath(span.file)) or span.file, range=self.range(span, lines))

    def at(self, uri: str, pos: t.Position, refocus: bool = True) -> tuple[Analysis, int, int]:
        """The document's analysis (its focus moved to the network under the cursor) and the position
        as (line, column) from 1 in characters."""
        a = self.analyses.get(uri) or self.refresh(uri)
        lines = a.text.splitlines(keepends=True)
        p = self.workspace.position_codec.position_from_client_units(lines, pos)
        line, col = p.line + 1, p.character + 1
        if refocus:
            self.refocus(uri, a, line)
        return a, line, col

    def refocus(self, uri: str, a: Analysis, line: int) -> None:
        """Make the network under the cursor the focus, unless the focus network is built from it
        (the cursor in `resnet`'s body keeps `resnet50`, a variant of it, in focus)."""
        if a.program is None:
            return
        here = next((d for d in a.source.definitions if d.kind == "network" and d.span.line <= line
                     <= d.span.end_line), None)
        if here is None or here.name == a.focus or here.name not in a.networks:
            return
        if a.focus is not None and here.name in dict(self.analyzer.dependencies(a.program, a.focus)):
            return
        a.focus = self.focus[uri] = here.name
        a.index = None
        self.analyzer.check(a, here.name)
        self.publish(uri, a, self.workspace.get_text_document(uri).version)


DOCS = Path(__file__).resolve().parents[2] / "docs"


def to_range(span: Span, lines: list[str], codec: PositionCodec) -> t.Range:
    """A Span (from 1, in characters, end exclusive) as a protocol range (from 0, in the client's units)."""
    if not span.line:
        return t.Range(start=t.Position(line=0, character=0), end=t.Position(line=0, character=0))
    end_line, end_col = (span.end_line, span.end_column) if span.end_line else (span.line, span.column + 1)
    return codec.range_to_client_units(lines, t.Range(
        start=t.Position(line=span.line - 1, character=span.column - 1),
        end=t.Position(line=end_line - 1, character=max(0, end_col - 1))))


def _anchors() -> dict[str, str]:
    """Each code's anchor in docs/errors.md, as GitHub and VS Code make them from its heading."""
    page = DOCS / "errors.md"
    try:
        text = page.read_text(encoding="utf-8")
    except OSError:
        return {}
    out = {}
    for m in re.finditer(r"^#{2,4} (([EW]\d{3})\b.*)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        out.setdefault(m.group(2), slug)
    return out


def _path(uri: str) -> str:
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return path or f"<{uri}>"


def _same_file(a: str, b: str) -> bool:
    return a == b or (not a.startswith("<") and os.path.realpath(a) == os.path.realpath(b))


def _import_of(a: Analysis, file: str) -> Span:
    """Where the document imports `file` (directly, or the import it comes through), else its start."""
    imports = a.source.imports
    for imp in imports:
        if _same_file(display_path(imp.path, a.path), file):
            return imp.span
    return imports[0].span if imports else Span(a.path)


def _places(note: str) -> list[Span]:
    return [Span(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(2)), int(m.group(3)) + 1)
            for m in _NOTE_PLACE.finditer(note)]


def _lines_of(file: str, server: ArchServer) -> list[str]:
    for a in server.analyses.values():
        if _same_file(a.path, file):
            return a.text.splitlines(keepends=True)
    return lookup.read_file(file).splitlines(keepends=True)
