"""Data for training: Fashion-MNIST or a folder of images, preprocessed as the book does.

The book's pipeline is `Resize` on the PIL image, then `ToTensor` (pixels / 255, no
normalisation). Here the dataset yields the resized image as a uint8 tensor and the module
divides by 255 on the device: the same floats, but a uint8 batch can be cached whole in memory
(a Fashion-MNIST epoch then costs no decoding) and travels to a GPU in a quarter of the bytes.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import error, foreign_text, io_error
from .recipe import Source
from .unpack import FILES, default_root, not_found, raw_folder

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CACHE_BYTES = 2 << 30  # a split whose preprocessed images fit here is decoded once, not every epoch


@dataclass
class Data:
    train: Dataset
    val: Dataset
    classes: list[str]
    preprocessing: str
    source: str


def load(source: Source, input_shape: tuple[int, ...], download: bool = False) -> Data:
    """The training and validation splits, preprocessed for a network taking `input_shape` (C, H, W)."""
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise error("E704", f"the network takes input {list(input_shape)}; training needs images [C, H, W] "
                            "with C = 1 (grayscale) or 3 (RGB)")
    channels, size = input_shape[0], tuple(input_shape[1:])
    if source.kind == "imagefolder":
        return _image_folder(Path(source.path or "."), channels, size, str(source))
    root = Path(source.path) if source.path else default_root()
    (xt, yt), (xv, yv) = fashion_mnist(root, download)
    tf = transform(channels, size, (28, 28))
    return Data(Images(xt, yt, tf), Images(xv, yv, tf), list(CLASSES), preprocessing(channels, size, False),
                f"fashion-mnist:{root}")


def preprocessing(channels: int, size: tuple[int, ...], convert: bool) -> str:
    """What an image goes through before the network, as recorded in a checkpoint's metadata."""
    steps = [f"convert to {'grayscale' if channels == 1 else 'RGB'}"] if convert else []
    steps.append(f"resize {size[0]}" if size[0] == size[1] else f"resize {size[0]}x{size[1]}")
    if channels == 3 and not convert:
        steps.append("repeat the gray channel 3 times")
    return ", ".join(steps + ["scale to [0,1]"])


def transform(channels: int, size: tuple[int, ...], native: tuple[int, int] | None):
    """PIL image -> uint8 tensor [C, H, W]: resize (bilinear, torchvision's Resize, as the book), channels.

    `native` is the size of every image of a data set such as Fashion-MNIST (None: images of any
    size and mode, as in a user's folder); resizing to that same size is the identity, so skipped.
    """
    from torchvision import transforms as T

    steps = []
    if native is None and channels == 1:
        steps.append(T.Grayscale(num_output_channels=1))  # ImageFolder's loader gives RGB
    if native != size:
        steps.append(T.Resize(size))
    if native is not None and channels == 3:
        steps.append(T.Grayscale(num_output_channels=3))
    return T.Compose(steps + [T.PILToTensor()])


class Images(Dataset):
    """uint8 images [N, H, W] with labels; item i is `transform(PIL image)`, as torchvision's MNIST gives."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, tf) -> None:
        self.images, self.labels, self.tf = images, labels, tf

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.tf(Image.fromarray(self.images[i].numpy())), int(self.labels[i])


class Tensors(Dataset):
    """Preprocessed images held in memory: uint8 [N, C, H, W] and labels."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class Indexed(Dataset):
    """(x, y, i): validation items know their index, so accuracy can be counted once per sample under DDP."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        return x, y, i


def cached(ds: Dataset, limit: int = CACHE_BYTES) -> Dataset:
    """`ds` preprocessed once into memory when it fits in `limit` bytes, else `ds` itself."""
    n = len(ds)  # type: ignore[arg-type]
    if n == 0:
        return ds
    x0, _ = ds[0]
    if n * x0.numel() > limit:
        return ds
    if isinstance(ds, Images) and len(ds.tf.transforms) == 1:
        return Tensors(ds.images.unsqueeze(1).clone(), ds.labels.long())  # the transform is the identity
    x = torch.empty((n, *x0.shape), dtype=torch.uint8)
    y = torch.empty(n, dtype=torch.long)
    for i in range(n):
        x[i], y[i] = ds[i]
    return Tensors(x, y)


# ---- Fashion-MNIST --------------------------------------------------------------------------

def fashion_mnist(root: Path, download: bool = False):
    """((train images, labels), (test images, labels)) as uint8 [N, 28, 28] and int64 [N].

    ROOT is torchvision's root (files decompressed in ROOT/FashionMNIST/raw/, read by
    torchvision's FashionMNIST); a folder holding the four .gz files (Debian's
    /usr/share/datasets/fashion-mnist) is read directly.
    """
    if download:
        _download(root)
    raw = raw_folder(root)
    if all((raw / f).is_file() for f in FILES):
        return _torchvision(root)
    for folder in (root, raw):
        paths = [_either(folder, f) for f in FILES]
        if all(paths):
            splits = (read_idx(paths[0], 3), read_idx(paths[1], 1)), (read_idx(paths[2], 3), read_idx(paths[3], 1))
            for (images, labels), path in zip(splits, (paths[0], paths[2])):
                _check_pair(images, labels, path.parent)
            return splits
    raise io_error("E701", not_found(root))


def _either(folder: Path, name: str) -> Path | None:
    for p in (folder / f"{name}.gz", folder / name):
        if p.is_file():
            return p
    return None


def _torchvision(root: Path):
    from torchvision.datasets import FashionMNIST

    out = []
    for train in (True, False):
        try:
            ds = FashionMNIST(str(root), train=train, download=False)
        except (RuntimeError, ValueError, OSError, TypeError) as exc:
            raise error("E702", f"cannot read Fashion-MNIST in `{raw_folder(root)}`: {exc}") from None
        _check_pair(ds.data, ds.targets, raw_folder(root))
        out.append((ds.data, ds.targets.long()))
    return tuple(out)


def _download(root: Path) -> None:
    from torchvision.datasets import FashionMNIST

    for train in (True, False):
        try:
            FashionMNIST(str(root), train=train, download=True)
        except (RuntimeError, OSError) as exc:
            why = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            raise io_error("E701", f"cannot download Fashion-MNIST into `{root}`: {why[-1].strip()}; without a "
                                   "network, `apt-get install dataset-fashion-mnist` then `archspec data "
                                   f"fashion-mnist --to {root}`") from None


MAX_IDX_BYTES = 1 << 31  # an IDX file's body: Fashion-MNIST's largest is 47 MB


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """An IDX file (gzipped or not) of unsigned bytes: images [N, H, W] (ndim 3) or labels [N] (ndim 1).

    The header says how many bytes follow; no more than that (and one more, to tell a padded file)
    is ever read or decompressed, so a small gzip bomb costs nothing."""
    what = "images" if ndim == 3 else "labels"
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            head = fh.read(4)
            if len(head) < 4 or head[:3] != b"\0\0\x08" or head[3] != ndim:
                raise error("E702", f"`{path}` is not an IDX file of {what} (unsigned bytes, {ndim} dimension"
                                    f"{'s' * (ndim > 1)})")
            sizes = fh.read(4 * ndim)
            dims = [int.from_bytes(sizes[4 * k: 4 * k + 4], "big") for k in range(ndim)]
            expected = int(np.prod(dims, dtype=object)) if len(sizes) == 4 * ndim else -1
            if not 0 <= expected <= MAX_IDX_BYTES:
                what_size = f"more than {MAX_IDX_BYTES:,} bytes" if expected > 0 else "cut short"
                raise error("E702", f"`{path}`: its header says {'x'.join(map(str, dims)) or 'nothing'}, which is "
                                    f"{what_size}")
            body = fh.read(expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise error("E702", f"cannot read `{path}`: {getattr(exc, 'strerror', None) or exc}") from None
    if len(body) != expected:
        state = "padded: it holds more" if len(body) > expected else f"truncated: it holds {len(body):,} bytes"
        raise error("E702", f"`{path}` is {state}; its header says {'x'.join(map(str, dims))}, that is "
                            f"{expected:,} bytes")
    t = torch.from_numpy(np.frombuffer(body, dtype=np.uint8).reshape(dims).copy())
    return t if ndim == 3 else t.long()


def write_idx(path: Path, array) -> None:
    """`array` (unsigned bytes) as an IDX file, gzipped if `path` ends in .gz: read_idx's inverse."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    head = b"\0\0\x08" + bytes([a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    with (gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb")) as fh:
        fh.write(head + a.tobytes())


def _check_pair(images: torch.Tensor, labels: torch.Tensor, where: Path) -> None:
    if len(images) != len(labels):
        raise error("E702", f"Fashion-MNIST in `{where}`: {len(images)} images but {len(labels)} labels")
    bad = ((labels < 0) | (labels >= len(CLASSES))).nonzero()
    if len(bad):
        i = int(bad[0])
        raise error("E702", f"Fashion-MNIST in `{where}`: label {int(labels[i])} of image {i} is not a class "
                            f"(0 to {len(CLASSES) - 1}); {len(bad)} label{'s' * (len(bad) != 1)} out of range")


# ---- a folder of images ---------------------------------------------------------------------

def _image_folder(folder: Path, channels: int, size: tuple[int, ...], name: str) -> Data:
    """DIR/train/CLASS/* and DIR/val/CLASS/* (or test/); or DIR/CLASS/* with every fifth image held out."""
    from torch.utils.data import Subset
    from torchvision.datasets import ImageFolder

    if not folder.is_dir():
        raise io_error("E701", f"no image folder `{folder}`")
    tf = transform(channels, size, None)
    val_dir = next((folder / v for v in ("val", "test") if (folder / v).is_dir()), None)
    try:
        if (folder / "train").is_dir() and val_dir is not None:
            train, val = (ImageFolder(str(folder / "train"), tf, loader=load_image),
                          ImageFolder(str(val_dir), tf, loader=load_image))
            if train.classes != val.classes:
                raise error("E702", f"`{folder}`: train/ has classes {train.classes}, {val_dir.name}/ has "
                                    f"{val.classes}")
            classes = train.classes
        else:
            every = ImageFolder(str(folder), tf, loader=load_image)
            held = _every_fifth(every.targets)
            keep = sorted(set(range(len(every))) - set(held))
            if not held:
                raise error("E702", f"`{folder}` has fewer than 5 images in every class: none can be held out "
                                    "for validation; put them in train/ and val/ folders")
            train, val, classes = Subset(every, keep), Subset(every, held), every.classes
    except (FileNotFoundError, RuntimeError) as exc:
        raise error("E702", f"`{folder}` is not an image folder (CLASS/image files, or train/ and val/ of "
                            f"them): {exc}") from None
    return Data(train, val, list(classes), preprocessing(channels, size, True), name)


class DataError(ValueError):
    """An image that cannot be read; it may be raised in a DataLoader worker, so it carries text only."""


def load_image(path: str):
    """An image as RGB (ImageFolder's loader), or DataError naming the file: a damaged file, one that is
    no image, or a decompression bomb (PIL refuses images of over about 179 million pixels)."""
    from PIL import Image

    try:
        with open(path, "rb") as fh:
            img = Image.open(fh)
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read the image `{path}`: {foreign_text(exc, 200)}") \
            from None


def data_error_message(exc: BaseException) -> str | None:
    """The message of a DataError, also when a DataLoader worker raised it (and torch wrapped its text)."""
    text = str(exc)
    if isinstance(exc, DataError) and "Traceback" not in text:
        return text
    marker = "DataError: "
    if marker in text:
        return text.rsplit(marker, 1)[1].strip().splitlines()[0]
    return None


def _every_fifth(targets: list[int]) -> list[int]:
    """Indices held out for validation: the 5th, 10th, ... image of each class, in file name order."""
    seen: dict[int, int] = {}
    held = []
    for i, t in enumerate(targets):
        seen[t] = seen.get(t, 0) + 1
        if seen[t] % 5 == 0:
            held.append(i)
    return held
