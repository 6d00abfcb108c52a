"""What `archspec check` found for a file that checked clean, kept so that the next check of the same
text answers without parsing or expanding it again, as mypy and ruff keep theirs.

An entry is one JSON file per spec file and set of options, named by a hash of both (the path as
given and its real path: the lines it prints name the file as given). It holds the lines the check
printed, its JSON record, and every file the check read (the spec and all it imports, by real path)
with a hash of its text: the entry is used only while each of them still has that text, and only by
the same archspec (a hash of its own source files and grammar, and the Python and lark versions).
Only a file with no diagnostic at all is kept: errors and warnings are always found afresh, with the
source lines they quote. Writes are atomic (a temporary file, then a rename) and respect the umask;
a cache folder that cannot be read or written is passed over silently, and a damaged entry is a miss.

The folder is `.archspec_cache` in the working folder (marked with a CACHEDIR.TAG and a .gitignore
that ignores it all), or $ARCHSPEC_CACHE_DIR, or --cache-dir; --no-cache or ARCHSPEC_NO_CACHE=1
turns it off. This module imports nothing of the parser or the IR: a check answered from the cache
costs the interpreter's start and a hash of the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import ArchError
from .files import atomic_write, write_text

FORMAT = 1  # of an entry; a change makes every older entry a miss
DEFAULT = ".archspec_cache"
TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
       "# This file is a cache directory tag created by archspec.\n"
       "# For information about cache directory tags see https://bford.info/cachedir/\n")
_PACKAGE = Path(__file__).resolve().parent
_fingerprint: str | None = None


def folder(given: str | None, disabled: bool) -> Path | None:
    """The cache folder a command uses, or None when caching is off."""
    if disabled or os.environ.get("ARCHSPEC_NO_CACHE", "") not in ("", "0"):
        return None
    return Path(given or os.environ.get("ARCHSPEC_CACHE_DIR") or DEFAULT)


def fingerprint() -> str:
    """This archspec: its source files and grammar, with the versions of Python and lark it runs on."""
    global _fingerprint
    if _fingerprint is None:
        h = hashlib.sha256(f"{FORMAT} {sys.version} {_lark_version()}".encode())
        for path in sorted(_PACKAGE.rglob("*")):
            if path.suffix in (".py", ".lark") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(_PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
        _fingerprint = h.hexdigest()
    return _fingerprint


def _lark_version() -> str:
    """lark's version, read from its package without importing it (that costs more than the check saved)."""
    import importlib.util

    spec = importlib.util.find_spec("lark")
    if spec is None or spec.origin is None:
        return "none"
    init = Path(spec.origin).read_text(encoding="utf-8", errors="replace")
    for line in init.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "unknown"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _entry_path(root: Path, file: str, options: dict[str, Any]) -> Path:
    key = json.dumps([file, os.path.realpath(file), options], sort_keys=True)
    return root / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def get(root: Path, file: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """The entry of a file checked clean with these options, if every file it read is unchanged."""
    try:
        entry = json.loads(_entry_path(root, file, options).read_text(encoding="utf-8"))
        if entry.get("archspec") != fingerprint() or entry.get("file") != file:
            return None
        for real, digest in entry["read"]:
            if _current_hash(real) != digest:
                return None
        return {"lines": list(entry["lines"]), "networks": list(entry["networks"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _current_hash(real: str) -> str | None:
    """The hash of a file's text as the loader reads it (UTF-8, a byte-order mark dropped)."""
    try:
        with open(real, "rb") as f:
            data = f.read()
        return text_hash(data.decode("utf-8").lstrip("\ufeff"))
    except (OSError, UnicodeDecodeError):
        return None


def put(root: Path, file: str, options: dict[str, Any], read: dict[str, str], lines: list[str],
        networks: list[dict[str, Any]]) -> None:
    """Keep what a clean check of `file` printed; `read` maps each file it read (its path as loaded) to
    the text that was checked. Nothing is kept where the cache folder cannot be written."""
    entry = {"archspec": fingerprint(), "file": file, "options": options,
             "read": [[os.path.realpath(p), text_hash(t)] for p, t in read.items()],
             "lines": lines, "networks": networks}
    try:
        _prepare(root)
        text = json.dumps(entry)  # key order kept: the JSON report prints the records as they are
        atomic_write(_entry_path(root, file, options), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except (OSError, TypeError, ValueError, ArchError):
        return


def _prepare(root: Path) -> None:
    if (root / "CACHEDIR.TAG").exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / ".gitignore", "# made by archspec: its cache is never committed\n*\n")
    write_text(root / "CACHEDIR.TAG", TAG)
