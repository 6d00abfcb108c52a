"""`archspec data fashion-mnist`: unpack the gzip IDX files into the layout torchvision reads.

Debian's `dataset-fashion-mnist` package ships the four files gzipped under
/usr/share/datasets/fashion-mnist/, but recompressed: the MD5s published upstream (and checked
by torchvision's download) are of the original .gz files and do not match. What does match is
the decompressed content, so that is what the project pins, as SHA-256:

    apt-get install dataset-fashion-mnist      # 0.0~git20200523.55506a9-1
    for f in /usr/share/datasets/fashion-mnist/*.gz; do zcat "$f" | sha256sum; done

Stdlib only: no torch is imported to unpack data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from pathlib import Path

from ..errors import ArchError, Diagnostic, error, io_error
from .artifacts import file_mode

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

# decompressed file -> SHA-256 of its content (see the module docstring for how it was obtained)
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# decompressed file -> its size in bytes (a 16- or 8-byte IDX header, then 28x28 images or labels):
# decompression stops past it, so a small gzip bomb cannot fill the disk before the check fails.
SIZES = {
    "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}
FILES = tuple(SHA256)
GZ_FILES = tuple(f"{f}.gz" for f in FILES)
CHUNK = 1 << 20


def default_root() -> Path:
    """Where `--data fashion-mnist` looks and `archspec data` writes: $ARCHSPEC_DATA, else the user cache."""
    if os.environ.get("ARCHSPEC_DATA"):
        return Path(os.environ["ARCHSPEC_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache, "archspec", "data").expanduser()


def raw_folder(root: str | Path) -> Path:
    """torchvision's layout: ROOT/FashionMNIST/raw/ holds the decompressed files."""
    return Path(root) / "FashionMNIST" / "raw"


def not_found(folder: str | Path) -> str:
    """The one-line message for missing files: which, where, and how to get them."""
    return (f"Fashion-MNIST not found in `{folder}`: need {', '.join(GZ_FILES)} there or decompressed in "
            f"`{raw_folder(folder)}`; get them with `apt-get install dataset-fashion-mnist` then "
            f"`archspec data fashion-mnist --to {folder}` (or pass --download)")


def unpack(source: str | Path, root: str | Path) -> list[Path]:
    """Decompress the four files from `source` into ROOT/FashionMNIST/raw/, each checked against SHA256.

    All four are decompressed under temporary names and moved into place only once every one
    of them matches its pin, so a failed or interrupted unpack leaves neither a partial file nor
    a partial set behind (files already there stay as they were), nor a folder it created.
    """
    source, target = Path(source), raw_folder(root)
    found = {f: _input(source, f) for f in FILES}
    missing = [f"{f}.gz" for f, p in found.items() if p is None]
    if missing:
        raise io_error("E701", f"Fashion-MNIST files not found in `{source}`: {', '.join(missing)}; get them with "
                       f"`apt-get install dataset-fashion-mnist` (it puts them in {DEBIAN_DIR}) or pass --from DIR")
    created = _make_folders(target)
    temporaries: dict[str, str] = {}
    try:
        bad: list[Diagnostic] = []
        for name, path in found.items():
            temporaries[name], digest = _decompress(path, target / name, SIZES[name])  # type: ignore[arg-type]
            if digest is None:
                bad.append(Diagnostic("E703", f"`{path}` does not hold the Fashion-MNIST data the project pins: it "
                                              f"decompresses to more than the {SIZES[name]:,} bytes of {name}"))
            elif digest != SHA256[name]:
                bad.append(Diagnostic("E703", f"`{path}` does not hold the Fashion-MNIST data the project pins: "
                                              f"sha256 of its contents {digest}, expected {SHA256[name]}"))
        if bad:
            raise ArchError(bad)
        for name, tmp in temporaries.items():
            os.chmod(tmp, file_mode())  # mkstemp's 0600 would make the data private to this user
            os.replace(tmp, target / name)
    except OSError as exc:
        raise io_error("E001", f"cannot write to `{target}`: {exc.strerror or exc}") from None
    finally:
        for tmp in temporaries.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        if any(not (target / name).is_file() for name in FILES):
            _remove_empty(created)
    return [target / name for name in FILES]


def _make_folders(target: Path) -> list[Path]:
    """mkdir -p `target`; the folders it created, deepest first (removed again if the unpack fails)."""
    created = [p for p in (target, *target.parents) if not p.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise io_error("E001", f"cannot write to `{target}`: {exc.strerror or exc}") from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else wrote there meanwhile) or gone: leave it
            return


def _input(source: Path, name: str) -> Path | None:
    for candidate in (source / f"{name}.gz", source / name, raw_folder(source) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _decompress(path: Path, dest: Path, size: int) -> tuple[str, str | None]:
    """Decompress (or copy) `path` into a temporary file beside `dest`: (its name, the content's SHA-256,
    or None when it holds more than `size` bytes, where it stops)."""
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out, _open(path) as src:
            while block := src.read(min(CHUNK, size + 1 - written)):
                h.update(block)
                out.write(block)
                written += len(block)
                if written > size:
                    return tmp, None
    except (OSError, EOFError, zlib.error) as exc:
        os.unlink(tmp)
        raise error("E702", f"cannot read `{path}`: {getattr(exc, 'strerror', None) or exc}") from None
    except BaseException:  # Ctrl-C: no temporary left behind
        os.unlink(tmp)
        raise
    return tmp, h.hexdigest()


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
