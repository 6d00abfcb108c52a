"""Inputs for calibration and evaluation: Fashion-MNIST as `archspec train` feeds it, or arrays in a file.

`fashion-mnist[:ROOT]` is preprocessed exactly as training preprocesses it (archspec/train/data.py:
torchvision's Resize on the PIL image to the network's size, the gray channel repeated for RGB
networks, pixels / 255): calibration draws from the training split, evaluation takes the whole
test split. A `.npy` holds inputs `[N, C, H, W]` as the network takes them (already preprocessed);
an `.npz` holds inputs (`x`) and, for evaluation, integer labels (`y`).

Files are read without pickles, and their headers (shape and type) are checked before a byte
of data is: a file that would not fit in memory, holds objects, or has the wrong shape is
refused first. Every problem is a located error with exit status 2 (E620-E624).
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from .. import ir
from ..errors import ArchError, Diagnostic, Span, io_error

FASHION = "fashion-mnist"
INPUT_KEYS = ("x", "inputs", "images")
LABEL_KEYS = ("y", "labels", "targets")
SEED = 0  # which training images calibrate: a fixed draw, so a compile is reproducible


@dataclass
class Samples:
    x: np.ndarray  # float32 [N, *input_shape]
    y: np.ndarray | None  # int64 [N], or None without labels
    description: str  # what they are, for the report: "512 of Fashion-MNIST's 60,000 training images (ROOT)"


def check_network(net: ir.Network) -> None:
    """Low precision runs networks of one input (E626): calibration and evaluation feed that input."""
    if len(net.graph.inputs) != 1:
        raise io_error("E626", f"--precision needs a network of one input; `{net.name}` has "
                               f"{len(net.graph.inputs)}")


def read(source: str, net: ir.Network, role: str, limit: int | None = None) -> Samples:
    """The inputs (and labels) of `source` for `role` ('calibrate' or 'evaluate'), at most `limit` of them."""
    if source == FASHION or source.startswith(FASHION + ":"):
        root = source.partition(":")[2]
        return _fashion(Path(os.path.expanduser(root)) if root else None, net, role, limit)
    return _file(source, net, role, limit)


def synthetic(net: ir.Network, n: int, why: str = "no --calibrate: for timing only") -> Samples:
    """Uniform [0, 1) inputs where the user gave none: enough to time an int8 model or compare a low precision
    with fp32 on the same inputs, not to judge its accuracy."""
    x = np.random.default_rng(SEED).random((n, *net.input_shape), dtype=np.float32)
    return Samples(x, None, f"{n} random inputs, uniform in [0, 1) ({why})")


# ---- Fashion-MNIST ----------------------------------------------------------------------------

def _fashion(root: Path | None, net: ir.Network, role: str, limit: int | None) -> Samples:
    from ..train.data import CLASSES, Images, fashion_mnist, transform
    from ..train.unpack import default_root

    root = root or default_root()
    shape = net.input_shape
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise io_error("E623", f"Fashion-MNIST gives images [1 or 3, H, W]; `{net.name}` takes input {list(shape)}",
                       Span(str(root)))
    if role == "evaluate" and tuple(net.out_shape) != (len(CLASSES),):
        raise io_error("E624", f"Fashion-MNIST has {len(CLASSES)} classes; `{net.name}` gives output "
                               f"{list(net.out_shape)}", Span(str(root)), "pass --set num_classes=10")
    try:
        (xt, yt), (xv, yv) = fashion_mnist(root)
    except ArchError as exc:
        raise _as_ours(exc, root) from None
    images, labels, split = (xt, yt, "training") if role == "calibrate" else (xv, yv, "test")
    total = len(labels)
    if total == 0:
        raise io_error("E622", f"Fashion-MNIST's {split} split in `{root}` holds no images", Span(str(root)))
    pick = np.arange(total)
    if limit is not None and limit < total:
        pick = np.sort(np.random.default_rng(SEED).choice(total, limit, replace=False))
    ds = Images(images[pick], labels[pick], transform(shape[0], tuple(shape[1:]), (28, 28)))
    x = np.empty((len(pick), *shape), dtype=np.float32)
    for i in range(len(pick)):
        x[i] = ds[i][0].numpy()
    x /= 255  # ToTensor's arithmetic, as training scales its uint8 pixels
    which = f"all {total:,}" if len(pick) == total else f"{len(pick):,} of the {total:,}"
    labels = ds.labels.numpy().astype(np.int64) if role == "evaluate" else None  # calibration needs none
    return Samples(x, labels, f"{which} {split} images of Fashion-MNIST in `{root}`")


def _as_ours(exc: ArchError, root: Path) -> ArchError:
    """The training loader's E701 (not found) and E702 (unreadable) as this command's E620 and E621."""
    out = []
    for d in exc.diagnostics:
        code = "E620" if d.code == "E701" else "E621"
        message = d.message.replace(" (or pass --download)", "")
        out.append(Diagnostic(code, message, Span(str(root)), d.notes, io=True))
    return ArchError(out)


# ---- .npy and .npz ----------------------------------------------------------------------------

def _file(path: str, net: ir.Network, role: str, limit: int | None) -> Samples:
    span = Span(path)
    suffix = Path(path).suffix.lower()
    if os.path.isdir(path):
        raise io_error("E621", f"`{path}` is a folder; for Fashion-MNIST in it write `{FASHION}:{path}`", span)
    if suffix not in (".npy", ".npz"):
        raise io_error("E621", f"`{path}` is neither `{FASHION}[:ROOT]` nor an .npy or .npz file", span)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise io_error("E620", "no such file", span) from None
    except OSError as exc:
        raise io_error("E620", f"cannot read the file: {exc.strerror or exc}", span) from None
    if not stat.S_ISREG(st.st_mode):
        raise io_error("E621", f"`{path}` is not a regular file", span)
    try:
        if suffix == ".npy":
            x = _npy(path, net, limit)
            y = None
        else:
            x, y = _npz(path, net, role, limit)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise io_error("E621", f"cannot read `{path}`: {_reason(exc)}", span) from None
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise io_error("E623", f"the inputs hold {bad:,} NaN or infinite values", span)
    n = f"{len(x):,} input{'s' * (len(x) != 1)}"
    return Samples(x, y, f"{n}{' with labels' if y is not None else ''} of `{os.path.basename(path)}`")


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _header(fh) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"an .npy of version {version[0]}.{version[1]}, which archspec does not read")
    return tuple(shape), dtype


def _check_inputs(shape: tuple[int, ...], dtype: np.dtype, net: ir.Network, where: str) -> None:
    want = tuple(net.input_shape)
    if dtype.kind not in "fiu":
        raise io_error("E623", f"the inputs are of type {dtype}; they must be numbers (float32, as the network takes "
                               "them)", Span(where))
    if shape[1:] != want or len(shape) != len(want) + 1:
        raise io_error("E623", f"inputs of shape {list(shape)}; `{net.name}` takes [N, {', '.join(map(str, want))}]",
                       Span(where), "the first axis counts the samples; preprocess them as for the network")
    if shape[0] == 0:
        raise io_error("E622", "the file holds no inputs (0 samples)", Span(where))
    _check_memory(prod(shape) * max(dtype.itemsize, 4), where)


def _check_memory(nbytes: int, where: str) -> None:
    from ..codegen.build import available_memory

    have = available_memory()
    if have is not None and nbytes > have // 2:
        raise io_error("E621", f"the inputs would take {nbytes / 2**30:.1f} GiB once read; this machine has "
                               f"{have / 2**30:.1f} GiB available", Span(where), "pass fewer samples")


def _npy(path: str, net: ir.Network, limit: int | None) -> np.ndarray:
    with open(path, "rb") as fh:
        shape, dtype = _header(fh)
    _check_inputs(shape, dtype, net, path)
    x = np.load(path, mmap_mode="r", allow_pickle=False)
    return np.array(x[:limit], dtype=np.float32)


def _npz(path: str, net: ir.Network, role: str, limit: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    with zipfile.ZipFile(path) as zf:
        names = {n.removesuffix(".npy"): n for n in zf.namelist() if n.endswith(".npy")}
        xkey = next((k for k in INPUT_KEYS if k in names), None)
        if xkey is None and len(names) == 1:
            xkey = next(iter(names))
        if xkey is None:
            raise io_error("E621", f"`{path}` holds no inputs: name them {' or '.join(INPUT_KEYS)} "
                                   f"(it holds {', '.join(sorted(names)) or 'no arrays'})", Span(path))
        with zf.open(names[xkey]) as fh:
            shape, dtype = _header(fh)
        _check_inputs(shape, dtype, net, path)
        with zf.open(names[xkey]) as fh:
            x = np.lib.format.read_array(fh, allow_pickle=False)[:limit]
        ykey = next((k for k in LABEL_KEYS if k in names), None)
        if ykey is None or role == "calibrate":  # calibration reads inputs only
            return x, None
        with zf.open(names[ykey]) as fh:
            yshape, ydtype = _header(fh)
        if ydtype.kind not in "iu" or len(yshape) != 1 or yshape[0] != shape[0]:
            raise io_error("E624", f"the labels `{ykey}` are {ydtype} of shape {list(yshape)}; they must be integers "
                                   f"of shape [{shape[0]}], one class per input", Span(path))
        with zf.open(names[ykey]) as fh:
            y = np.lib.format.read_array(fh, allow_pickle=False)[:limit].astype(np.int64)
    _check_labels(y, net, path)
    return x, y


def _check_labels(y: np.ndarray, net: ir.Network, where: str) -> None:
    out = tuple(net.out_shape)
    if len(out) != 1:
        raise io_error("E624", f"labels need a network that gives one score per class; `{net.name}` gives "
                               f"{list(out)}", Span(where))
    bad = np.flatnonzero((y < 0) | (y >= out[0]))
    if len(bad):
        raise io_error("E624", f"label {int(y[bad[0]])} of input {int(bad[0])} is not a class of `{net.name}` "
                               f"(0 to {out[0] - 1}); {len(bad):,} label{'s' * (len(bad) != 1)} out of range",
                       Span(where))
