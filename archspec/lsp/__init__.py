"""The language server (`archspec lsp`): diagnostics as you type, hover, inlay hints, go to
definition, completion, document symbols and formatting, for editors that speak the Language
Server Protocol.

The work is split so that only two modules know the protocol (and import pygls):

    chunks.py     a document's text -> its top-level items, each parsed once and kept by its text
    analysis.py   a document -> its program, its networks and their diagnostics, kept between edits
    lookup.py     positions -> the syntax and the expanded nodes there: hover, inlay hints, definitions
    outline.py    the document's symbols, and completion
    server.py     the server's state: documents checked as they change, diagnostics published
    features.py   the protocol's requests, answered from the above in lsprotocol's types
    client.py     a small stdio client (JSON-RPC by hand), for the tests and the benchmark

Everything but server.py and features.py is plain Python over archspec's own data.
"""
