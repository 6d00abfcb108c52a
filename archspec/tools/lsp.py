"""`archspec lsp`: the language server, over stdin and stdout (the server is archspec/lsp/)."""

from __future__ import annotations

import argparse
import sys

from ..errors import EXIT_OK, EXIT_USAGE, Diagnostic, render


def add_parser(sub) -> None:
    p = sub.add_parser("lsp", help="run the language server (diagnostics, hover, completion, ...) over stdio, "
                       "for an editor to start")
    p.add_argument("--stdio", action="store_true", help="talk over stdin and stdout (the default and only way)")
    p.add_argument("--allow-import-outside", action="store_true",
                   help="let imports reach files outside each spec's folder (by default they may not)")


def run(args: argparse.Namespace) -> int:
    try:
        from ..lsp.features import serve
    except ImportError as exc:  # pygls or lsprotocol missing: say what to install
        missing = exc.name or "pygls"
        print(render(Diagnostic("E890", f"the language server needs {missing}: pip install 'archspec[lsp]'",
                                io=True)), file=sys.stderr)
        return EXIT_USAGE
    serve(allow_import_outside=args.allow_import_outside)
    return EXIT_OK
