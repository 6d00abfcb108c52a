"""`archspec fmt [--check] [--diff] FILE...`: rewrite specs in the one canonical layout.

The layout and its guarantees live in archspec/format. Here: which files change, the messages
(on stderr, as black writes them; a diff on stdout) and the exit status: 0 when every file is
(now) formatted, 1 with --check when one would change or when a file does not parse (it is left
as it was), 2 when a file cannot be read or written, 3 on a formatter bug (E880).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile

from ..errors import EXIT_INTERNAL, EXIT_OK, EXIT_SPEC, ArchError, Sources, Span, io_error


def add_parser(sub) -> None:
    p = sub.add_parser("fmt", help="format specs in the one canonical layout, as black formats Python")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--check", action="store_true",
                   help="write nothing; list the files that would change and exit 1 if any would")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")


def run(args: argparse.Namespace) -> int:
    from ..cli import report
    from ..format import FormatterBug, format_text
    from ..parse import read_source

    sources = Sources()
    worst = EXIT_OK
    counts = {"reformatted": 0, "unchanged": 0, "failed": 0}
    for path in dict.fromkeys(args.files):  # a file named twice is formatted once
        try:
            text = read_source(path)
            sources.texts[path] = text
            out = format_text(text, path)
            if out != text and not (args.check or args.diff):
                write_keeping_mode(path, out)
        except ArchError as exc:
            report(exc.diagnostics, sources)
            worst = max(worst, EXIT_INTERNAL if isinstance(exc, FormatterBug) else exc.exit_code)
            counts["failed"] += 1
            continue
        if out == text:
            counts["unchanged"] += 1
            continue
        counts["reformatted"] += 1
        if args.diff:
            sys.stdout.write(unified_diff(text, out, path))
        if args.check:
            worst = max(worst, EXIT_SPEC)
        if not args.quiet:
            print(f"{'would reformat' if args.check or args.diff else 'reformatted'} {path}", file=sys.stderr)
    if not args.quiet:
        print(_tally(counts, args.check or args.diff), file=sys.stderr)
    return worst


def _tally(counts: dict[str, int], dry: bool) -> str:
    def n(k: int) -> str:
        return f"{k} file{'s' * (k != 1)}"

    parts = [f"{n(counts['reformatted'])} {'would be ' if dry else ''}reformatted",
             f"{n(counts['unchanged'])} {'would be ' if dry else ''}left unchanged"]
    if counts["failed"]:
        parts.append(f"{n(counts['failed'])} failed")
    return ", ".join(parts) + "."


def unified_diff(before: str, after: str, path: str) -> str:
    """A diff that `patch -p0` applies; a last line without a newline is marked as diff marks it."""
    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"{path}\t(original)",
                                 f"{path}\t(formatted)")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def write_keeping_mode(path: str, text: str) -> None:
    """Replace the file in one step (a temporary file beside it, then a rename), keeping its permissions,
    and writing through a symbolic link to the file it names; nothing is left half-written (E001)."""
    real = os.path.realpath(path)
    tmp = None
    try:
        mode = os.stat(real).st_mode & 0o7777
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", dir=os.path.dirname(real))
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, real)
        tmp = None
    except OSError as exc:
        raise io_error("E001", f"cannot write `{path}`: {exc.strerror or exc}", Span(path)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
