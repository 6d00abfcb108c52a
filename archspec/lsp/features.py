"""The protocol's requests and notifications, each a small function over the server's state
(server.py) and the answers of lookup.py and outline.py, turned into lsprotocol's types.
"""

from __future__ import annotations

import logging
import sys

from lsprotocol import types as t

from ..errors import ArchError
from . import lookup, outline
from .server import ArchServer, Options

SWITCH_INTERVAL = 0.0005  # seconds the background thread may keep the GIL when the server wants it
_KINDS = {"layer": t.CompletionItemKind.Function, "block": t.CompletionItemKind.Class,
          "function": t.CompletionItemKind.Function, "keyword": t.CompletionItemKind.Keyword,
          "variable": t.CompletionItemKind.Variable, "argument": t.CompletionItemKind.Property,
          "label": t.CompletionItemKind.Reference}
_SYMBOLS = {"block": t.SymbolKind.Class, "network": t.SymbolKind.Module, "function": t.SymbolKind.Function,
            "module": t.SymbolKind.Field}



def _symbol(s: outline.Symbol, server: ArchServer, lines: list[str]) -> t.DocumentSymbol:
    return t.DocumentSymbol(name=s.name, kind=_SYMBOLS[s.kind], detail=s.detail, range=server.range(s.span, lines),
                            selection_range=server.range(s.selection, lines),
                            children=[_symbol(c, server, lines) for c in s.children] or None)


def _completion(i: outline.Item) -> t.CompletionItem:
    doc = t.MarkupContent(kind=t.MarkupKind.Markdown, value=i.doc) if i.doc else None
    return t.CompletionItem(label=i.label, kind=_KINDS[i.kind], detail=i.detail or None, documentation=doc,
                            insert_text=i.insert, sort_text=f"{i.sort}{i.label}")


def create() -> ArchServer:
    """The server with every feature registered."""
    server = ArchServer()

    @server.feature(t.INITIALIZE)
    def initialize(ls: ArchServer, params: t.InitializeParams) -> None:
        given = params.initialization_options if isinstance(params.initialization_options, dict) else {}
        outside = bool(given.get("allowImportOutside", ls.options.allow_import_outside))
        ls.options = Options(outside, bool(given.get("inlayHints", True)),
                             given.get("errorsUrl") if isinstance(given.get("errorsUrl"), str) else None)
        ls.analyzer.allow_import_outside = ls.options.allow_import_outside

    @server.feature(t.SHUTDOWN)
    def shutdown(ls: ArchServer, params: None) -> None:
        for uri in list(ls.analyses):
            ls.cancel(uri)
        ls.background.shutdown(wait=False, cancel_futures=True)

    _register_documents(server)
    _register_requests(server)
    return server


def _register_documents(server: ArchServer) -> None:
    """Opening, editing, saving and closing: each checks (or forgets) what the editor holds."""

    @server.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ArchServer, params: t.DidOpenTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ArchServer, params: t.DidChangeTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ArchServer, params: t.DidSaveTextDocumentParams) -> None:
        for uri in list(ls.analyses):  # a saved file may be imported by the others
            ls.refresh(uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ArchServer, params: t.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.cancel(uri)
        ls.analyses.pop(uri, None)
        ls.published.pop(uri, None)
        ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def _register_requests(server: ArchServer) -> None:
    """Hover, go to definition, completion and the outline: each at a position of a document."""

    @server.feature(t.TEXT_DOCUMENT_HOVER)
    def hover(ls: ArchServer, params: t.HoverParams) -> t.Hover | None:
        a, line, col = ls.at(params.text_document.uri, params.position)
        found = lookup.hover(a, line, col)
        if found is None:
            return None
        text, span = found
        return t.Hover(contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=text),
                       range=ls.range(span, a.text.splitlines(keepends=True)))

    @server.feature(t.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: ArchServer, params: t.DefinitionParams) -> list[t.Location]:
        a, line, col = ls.at(params.text_document.uri, params.position)
        return [ls.location(span) for span in lookup.definition(a, line, col)]

    @server.feature(t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=["@", "(", ","]))
    def completion(ls: ArchServer, params: t.CompletionParams) -> t.CompletionList:
        a, line, col = ls.at(params.text_document.uri, params.position)
        return t.CompletionList(is_incomplete=False, items=[_completion(i) for i in outline.complete(a, line, col)])

    @server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(ls: ArchServer, params: t.DocumentSymbolParams) -> list[t.DocumentSymbol]:
        uri = params.text_document.uri
        a = ls.analyses.get(uri) or ls.refresh(uri)
        lines = a.text.splitlines(keepends=True)
        return [_symbol(s, ls, lines) for s in outline.symbols(a)]

    _register_hints(server)
    _register_formatting(server)


def _register_hints(server: ArchServer) -> None:
    """Output shapes at line ends, for the lines the editor shows."""

    @server.feature(t.TEXT_DOCUMENT_INLAY_HINT, t.InlayHintOptions(resolve_provider=False))
    def inlay_hint(ls: ArchServer, params: t.InlayHintParams) -> list[t.InlayHint]:
        if not ls.options.inlay_hints:
            return []
        a, first, _ = ls.at(params.text_document.uri, params.range.start, refocus=False)
        lines = a.text.splitlines(keepends=True)
        hints = []
        for line, text in lookup.inlay_hints(a, first, params.range.end.line + 1):
            end = len(lines[line - 1].rstrip("\r\n"))
            at = ls.workspace.position_codec.position_to_client_units(lines, t.Position(line=line - 1, character=end))
            hints.append(t.InlayHint(position=at, label=text, kind=t.InlayHintKind.Type, padding_left=True))
        return hints


def _register_formatting(server: ArchServer) -> None:
    """`archspec fmt`'s formatter (archspec/format) as the document formatter."""
    try:
        from ..format import format_text
    except ImportError:  # a build without the formatter: formatting is not offered
        return

    @server.feature(t.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: ArchServer, params: t.DocumentFormattingParams) -> list[t.TextEdit] | None:
        a = ls.analyses.get(params.text_document.uri) or ls.refresh(params.text_document.uri)
        try:
            new = format_text(a.text, a.path)
        except ArchError as exc:  # a spec that does not parse is left as it is; its diagnostics say why
            ls.window_log_message(t.LogMessageParams(type=t.MessageType.Info, message=str(exc)))
            return None
        if new == a.text:
            return []
        lines = a.text.splitlines(keepends=True)
        if not lines or a.text.endswith(("\n", "\r")):
            end = t.Position(line=len(lines), character=0)
        else:  # the end of a last line with no line break
            end = ls.workspace.position_codec.position_to_client_units(
                lines, t.Position(line=len(lines) - 1, character=len(lines[-1])))
        return [t.TextEdit(range=t.Range(start=t.Position(line=0, character=0), end=end), new_text=new)]


def serve(allow_import_outside: bool = False) -> None:
    """Run the server over stdin and stdout until the client says exit."""
    logging.getLogger("pygls").setLevel(logging.WARNING)
    from ..parse import parser

    parser()  # the grammar is loaded before the first message, not while answering it
    sys.setswitchinterval(SWITCH_INTERVAL)  # a new edit gets the GIL from the background check at once
    server = create()
    server.options.allow_import_outside = server.analyzer.allow_import_outside = allow_import_outside
    server.start_io()
