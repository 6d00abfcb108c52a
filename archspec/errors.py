"""One family of errors: a Span, a Diagnostic, and ArchError that carries them.

Every mistake a user can make is reported as a Diagnostic with a stable code (listed in
docs/errors.md) and a source position; foreign exceptions (lark, pydantic, torch, onnx) are
turned into these where they enter, so users never see a traceback for their own mistake.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from typing import Iterable

# Exit statuses, the same for every command (documented in the README).
EXIT_OK = 0
EXIT_SPEC = 1  # a problem in the user's spec or data
EXIT_USAGE = 2  # usage or I/O errors
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 3  # a bug in archspec itself


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source file; lines and columns count from 1, end is exclusive."""

    file: str = "<input>"
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file


NO_SPAN = Span()


@dataclass(frozen=True)
class Diagnostic:
    code: str  # "E204"; a code starting with W is a warning
    message: str
    span: Span = NO_SPAN
    notes: tuple[str, ...] = ()
    io: bool = False  # usage or I/O problem (exit 2) rather than a spec problem (exit 1)
    promoted: bool = False  # a warning made an error by --werror; it keeps its W code

    @property
    def severity(self) -> str:
        return "warning" if self.code.startswith("W") and not self.promoted else "error"

    def sort_key(self) -> tuple:
        return (self.span.file, self.span.line, self.span.column, self.code)

    def as_warning_error(self) -> "Diagnostic":
        """The same diagnostic promoted to an error (for --werror), under the same code.

        Keeping the code (`error[W601]`, as compilers print `-Werror=...`) keeps codes stable and
        unique: an E code made from a W code could clash with a real error's.
        """
        return Diagnostic(self.code, self.message + " [-Werror]", self.span, self.notes, promoted=True)


class ArchError(Exception):
    """Raised with one or more diagnostics; the CLI prints them and exits 1 (or 2 for I/O)."""

    def __init__(self, diagnostics: Iterable[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__("\n".join(f"{d.span}: {d.severity}[{d.code}]: {d.message}" for d in self.diagnostics))

    @property
    def exit_code(self) -> int:
        return EXIT_USAGE if any(d.io for d in self.diagnostics) else EXIT_SPEC


def error(code: str, message: str, span: Span = NO_SPAN, *notes: str) -> ArchError:
    return ArchError(Diagnostic(code, message, span, tuple(notes)))


def io_error(code: str, message: str, span: Span = NO_SPAN, *notes: str) -> ArchError:
    return ArchError(Diagnostic(code, message, span, tuple(notes), io=True))


_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|[\x00-\x08\x0b-\x1f\x7f]")


def foreign_text(exc: BaseException | str, limit: int = 300) -> str:
    """What a foreign tool's error says, fit for one line of ours: terminal escapes and control
    characters stripped, its first line that says something, cut to `limit` characters."""
    text = _ESCAPES.sub("", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean `x`?)' for the closest choice, or ''."""
    return _did_you_mean(word, tuple(sorted(set(choices))))


@functools.lru_cache(maxsize=1024)  # a spec with the same typo a thousand times pays for it once
def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close and word.lower() in {c.lower() for c in choices}:
        close = [c for c in choices if c.lower() == word.lower()][:1]
    return f"; did you mean `{close[0]}`?" if close else ""


@dataclass
class Sources:
    """The text of every file read in a run, so diagnostics can quote their line."""

    texts: dict[str, str] = field(default_factory=dict)
    _lines: dict[str, tuple[str, list[str]]] = field(default_factory=dict, repr=False, compare=False)

    def line(self, file: str, line: int) -> str | None:
        text = self.texts.get(file)
        if text is None or line < 1:
            return None
        cached = self._lines.get(file)
        if cached is None or cached[0] is not text:  # split each file once, however many diagnostics
            cached = self._lines[file] = (text, text.splitlines())
        lines = cached[1]
        return lines[line - 1] if line <= len(lines) else ""


def render(diag: Diagnostic, sources: Sources | None = None) -> str:
    """`file:line:col: error[E123]: message`, the source line and carets under the spot."""
    where = "archspec" if diag.span == NO_SPAN else str(diag.span)
    head = f"{where}: {diag.severity}[{diag.code}]: {diag.message}"
    out = [head]
    src = sources.line(diag.span.file, diag.span.line) if sources else None
    if src is not None and diag.span.line:
        width = 1
        if diag.span.end_line == diag.span.line and diag.span.end_column > diag.span.column:
            width = diag.span.end_column - diag.span.column
        gutter = f"{diag.span.line:>4} | "
        shown, column, width = _window(src, diag.span.column, width)
        out.append(gutter + shown.replace("\t", " "))  # a tab shows as one space: the caret stays under the spot
        out.append(" " * (len(gutter) + column - 1) + "^" * max(1, width))
    out.extend(f"     = note: {n}" for n in diag.notes)
    return "\n".join(out)


SHOWN = 100  # the most characters of a source line quoted; a longer line is cut around the spot


def _window(src: str, column: int, width: int) -> tuple[str, int, int]:
    """The part of a long line around `column` (with `...` where cut), the column in it, the width."""
    if len(src) <= SHOWN:
        return src, column, width
    start = max(0, min(column - 1 - SHOWN // 4, len(src) - SHOWN))
    head = "..." if start else ""
    tail = "..." if start + SHOWN < len(src) else ""
    column = column - start + len(head)
    return head + src[start: start + SHOWN] + tail, column, min(width, SHOWN + len(head) - column + 1)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(diag: Diagnostic) -> str:
    """A GitHub Actions workflow command, so the error shows on the pull request's line.

    Values are escaped as the runner expects: `%`, CR and LF everywhere, and `:` and `,` in the
    properties too, so any file name or message keeps the command whole."""
    kind = "warning" if diag.severity == "warning" else "error"
    msg = _escape_data(diag.message + "".join("\n" + n for n in diag.notes))
    loc = f"file={_escape_property(diag.span.file)}"
    if diag.span.line:
        loc += f",line={diag.span.line},col={diag.span.column}"
        if diag.span.end_line:
            loc += f",endLine={diag.span.end_line},endColumn={diag.span.end_column}"
    return f"::{kind} {loc},title={_escape_property(diag.code)}::{msg}"


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render_sarif(diags: Iterable[Diagnostic], version: str, titles: dict[str, str] | None = None) -> dict:
    """The diagnostics as a SARIF 2.1.0 log for code scanning: one run of the tool `archspec`, whose rules
    are the codes used (titled from `titles`, {code: title}), and a result per diagnostic with its
    rule, level, message (notes on lines below it) and place. Columns count characters, as ours do."""
    ordered = sorted(diags, key=Diagnostic.sort_key)
    codes = sorted({d.code for d in ordered})
    rules = [_sarif_rule(code, (titles or {}).get(code), ordered) for code in codes]
    results = []
    for d in ordered:
        result = {"ruleId": d.code, "ruleIndex": codes.index(d.code),
                  "level": "warning" if d.severity == "warning" else "error",
                  "message": {"text": "\n".join((d.message, *d.notes))}}
        if d.span.file and not d.span.file.startswith("<"):  # `<input>`, `<--set k>`: no file to point at
            where: dict = {"artifactLocation": {"uri": _file_uri(d.span.file)}}
            if d.span.line:
                where["region"] = {"startLine": d.span.line, "startColumn": max(1, d.span.column)}
                if d.span.end_line >= d.span.line and d.span.end_column:
                    where["region"].update(endLine=d.span.end_line, endColumn=d.span.end_column)
            result["locations"] = [{"physicalLocation": where}]
        results.append(result)
    driver = {"name": "archspec", "version": version, "rules": rules}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": results}]}


def _sarif_rule(code: str, title: str | None, diags: list[Diagnostic]) -> dict:
    warning = code.startswith("W") and not any(d.promoted for d in diags if d.code == code)
    text = f"{code}: {title}" if title else code
    return {"id": code, "shortDescription": {"text": text},
            "help": {"text": f"{text}. Each code is explained in archspec's docs/errors.md."},
            "defaultConfiguration": {"level": "warning" if warning else "error"}}


def _file_uri(path: str) -> str:
    """A relative path as a relative URI (from the folder the run started in: the repository, in CI),
    an absolute one as a file: URI."""
    from pathlib import Path, PurePath
    from urllib.parse import quote

    p = PurePath(path)
    return Path(path).as_uri() if p.is_absolute() else quote(p.as_posix())


@functools.lru_cache(maxsize=1)
def code_titles() -> dict[str, str]:
    """Each code's title from docs/errors.md's headings (`### E401 output size zero or less`), where the docs
    sit beside the package (a checkout or an editable install); none otherwise."""
    from pathlib import Path

    try:
        text = (Path(__file__).resolve().parent.parent / "docs" / "errors.md").read_text(encoding="utf-8")
    except OSError:
        return {}
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^#{2,4} ([EW]\d{3}) (.+)$", text, re.M)}


def as_json(diag: Diagnostic) -> dict:
    return {
        "code": diag.code,
        "severity": diag.severity,
        "message": diag.message,
        "file": diag.span.file,
        # A file-level problem (missing, empty, no network) has no position: null, not 0.
        "line": diag.span.line or None,
        "column": diag.span.column or None,
        "end_line": diag.span.end_line or None,
        "end_column": diag.span.end_column or None,
        "notes": list(diag.notes),
    }
