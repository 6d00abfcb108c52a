"""A compile's output folder: checked before any work, staged beside, swapped into place as one unit.

The artifacts of a compile are one set: a `.py`, `.pt`, `.pt2` and `.onnx` of the same spec,
weights and seed, and `archspec-manifest.json` naming them. They are written into a staging
folder beside the target and published by exchanging the two folders in one step (Linux's
renameat2 RENAME_EXCHANGE; elsewhere two renames, never leaving a mixed set), so the target
holds either the whole previous set or the whole new one: never a new `.pt` beside an old
`.onnx`, and never a format a previous compile wrote that this one did not.

Because the folder is replaced whole, it must be archspec's to replace: new, empty, or holding
only a previous compile of the same network. Anything else in it is refused (E604) before any
work, as are a link that leads nowhere, a file, and a place no file can be written (E001).
SIGTERM and SIGHUP, like Ctrl-C, stop a compile with its staging folder removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import Span, io_error
from .files import check_writable, file_mode, nearest_existing

MANIFEST = "archspec-manifest.json"
ARTIFACT_SUFFIXES = (".py", ".pt", ".pt2", ".onnx", ".onnx.data")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP during a compile: unwinds like Ctrl-C, so every cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def check_target(target: Path, network: str) -> Path:
    """The real folder a compile will replace, after refusing what it must not (E604, E001; exit 2)."""
    shown = str(target)
    if target.is_symlink() and not target.exists():
        raise io_error("E604", f"the output folder `{shown}` is a link to `{os.readlink(target)}`, which does not "
                               "exist", Span(shown))
    real = Path(os.path.realpath(target))
    if real.exists() and not real.is_dir():
        raise io_error("E604", f"the output path `{shown}` is a file, not a folder", Span(shown))
    cwd = Path(os.getcwd())
    if real == cwd or real in cwd.parents:
        raise io_error("E604", f"the output folder `{shown}` holds the working folder; a compile replaces its "
                               "output folder whole: name a folder of its own, such as build/" + network, Span(shown))
    if real.is_dir():
        foreign = sorted(set(os.listdir(real)) - _ours(real, network))
        if foreign:
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            raise io_error("E604", f"the output folder `{shown}` holds files this compile would remove: "
                                   f"{', '.join(foreign[:5])}{more}", Span(shown),
                           "a compile replaces its folder whole; give each network a folder of its own, new or "
                           "written by archspec for the same network")
    check_writable(nearest_existing(real.parent), shown)
    return real


def _ours(folder: Path, network: str) -> set[str]:
    """The files in `folder` that a previous compile of `network` wrote (its manifest names them)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and manifest.get("network") == network and isinstance(manifest.get("files"),
                                                                                             list):
            return {MANIFEST, *(f for f in manifest["files"] if isinstance(f, str))}
    except (OSError, ValueError):
        pass
    # A folder compiled before manifests existed: the artifacts named after the network.
    return {network + suffix for suffix in ARTIFACT_SUFFIXES}


@contextlib.contextmanager
def staged(real: Path) -> Iterator[Path]:
    """A fresh staging folder beside `real` (on its file system), removed however the block ends; folders
    made above `real` for it are removed too unless the block published (see publish)."""
    parent = real.parent
    created = [d for d in (parent, *parent.parents) if not d.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{real.name}.staging.", dir=parent))
    except OSError as exc:
        raise io_error("E001", f"cannot write to `{parent}`: {exc.strerror or exc}", Span(str(real))) from None
    try:
        with _signals_unwind():
            yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not real.exists():
            for d in created:  # deepest first
                with contextlib.suppress(OSError):
                    d.rmdir()


def publish(staging: Path, real: Path, network: str, files: list[str], extra: dict) -> None:
    """Write the manifest into `staging`, then make `staging` the folder `real` in one step."""
    manifest = {"archspec": extra.get("version"), "network": network, "files": sorted(files),
                **{k: v for k, v in extra.items() if k != "version"}}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    mode = file_mode()
    for name in (*files, MANIFEST):
        os.chmod(staging / name, mode)
    os.chmod(staging, mode | ((mode & 0o444) >> 2))  # a folder, as mkdir would make it (mkdtemp's is 0700)
    with _signals_blocked():
        if not real.exists():
            os.rename(staging, real)
            return
        _exchange(staging, real)
    shutil.rmtree(staging, ignore_errors=True)  # now the previous set


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders: atomically where the kernel can, else by two renames that never mix the sets."""
    if _renameat2(a, b):
        return
    old = Path(tempfile.mkdtemp(prefix=f".{b.name}.previous.", dir=b.parent))
    os.rmdir(old)
    os.rename(b, old)
    try:
        os.rename(a, b)
    except OSError:
        os.rename(old, b)  # put the previous set back
        raise
    os.rename(old, a)  # the caller removes `a`, now holding the previous set


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _renameat2(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated (a KeyboardInterrupt) while the block runs, so cleanups run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while the folders are swapped: the swap is not interrupted halfway."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
