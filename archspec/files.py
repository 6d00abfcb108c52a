"""Writing output files: whole or not at all, with the mode a plain open() would give them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import Span, io_error


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
    if not os.access(folder, os.W_OK):
        raise io_error("E001", f"cannot write `{path}`: the folder `{folder}` is not writable", Span(path))


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
