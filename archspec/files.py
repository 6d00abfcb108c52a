"""Files in and out. In: read through a bounded reader that takes regular files only. Out: whole or
not at all, with the mode a plain open() would give them."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import Span, io_error


def read_regular(path: str, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or an I/O error (exit 2).

    A device (`/dev/zero` reports a size of 0 and never ends), a FIFO (opening it blocks until
    someone writes), a socket or a folder is refused before it is read; a link loop is an error,
    not a hang. The file is opened without blocking and checked again once open, and no more than
    `limit` + 1 bytes are ever read, whatever its size claims.
    """
    span = Span(path)
    try:
        st = os.stat(path)
        _check_kind(st, path, what)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise io_error("E001", "no such file", span) from None
    except OSError as exc:
        why = "a loop of symbolic links" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise io_error("E001", f"cannot read file: {why}", span) from None
    try:
        _check_kind(os.fstat(fd), path, what)  # what was opened, not what the path named a moment before
        chunks, total = [], 0
        while total <= limit:
            block = os.read(fd, min(1 << 20, limit + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
    except OSError as exc:
        raise io_error("E001", f"cannot read file: {exc.strerror or exc}", span) from None
    finally:
        os.close(fd)
    if total > limit:
        raise io_error("E004", f"file is too large (over {limit:,} bytes, the limit for a {what})", span)
    return b"".join(chunks)


def _check_kind(st: os.stat_result, path: str, what: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise io_error("E006", f"`{path}` is a directory, not a {what}", Span(path))
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise io_error("E007", f"`{path}` is {kind}, not a regular file: archspec reads only regular files",
                       Span(path))


def file_mode() -> int:
    """The mode a plain open() would give a new file: 0666 less the umask (0644 under the usual 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def check_output_file(path: str | Path) -> None:
    """Refuse, before any work, an output file path that is a folder, a link or a device, or whose
    folder is missing or read-only (E604, E001; exit 2)."""
    path = str(path)
    if os.path.isdir(path):
        raise io_error("E604", f"the output path `{path}` is a folder, not a file", Span(path))
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
        raise io_error("E604", f"the output path `{path}` is not a regular file (a link or a device); "
                               "give the path of a file to write", Span(path))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise io_error("E001", f"cannot write `{path}`: the folder `{folder}` does not exist", Span(path))
    check_writable(folder, path)


def check_writable(folder: str | Path, shown: str | Path | None = None) -> None:
    """Refuse a folder no file can be written in (E001, exit 2). access(2) answers for a read-only file
    system even to root, who may write anywhere else; nothing is written to find out."""
    shown = str(shown if shown is not None else folder)
    if os.access(folder, os.W_OK | os.X_OK):
        return
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    why = "Read-only file system" if read_only else "Permission denied"
    raise io_error("E001", f"cannot write to `{folder}`: {why}", Span(shown))


def nearest_existing(path: str | Path) -> Path:
    """`path` itself if it exists, else the closest folder above it that does (what `mkdir -p` would write in)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call write(tmp) for a temporary file beside `path`, then move it onto `path` in one step.
    Any failure leaves `path` as it was and no temporary behind (E001)."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would make the file private
        os.replace(tmp, path)
    except OSError as exc:
        raise io_error("E001", f"cannot write `{path}`: {exc.strerror or exc}", Span(str(path))) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
