"""Training data: the IDX loader, the book's preprocessing, image folders, and `archspec data`.

Every data set here is written by the test itself (gzip IDX files of a few random 28x28
images, PNGs of a few colours), so nothing is downloaded and the real Fashion-MNIST is not
needed; benchmarks/bench_train.py runs the real one.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from archspec.cli import main
from archspec.errors import ArchError
from archspec.train import unpack
from archspec.train.data import CLASSES, Images, cached, fashion_mnist, load, read_idx, transform, write_idx
from archspec.train.module import scale
from archspec.train.recipe import Source, parse_source


def fashion_files(folder: Path, n_train: int = 64, n_val: int = 37, seed: int = 0, gz: bool = True) -> Path:
    """The four Fashion-MNIST files, small: random images with a bright band whose place is the class."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_val)):
        y = rng.integers(0, 10, n)
        x = (rng.random((n, 28, 28)) * 80).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 * c: 2 * c + 6, :] += 150
        ext = ".gz" if gz else ""
        write_idx(folder / f"{split}-images-idx3-ubyte{ext}", x)
        write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", y)
    return folder


def png_folder(folder: Path, classes=("cat", "dog", "owl"), per_class: int = 10, mode: str = "RGB") -> Path:
    """A folder of PNGs, one sub-folder per class, of assorted sizes; the class shows in the colour."""
    rng = np.random.default_rng(1)
    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = rng.integers(12, 40, 2)
            a = (rng.random((h, w, 3)) * 60).astype(np.uint8)
            a[..., k % 3] += 180
            Image.fromarray(a).convert(mode).save(folder / name / f"{i:03d}.png")
    return folder


# ---- IDX files and Fashion-MNIST's layouts ---------------------------------------------------

def test_the_gzip_folder_is_read_as_written(tmp_path: Path) -> None:
    fashion_files(tmp_path / "d", 64, 37)
    (xt, yt), (xv, yv) = fashion_mnist(tmp_path / "d")
    assert xt.shape == (64, 28, 28) and xt.dtype == torch.uint8 and yt.shape == (64,) and yt.dtype == torch.int64
    assert xv.shape == (37, 28, 28) and len(yv) == 37
    with gzip.open(tmp_path / "d" / "t10k-labels-idx1-ubyte.gz") as fh:
        assert yv.tolist() == list(fh.read()[8:])


def test_torchvisions_layout_is_read_by_torchvision(tmp_path: Path) -> None:
    """ROOT/FashionMNIST/raw/ with decompressed files: torchvision's own FashionMNIST reads them."""
    fashion_files(unpack.raw_folder(tmp_path), 20, 9, gz=False)
    (xt, _yt), (xv, yv) = fashion_mnist(tmp_path)
    from torchvision.datasets import FashionMNIST

    tv = FashionMNIST(str(tmp_path), train=False)
    assert torch.equal(xv, tv.data) and torch.equal(yv, tv.targets) and len(xt) == 20
    assert CLASSES == tv.classes


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-3], "truncated"),
    (lambda b: b"\0\0\x0b" + b[3:], "not an IDX file of images"),
    (lambda b: b[:3] + b"\x01" + b[4:], "not an IDX file of images"),
])
def test_a_damaged_idx_file_is_a_data_error(tmp_path: Path, damage, message: str) -> None:
    fashion_files(tmp_path, 8, 5)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path) as fh:
        raw = fh.read()
    with gzip.open(path, "wb") as fh:
        fh.write(damage(raw))
    with pytest.raises(ArchError) as exc:
        fashion_mnist(tmp_path)
    assert exc.value.diagnostics[0].code == "E702" and message in exc.value.diagnostics[0].message
    assert exc.value.exit_code == 1
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ArchError) as exc:
        read_idx(path, 3)
    assert exc.value.diagnostics[0].code == "E702"


def test_images_and_labels_must_pair_up(tmp_path: Path) -> None:
    fashion_files(tmp_path, 8, 5)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(ArchError, match="5 images but 4 labels"):
        fashion_mnist(tmp_path)


def test_missing_files_are_one_line_naming_files_folder_and_remedy(tmp_path: Path, capsys) -> None:
    code = main(["train", "specs/lenet.arch", "--data", f"fashion-mnist:{tmp_path}", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("archspec: error[E701]: ")
    for name in unpack.GZ_FILES:
        assert name in err
    assert str(tmp_path) in err and "apt-get install dataset-fashion-mnist" in err and "archspec data" in err
    assert not (tmp_path / "run").exists()


def test_the_default_root_is_the_user_cache_or_archspec_data(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARCHSPEC_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert unpack.default_root() == tmp_path / "archspec" / "data"
    monkeypatch.setenv("ARCHSPEC_DATA", str(tmp_path / "elsewhere"))
    assert unpack.default_root() == tmp_path / "elsewhere"
    assert parse_source("fashion-mnist") == Source("fashion-mnist")
    assert parse_source("imagefolder:/x") == Source("imagefolder", "/x")
    for bad in ("mnist", "imagefolder", "imagefolder:"):
        with pytest.raises(ValueError):
            parse_source(bad)


# ---- the book's preprocessing ---------------------------------------------------------------

@pytest.mark.parametrize("size", [(28, 28), (32, 32), (96, 96)])
def test_preprocessing_is_the_books_resize_then_to_tensor(tmp_path: Path, size) -> None:
    """uint8 items scaled on the device equal d2l's Resize -> ToTensor exactly: [0, 1], no normalisation."""
    fashion_files(tmp_path, 8, 5)
    data = load(Source("fashion-mnist", str(tmp_path)), (1, *size))
    book = T.Compose([T.Resize(size), T.ToTensor()])
    (xt, _), _ = fashion_mnist(tmp_path)
    for i in range(8):
        x, _y = data.train[i]
        assert x.dtype == torch.uint8 and x.shape == (1, *size)
        assert torch.equal(scale(x), book(Image.fromarray(xt[i].numpy())))
    assert data.preprocessing == f"resize {size[0]}, scale to [0,1]"
    assert data.classes == CLASSES


def test_three_channel_networks_get_the_gray_channel_three_times(tmp_path: Path) -> None:
    fashion_files(tmp_path, 8, 5)
    data = load(Source("fashion-mnist", str(tmp_path)), (3, 28, 28))
    x, _ = data.val[0]
    assert x.shape == (3, 28, 28) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert data.preprocessing == "resize 28, repeat the gray channel 3 times, scale to [0,1]"
    with pytest.raises(ArchError, match="C = 1 .* or 3"):
        load(Source("fashion-mnist", str(tmp_path)), (2, 28, 28))


def test_the_cache_holds_exactly_what_the_transform_gives(tmp_path: Path) -> None:
    fashion_files(tmp_path, 16, 5)
    (xt, yt), _ = fashion_mnist(tmp_path)
    for size in ((28, 28), (20, 20)):
        ds = Images(xt, yt, transform(1, size, (28, 28)))
        mem = cached(ds)
        assert mem is not ds
        for i in range(16):
            assert torch.equal(mem[i][0], ds[i][0]) and int(mem[i][1]) == ds[i][1]
    assert cached(ds, limit=100) is ds  # too big: decoded every epoch instead


# ---- image folders --------------------------------------------------------------------------

def test_a_flat_image_folder_holds_out_every_fifth_image(tmp_path: Path) -> None:
    png_folder(tmp_path, per_class=10)
    data = load(Source("imagefolder", str(tmp_path)), (1, 28, 28))
    assert data.classes == ["cat", "dog", "owl"]
    assert len(data.train) == 24 and len(data.val) == 6
    assert sorted(int(data.val[i][1]) for i in range(6)) == [0, 0, 1, 1, 2, 2]
    x, _ = data.train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.uint8
    assert data.preprocessing == "convert to grayscale, resize 28, scale to [0,1]"


def test_train_and_val_folders_rgb(tmp_path: Path) -> None:
    png_folder(tmp_path / "train", per_class=4, mode="L")
    png_folder(tmp_path / "val", per_class=2)
    data = load(Source("imagefolder", str(tmp_path)), (3, 16, 20))
    assert len(data.train) == 12 and len(data.val) == 6
    x, _ = data.train[0]
    assert x.shape == (3, 16, 20)
    assert data.preprocessing == "convert to RGB, resize 16x20, scale to [0,1]"
    (tmp_path / "val" / "owl").rename(tmp_path / "val" / "eagle")
    with pytest.raises(ArchError, match="classes"):
        load(Source("imagefolder", str(tmp_path)), (3, 16, 16))


def test_image_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(ArchError) as exc:
        load(Source("imagefolder", str(tmp_path / "nowhere")), (1, 28, 28))
    assert exc.value.diagnostics[0].code == "E701" and exc.value.exit_code == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchError) as exc:
        load(Source("imagefolder", str(tmp_path / "empty")), (1, 28, 28))
    assert exc.value.diagnostics[0].code == "E702"
    png_folder(tmp_path / "few", per_class=3)
    with pytest.raises(ArchError, match="fewer than 5"):
        load(Source("imagefolder", str(tmp_path / "few")), (1, 28, 28))


# ---- archspec data ------------------------------------------------------------------------

def test_archspec_data_refuses_files_that_are_not_the_pinned_ones(tmp_path: Path, capsys) -> None:
    fashion_files(tmp_path / "debian", 8, 5)
    code = main(["data", "fashion-mnist", "--from", str(tmp_path / "debian"), "--to", str(tmp_path / "root")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("error[E703]") == 4 and "expected c59f468a" in err
    assert not (tmp_path / "root").exists()  # nothing half-checked left behind, not even the folders it made


def test_archspec_data_unpacks_into_torchvisions_layout(tmp_path: Path, capsys, monkeypatch) -> None:
    src = fashion_files(tmp_path / "debian", 8, 5)
    pins = {}
    for name in unpack.FILES:
        with gzip.open(src / f"{name}.gz") as fh:
            pins[name] = hashlib.sha256(fh.read()).hexdigest()
    monkeypatch.setattr(unpack, "SHA256", pins)
    monkeypatch.setenv("ARCHSPEC_DATA", str(tmp_path / "cache"))
    assert main(["data", "fashion-mnist", "--from", str(src)]) == 0
    out = capsys.readouterr().out
    raw = unpack.raw_folder(tmp_path / "cache")
    assert sorted(p.name for p in raw.iterdir()) == sorted(unpack.FILES)
    assert "train with --data fashion-mnist" in out
    (xt, _), (xv, _) = fashion_mnist(tmp_path / "cache")  # now through torchvision's FashionMNIST
    assert len(xt) == 8 and len(xv) == 5


def test_archspec_data_names_what_is_missing(tmp_path: Path, capsys) -> None:
    assert main(["data", "fashion-mnist", "--from", str(tmp_path), "--to", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archspec: error[E701]") and "train-images-idx3-ubyte.gz" in err and err.count("\n") == 1



def _pins(src: Path) -> dict[str, str]:
    """The SHA-256s of the decompressed contents of the small files in `src` (pinned in place of the real ones)."""
    pins = {}
    for name in unpack.FILES:
        with gzip.open(src / f"{name}.gz") as fh:
            pins[name] = hashlib.sha256(fh.read()).hexdigest()
    return pins


def test_archspec_data_writes_files_others_can_read(tmp_path: Path, monkeypatch) -> None:
    """0644 under the usual umask, as train's artifacts (a temporary from mkstemp is 0600)."""
    src = fashion_files(tmp_path / "debian", 8, 5)
    monkeypatch.setattr(unpack, "SHA256", _pins(src))
    old = os.umask(0o022)
    try:
        assert main(["data", "fashion-mnist", "--from", str(src), "--to", str(tmp_path / "root")]) == 0
    finally:
        os.umask(old)
    raw = unpack.raw_folder(tmp_path / "root")
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in raw.iterdir()} == {f: 0o644 for f in unpack.FILES}


def test_archspec_data_moves_in_all_four_files_or_none(tmp_path: Path, capsys, monkeypatch) -> None:
    """One file off its pin: none of the four is written (not the three that passed), the folders it made
    are gone, and files an earlier unpack put there stay as they were."""
    src = fashion_files(tmp_path / "debian", 8, 5)
    pins = _pins(src)
    monkeypatch.setattr(unpack, "SHA256", {**pins, "t10k-labels-idx1-ubyte": "0" * 64})
    assert main(["data", "fashion-mnist", "--from", str(src), "--to", str(tmp_path / "root")]) == 1
    err = capsys.readouterr().err
    assert err.count("error[E703]") == 1 and "t10k-labels-idx1-ubyte.gz" in err
    assert not (tmp_path / "root").exists()
    earlier = fashion_files(unpack.raw_folder(tmp_path / "kept"), 3, 2, seed=5, gz=False)
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    assert main(["data", "fashion-mnist", "--from", str(src), "--to", str(tmp_path / "kept")]) == 1
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before  # no temporaries either


def test_archspec_data_on_a_corrupt_gzip_leaves_no_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    src = fashion_files(tmp_path / "debian", 8, 5)
    monkeypatch.setattr(unpack, "SHA256", _pins(src))
    (src / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    (tmp_path / "root").mkdir()  # it existed before: it stays; FashionMNIST/raw/ inside it did not
    assert main(["data", "fashion-mnist", "--from", str(src), "--to", str(tmp_path / "root")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("archspec: error[E702]: cannot read ") and "t10k-images-idx3-ubyte.gz" in err
    assert list((tmp_path / "root").iterdir()) == []


# ---- hostile data: bombs, labels out of range, damaged images --------------------------------------

def _gzip_bomb(path: Path, header: bytes, size: int) -> None:
    """A gzip file of a few MB that decompresses to `size` bytes: a header, then zeros (one compressed
    member of 64 MiB of zeros, repeated: gzip reads concatenated members as one stream)."""
    member = gzip.compress(bytes(64 << 20), compresslevel=9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header))
        for _ in range(size // (64 << 20)):
            fh.write(member)


def test_archspec_data_stops_decompressing_a_bomb_at_the_pinned_size(tmp_path: Path, capsys) -> None:
    """A 5 MB gzip that decompresses to 5 GB: refused after the 47 MB the pinned file has, not after 5 GB."""
    fashion_files(tmp_path / "debian", 8, 5)
    _gzip_bomb(tmp_path / "debian" / "train-images-idx3-ubyte.gz", b"\0\0\x08\x03" + (60_000).to_bytes(4, "big")
               + (28).to_bytes(4, "big") * 2, 5 << 30)
    assert (tmp_path / "debian" / "train-images-idx3-ubyte.gz").stat().st_size < 10 << 20
    code = main(["data", "fashion-mnist", "--from", str(tmp_path / "debian"), "--to", str(tmp_path / "root")])
    err = capsys.readouterr().err
    assert code == 1 and "error[E703]" in err and "decompresses to more than the 47,040,016 bytes" in err
    assert not (tmp_path / "root").exists()


def test_reading_an_idx_bomb_reads_no_more_than_its_header_says(tmp_path: Path) -> None:
    """The header says 8 images; 4 GB of zeros follow. One byte past the 6,272 is enough to refuse it."""
    fashion_files(tmp_path, 8, 5)
    header = b"\0\0\x08\x03" + (8).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    _gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", header, 4 << 30)
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ArchError, match="padded: it holds more"):
        fashion_mnist(tmp_path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: far from 4 GB


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_a_label_out_of_range_is_a_located_data_error(tmp_path: Path, split: str, capsys) -> None:
    fashion_files(tmp_path / "data", 8, 5)
    labels = np.array([1, 2, 10, 3, 4, 5, 6, 7][: 8 if split == "train" else 5])
    write_idx(tmp_path / "data" / f"{split}-labels-idx1-ubyte.gz", labels)
    code = main(["train", "specs/lenet.arch", "--data", f"fashion-mnist:{tmp_path / 'data'}", "--epochs", "1",
                 "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "error[E702]" in err and "label 10 of image 2 is not a class (0 to 9)" in err
    assert not (tmp_path / "run").exists()


def test_a_damaged_image_is_a_data_error_and_writes_no_run(tmp_path: Path, capsys) -> None:
    folder = png_folder(tmp_path / "imgs", per_class=6)
    (folder / "dog" / "003.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really")
    code = main(["train", "specs/lenet.arch", "--data", f"imagefolder:{folder}", "--set", "num_classes=3",
                 "--epochs", "1", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "error[E702]: cannot read the image" in err and "003.png" in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
