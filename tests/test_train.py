"""`archspec train`: runs of a few batches on the CPU, each writing every artifact.

- a run writes metrics.csv, curves.png, best/last.safetensors, last.ckpt and summary.json,
  and its validation accuracy is exact (a single evaluation of the saved weights agrees);
- the same run as two processes under Lightning's DDP (gloo), on a validation set of odd size
  that DDP's sampler pads: one set of artifacts, the exact accuracy;
- --resume continues a run as if it had never stopped; Ctrl-C (SIGINT) exits 130 and leaves
  a checkpoint that resumes, and no half-written file;
- image folders; the book's recipe and presets; every E7xx error;
- a checkpoint from train compiled by `archspec compile --weights` to ONNX predicts as torch.

The data sets are written by the tests (tests/test_data.py has the writers).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import archspec
from archspec.cli import main
from archspec.errors import ArchError
from archspec.export.weights import read_checkpoint
from archspec.train import fit
from archspec.train.data import load
from archspec.train.module import Classifier, evaluate, init_xavier
from archspec.train.recipe import BOOK, Recipe, Source, resolve

sys.path.insert(0, str(Path(__file__).parent))
from test_data import fashion_files, png_folder

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = {"metrics.csv", "curves.png", "best.safetensors", "last.safetensors", "last.ckpt", "summary.json"}
QUIET_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: one thread is fastest, and fair to a shared CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Fashion-MNIST's four gzip files with 64 training and 37 validation images."""
    return fashion_files(tmp_path_factory.mktemp("fashion"), 64, 37)


def train(tiny: Path, out: Path, *extra: str, spec: str = "specs/lenet.arch") -> int:
    return main(["train", spec, "--data", f"fashion-mnist:{tiny}", "--batch-size", "16", "-o", str(out), *extra])


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def evaluated(run: Path, which: str, tiny: Path, spec: str = "specs/lenet.arch", **load_kw) -> tuple[int, int]:
    """(correct, total) of a saved checkpoint over the validation set, in this one process."""
    s = archspec.load(spec, **load_kw)
    net = s.to_torch()
    state, _ = read_checkpoint(str(run / f"{which}.safetensors"))
    net.load_state_dict(state)
    data = load(Source("fashion-mnist", str(tiny)), s.network.input_shape)
    return evaluate(net, DataLoader(data.val, batch_size=5))


@pytest.fixture(scope="module")
def run3(tiny: Path, tmp_path_factory) -> Path:
    """LeNet, 3 epochs of 4 batches, single process on the CPU."""
    out = tmp_path_factory.mktemp("runs") / "lenet"
    assert train(tiny, out, "--epochs", "3") == 0
    return out


# ---- one run, every artifact ----------------------------------------------------------------

def test_a_run_writes_every_artifact(run3: Path) -> None:
    assert {p.name for p in run3.iterdir()} == ARTIFACTS
    table = rows(run3)
    assert [r["epoch"] for r in table] == ["1", "2", "3"]
    assert list(table[0]) == ["epoch", "train_loss", "val_loss", "val_acc", "seconds"]
    assert (run3 / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s = json.loads((run3 / "summary.json").read_text())
    assert s["status"] == "done" and s["epochs"] == 3
    assert s["best_val_acc"] == pytest.approx(max(float(r["val_acc"]) for r in table), abs=1e-6)
    assert s["seconds_per_epoch"] > 0 and s["samples_per_second"] > 0
    assert s["spec"]["network"] == "lenet" and s["spec"]["input"] == [1, 28, 28]
    assert s["recipe"] == {**Recipe(epochs=3, batch_size=16).as_dict()}
    assert set(s["versions"]) >= {"archspec", "torch", "lightning", "torchvision", "python"}
    assert s["data"]["train"] == 64 and s["data"]["val"] == 37


def test_the_final_line_says_what_summary_json_says(tiny: Path, tmp_path: Path, capsys) -> None:
    assert train(tiny, tmp_path / "r", "--epochs", "1") == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert last.startswith("lenet: 1 epochs, best val acc ") and f"{s['best_val_acc']:.4f}" in last
    assert f"{s['seconds_per_epoch']:.1f} s/epoch" in last and str(tmp_path / "r") in last


def test_weights_are_the_modules_state_dict_with_the_runs_metadata(run3: Path) -> None:
    spec = archspec.load("specs/lenet.arch")
    state, meta = read_checkpoint(str(run3 / "last.safetensors"))
    assert sorted(state) == sorted(spec.to_torch().state_dict())  # safetensors keeps keys sorted
    from archspec.codegen import spec_hash

    assert meta["archspec.spec_sha256"] == spec_hash(spec.sources.texts)
    assert meta["archspec.input"] == "1,28,28" and meta["archspec.network"] == "lenet"
    assert meta["archspec.overrides"] == "none"
    assert meta["archspec.preprocessing"] == "resize 28, scale to [0,1]"
    assert json.loads(meta["archspec.classes"])[9] == "Ankle boot"
    _, best = read_checkpoint(str(run3 / "best.safetensors"))
    table = rows(run3)
    accs = [float(r["val_acc"]) for r in table]
    assert int(best["archspec.epoch"]) == accs.index(max(accs)) + 1 and meta["archspec.epoch"] == "3"


def test_validation_accuracy_is_exact(run3: Path, tiny: Path) -> None:
    """Counted over all 37 images (not a mean of per-batch accuracies): the saved weights agree."""
    history = json.loads((run3 / "summary.json").read_text())["history"]
    correct, total = evaluated(run3, "last", tiny)
    assert total == 37 and history[-1]["val_correct"] == correct and history[-1]["val_acc"] == correct / 37
    best = max(history, key=lambda r: r["val_acc"])
    assert evaluated(run3, "best", tiny)[0] == best["val_correct"]


# ---- the recipe -----------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # training_step outside a Trainer
def test_the_books_recipe_is_the_default() -> None:
    r = resolve("lenet", {}, None)
    assert (r.lr, r.epochs, r.batch_size, r.init, r.resize, r.precision) == (0.1, 10, 128, "xavier", None, "32")
    net = init_xavier(archspec.load("specs/lenet.arch").to_torch(), 0)
    model = Classifier(net, 0.1, 10)
    opt = model.configure_optimizers()
    assert type(opt) is torch.optim.SGD
    assert opt.defaults["momentum"] == 0 and opt.defaults["weight_decay"] == 0 and not opt.defaults["nesterov"]
    for m in net.modules():  # Xavier-uniform bounds, and not torch's default (kaiming) draw
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_out, fan_in = m.weight.shape[0], m.weight[0].numel()
            fan_out *= m.weight[0, 0].numel()
            bound = (6 / (fan_in + fan_out)) ** 0.5
            assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3])
    want = torch.nn.functional.cross_entropy(net(x.float() / 255), y)
    assert torch.equal(model(x), net(x.float() / 255))
    assert torch.allclose(model.training_step((x, y), 0), want)


def test_book_presets_pick_lr_and_size_and_flags_win() -> None:
    assert BOOK == {"lenet": (0.1, 28), "alexnet": (0.01, 224), "vgg_small": (0.01, 224), "nin": (0.05, 224),
                    "googlenet": (0.01, 96), "lenet_bn": (0.1, 28), "resnet18": (0.01, 96), "densenet": (0.01, 96)}
    r = resolve("vgg_small", {}, "book")
    assert (r.lr, r.resize, r.preset) == (0.01, 224, "book")
    r = resolve("resnet18", {"lr": 0.05, "resize": None}, "book")
    assert (r.lr, r.resize) == (0.05, 96)
    assert resolve("lenet", {"lr": None}, None).lr == 0.1


def test_preset_and_resize_set_the_networks_input(tiny: Path, tmp_path: Path, capsys) -> None:
    """--resize 32: images resized to 32x32 and the network built for 1,32,32; compile refuses 28x28."""
    out = tmp_path / "bn32"
    assert train(tiny, out, "--epochs", "1", "--resize", "32", "--preset", "book", spec="specs/lenet_bn.arch") == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["spec"]["input"] == [1, 32, 32] and s["recipe"]["lr"] == 0.1 and s["recipe"]["resize"] == 32
    _, meta = read_checkpoint(str(out / "best.safetensors"))
    assert meta["archspec.input"] == "1,32,32" and meta["archspec.preprocessing"] == "resize 32, scale to [0,1]"
    assert evaluated(out, "last", tiny, "specs/lenet_bn.arch", input=(1, 32, 32))[0] == s["history"][-1]["val_correct"]
    capsys.readouterr()
    assert main(["compile", "specs/lenet_bn.arch", "--weights", str(out / "best.safetensors"), "-f",
                          "python", "-o", str(tmp_path / "c")]) == 1
    assert "trained for input 1x32x32" in capsys.readouterr().err


# ---- resume and interrupt -------------------------------------------------------------------

def test_resume_continues_as_if_never_stopped(run3: Path, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert train(tiny, out, "--epochs", "1") == 0
    assert main(["train", "specs/lenet.arch", "--resume", str(out), "--epochs", "3"]) == 0
    cols = ("train_loss", "val_loss", "val_acc")
    assert [[r[k] for k in cols] for r in rows(out)] == [[r[k] for k in cols] for r in rows(run3)]
    a, b = (read_checkpoint(str(p / "last.safetensors"))[0] for p in (out, run3))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "summary.json").read_text())["recipe"]["epochs"] == 3


def test_interrupt_leaves_a_checkpoint_that_resumes(run3: Path, tiny: Path, tmp_path: Path) -> None:
    """SIGINT to a running `python -m archspec train`: exit 130, whole files only; --resume then gives
    what an unbroken run gives. The signal comes as soon as the first checkpoint (the initial weights,
    written before the first batch) exists, so it usually lands in the first epoch or two."""
    out = tmp_path / "int"
    cmd = [sys.executable, "-m", "archspec", "train", "specs/lenet.arch", "--data", f"fashion-mnist:{tiny}",
           "--batch-size", "16", "--epochs", "10000", "-o", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=QUIET_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "last.ckpt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (out / "last.ckpt").exists(), "training did not start"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err.splitlines()[-1] and "--resume" in err.splitlines()[-1] and "Traceback" not in err
    s = json.loads((out / "summary.json").read_text())
    done = s["epochs"]
    left = {p.name for p in out.iterdir()}
    assert left <= ARTIFACTS and {"last.ckpt", "summary.json"} <= left  # no temporaries, nothing half-written
    assert s["status"] == "interrupted" and (done == 0 or len(rows(out)) == done)
    epochs = max(3, done + 1)
    assert main(["train", "specs/lenet.arch", "--resume", str(out), "--epochs", str(epochs)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "done" and s["epochs"] == epochs == len(rows(out))
    assert rows(out)[:3] == [{**r, "seconds": rows(out)[i]["seconds"]} for i, r in enumerate(rows(run3))]


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def test_resume_refuses_other_data(run3: Path, tmp_path: Path, capsys) -> None:
    """--data other than the run's, or the run's data changed in place: E708, and the run folder untouched
    (it once went on with a duplicate epoch row, absurd seconds and a best accuracy over other images)."""
    other = fashion_files(tmp_path / "other", 80, 41, seed=1)
    out = copy_run(run3, tmp_path / "r")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    cases = [
        (["--data", f"fashion-mnist:{other}"], f"--data fashion-mnist:{other} differs"),
        (["--data", f"imagefolder:{other}"], "differs"),
    ]
    for extra, words in cases:
        assert main(["train", "specs/lenet.arch", "--resume", str(out), "--epochs", "4", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("archspec: error[E708]: ") and words in err and err.count("\n") == 1, err
    with pytest.raises(ArchError) as exc:  # the Python API checks the same
        fit(archspec.load("specs/lenet.arch"), f"fashion-mnist:{other}", str(out), resume=True, epochs=4)
    assert exc.value.diagnostics[0].code == "E708"
    summary = json.loads((out / "summary.json").read_text())
    summary["data"]["source"] = f"fashion-mnist:{other}"  # as if the data at the recorded place had changed
    (out / "summary.json").write_text(json.dumps(summary))
    before["summary.json"] = (out / "summary.json").read_bytes()
    assert main(["train", "specs/lenet.arch", "--resume", str(out), "--epochs", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archspec: error[E708]: the data in ") and "80 training and 41 validation" in err
    assert "trained on 64 and 37" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_refuses_an_image_folder_whose_classes_changed(tmp_path: Path, capsys) -> None:
    png_folder(tmp_path / "pics", per_class=5)
    out = tmp_path / "run"
    argv = ["train", "specs/lenet.arch", "--set", "num_classes=3", "--batch-size", "8"]
    assert main([*argv, "--data", f"imagefolder:{tmp_path / 'pics'}", "--epochs", "1", "-o", str(out)]) == 0
    (tmp_path / "pics" / "owl").rename(tmp_path / "pics" / "emu")
    capsys.readouterr()
    assert main([*argv, "--resume", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archspec: error[E708]: ") and "its classes are cat, dog, emu, the run's were cat, dog, owl" \
        in err and err.count("\n") == 1


def tiny_of(run: Path) -> str:
    return json.loads((run / "summary.json").read_text())["data"]["source"].partition(":")[2]


def test_resume_names_the_same_data_however_spelt(run3: Path, tmp_path: Path, monkeypatch) -> None:
    out = copy_run(run3, tmp_path / "r")
    tiny = Path(tiny_of(run3))
    monkeypatch.chdir(tiny.parent)
    assert main(["train", str(ROOT / "specs/lenet.arch"), "--resume", str(out), "--epochs", "3", "--data",
                 f"fashion-mnist:{tiny.name}/../{tiny.name}"]) == 0
    assert len(rows(out)) == 3


def test_a_resumed_epoch_is_timed_from_its_own_start(run3: Path, tmp_path: Path) -> None:
    """Lightning continues an epoch mid-way when the checkpoint's epochs had fewer batches (DDP on more
    processes, say): that epoch is recorded once, timed from the start of this training (not from 0)."""
    from archspec.train import run as R

    out = copy_run(run3, tmp_path / "r")
    spec = archspec.load("specs/lenet.arch")
    more = load(Source("fashion-mnist", str(fashion_files(tmp_path / "more", 80, 37))), (1, 28, 28))
    t = time.perf_counter()
    summary = R.train(R.Run(spec, Recipe(epochs=4, batch_size=16), more), R.Where(out, device="cpu", resume=True))
    elapsed = time.perf_counter() - t
    assert [r["epoch"] for r in summary["history"]] == [1, 2, 3, 4]
    assert [r["epoch"] for r in rows(out)] == ["1", "2", "3", "4"]
    assert all(0 <= r["seconds"] <= elapsed for r in summary["history"][2:])
    assert summary["epochs"] == 4 and summary["seconds_per_epoch"] <= elapsed


def _damage_summary(change):
    def damage(out: Path) -> None:
        s = json.loads((out / "summary.json").read_text())
        change(s)
        (out / "summary.json").write_text(json.dumps(s))
    return damage


@pytest.mark.parametrize("damage, words", [
    (lambda out: (out / "last.ckpt").write_text("garbage\n"), "last.ckpt is damaged (it is not a readable"),
    (lambda out: (out / "last.ckpt").write_bytes((out / "last.ckpt").read_bytes()[:3000]), "last.ckpt is damaged"),
    (lambda out: (out / "summary.json").write_text("{}"), "it has no `recipe` object"),
    (lambda out: (out / "summary.json").write_text("[1, 2]"), "it is not a JSON object"),
    (lambda out: (out / "summary.json").write_text("{not json"), "cannot read"),
    (_damage_summary(lambda s: s["recipe"].update(lr="abc")), '`recipe.lr` is "abc", expected a positive number'),
    (_damage_summary(lambda s: s["recipe"].update(seed=-1)), "`recipe.seed` is -1, expected an integer from 0 to"),
    (_damage_summary(lambda s: s["recipe"].update(seed=2**32)), "expected an integer from 0 to 2**32 - 1"),
    (_damage_summary(lambda s: s["recipe"].pop("batch_size")), "`recipe.batch_size` is missing"),
    (_damage_summary(lambda s: s["recipe"].update(epochs=2)), "recipe.epochs is 2 but last.ckpt holds 3 epochs"),
    (_damage_summary(lambda s: s["spec"].update(input=[1, "28", 28])), "`spec.input` is [1, \"28\", 28]"),
    (_damage_summary(lambda s: s["spec"].update(overrides=[])), "`spec.overrides` is []"),
    # Read back as a --set would be: code hidden after a comment, or a value that does not parse, is refused.
    (_damage_summary(lambda s: s["spec"].update(overrides={"num_classes": '10 # """; import os; os.system("x")'})),
     "`spec.overrides` is {\"num_classes\""),
    (_damage_summary(lambda s: s["spec"].update(overrides={"num_classes": "10)"})), "`spec.overrides` is"),
    (_damage_summary(lambda s: s["spec"].update(overrides={"not a name": "10"})), "`spec.overrides` is"),
    (_damage_summary(lambda s: s["data"].update(source="mnist")), "`data.source` is \"mnist\""),
    (_damage_summary(lambda s: s.pop("data")), "it has no `data` object"),
    (_damage_summary(lambda s: s["spec"].update(sha256="0" * 64)), "another spec"),
])
def test_a_damaged_run_folder_is_one_line_e707(run3: Path, tmp_path: Path, capsys, damage, words: str) -> None:
    """A run folder's files are the user's to damage: an E707 that says which, never an internal error."""
    out = copy_run(run3, tmp_path / "r")
    damage(out)
    assert main(["train", "specs/lenet.arch", "--resume", str(out), "--epochs", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archspec: error[E707]: ") and words in err and err.count("\n") == 1, err


def test_resume_refuses_fewer_epochs_than_done(run3: Path, capsys) -> None:
    assert main(["train", "specs/lenet.arch", "--resume", str(run3), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archspec: error[E708]: --epochs 1 is fewer than the 3 epochs") and err.count("\n") == 1
    assert "--epochs 3 or more" in err


# ---- DDP ------------------------------------------------------------------------------------

def test_ddp_two_cpu_processes_one_set_of_artifacts_exact_accuracy(tiny: Path, tmp_path: Path) -> None:
    """Two processes (gloo); 37 validation images, padded to 38 by DDP's sampler, counted once each.

    Batch-norm LeNet: its running statistics are rank 0's when validating, as saved.
    """
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "archspec", "train", str(ROOT / "specs/lenet_bn.arch"), "--data",
           f"fashion-mnist:{tiny}", "--batch-size", "8", "--epochs", "2", "--device", "cpu", "--devices", "2",
           "--strategy", "ddp", "-o", str(out)]
    done = subprocess.run(cmd, cwd=tmp_path, env=QUIET_ENV, capture_output=True, text=True, timeout=400,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == ARTIFACTS
    assert {p.name for p in tmp_path.iterdir()} == {"ddp"}  # no lightning_logs, no stray checkpoints
    assert done.stdout.count("lenet_bn: 2 epochs") == 1  # one final line: rank 0's
    s = json.loads((out / "summary.json").read_text())
    assert s["device"]["devices"] == 2 and s["device"]["strategy"] == "DDPStrategy"
    spec = str(ROOT / "specs/lenet_bn.arch")
    correct, total = evaluated(out, "last", tiny, spec)
    assert total == 37 and s["history"][-1]["val_correct"] == correct
    best = max(s["history"], key=lambda r: r["val_acc"])
    assert evaluated(out, "best", tiny, spec)[0] == best["val_correct"]
    assert [float(r["val_acc"]) for r in rows(out)] == pytest.approx([r["val_correct"] / 37 for r in s["history"]],
                                                                      abs=1e-6)


# ---- image folders --------------------------------------------------------------------------

def test_imagefolder_run_with_the_classes_of_the_folder(tmp_path: Path) -> None:
    png_folder(tmp_path / "pics", per_class=10)
    out = tmp_path / "run"
    assert main(["train", "specs/lenet.arch", "--set", "num_classes=3", "--data", f"imagefolder:{tmp_path / 'pics'}",
                 "--epochs", "2", "--batch-size", "8", "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == ARTIFACTS
    _, meta = read_checkpoint(str(out / "best.safetensors"))
    assert json.loads(meta["archspec.classes"]) == ["cat", "dog", "owl"]
    assert meta["archspec.overrides"] == "num_classes=3"
    assert meta["archspec.preprocessing"] == "convert to grayscale, resize 28, scale to [0,1]"
    s = json.loads((out / "summary.json").read_text())
    assert s["data"]["val"] == 6 and s["spec"]["overrides"] == {"num_classes": "3"}


def test_imagefolder_rgb_network(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.arch"
    spec.write_text("network tiny(num_classes: int = 3) {\n    input [3, 16, 16]\n"
                    "    conv2d(4, kernel=3, padding=1)  relu\n    avgpool2d(kernel=2, stride=2)\n"
                    "    flatten\n    linear(num_classes)\n}\n")
    png_folder(tmp_path / "pics" / "train", per_class=6)
    png_folder(tmp_path / "pics" / "val", per_class=3)
    out = tmp_path / "run"
    assert main(["train", str(spec), "--data", f"imagefolder:{tmp_path / 'pics'}", "--epochs", "1", "--init",
                 "default", "--lr", "0.5", "-o", str(out)]) == 0
    _, meta = read_checkpoint(str(out / "last.safetensors"))
    assert meta["archspec.input"] == "3,16,16" and meta["archspec.preprocessing"].startswith("convert to RGB")
    assert json.loads((out / "summary.json").read_text())["recipe"]["init"] == "default"


# ---- errors ---------------------------------------------------------------------------------

def test_errors_are_one_line_with_a_code_and_the_right_status(tiny: Path, run3: Path, tmp_path: Path,
                                                               capsys) -> None:
    png_folder(tmp_path / "pics", per_class=5)
    cases = [
        (["specs/lenet.arch", "--data", f"imagefolder:{tmp_path / 'pics'}"], "E704", 1, "--set num_classes=3"),
        (["specs/resnext.arch", "--preset", "book"], "E705", 2, "no recipe for network `resnext`"),
        (["specs/lenet.arch", "-o", str(run3)], "E706", 2, "already holds a run"),
        (["specs/lenet.arch", "--resume", str(tmp_path)], "E707", 2, "no checkpoint"),
        (["specs/lenet.arch", "--resume", str(run3), "--lr", "0.5"], "E708", 2, "--lr 0.5 (the run used 0.1)"),
        (["specs/lenet_bn.arch", "--resume", str(run3)], "E708", 2, "not the spec"),
        (["specs/lenet_bn.arch", "--resize", "32", "--input", "1,28,28"], "E708", 2, "disagree"),
        (["specs/lenet.arch", "--resume", str(run3), "-o", str(tmp_path / "elsewhere")], "E708", 2, "not -o"),
        (["specs/lenet.arch", "--device", "cuda", "-o", str(tmp_path / "gpu")] if not torch.cuda.is_available()
         else ["specs/lenet.arch", "--devices", "999", "-o", str(tmp_path / "gpu")], "E710", 2, "cannot train on"),
    ]
    for argv, code, status, words in cases:
        got = main(["train", *argv, "--data", f"fashion-mnist:{tiny}"] if "--data" not in argv else ["train", *argv])
        err = capsys.readouterr().err
        assert (got, err.count("\n")) == (status, 1), (argv, err)
        assert err.startswith(f"archspec: error[{code}]: ") and words in err, (argv, err)
    assert not (tmp_path / "gpu").exists()  # nothing is written before the Trainer accepts its options
    with pytest.raises(SystemExit) as exc:
        main(["train", "specs/lenet.arch", "--data", "mnist"])
    assert exc.value.code == 2 and "expected fashion-mnist" in capsys.readouterr().err  # argparse: usage error


def test_a_spec_error_is_reported_as_by_check(tiny: Path, tmp_path: Path, capsys) -> None:
    """LeNet's assert on its parameter count fails at 32x32: the spec's own error, exit 1."""
    assert train(tiny, tmp_path / "x", "--resize", "32") == 1
    assert "error[E501]: assertion failed" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_without_lightning_train_says_how_to_install_it() -> None:
    code = ("import sys; sys.modules['lightning'] = None; from archspec.cli import main; "
            "sys.exit(main(['train', 'specs/lenet.arch']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=QUIET_ENV, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2 and done.stderr.startswith("archspec: error[E709]: ")
    assert "pip install 'archspec[train]'" in done.stderr and done.stderr.count("\n") == 1


def test_check_and_summary_never_import_torch_or_lightning() -> None:
    code = ("import sys; from archspec.cli import main; "
            "assert main(['check', 'specs/lenet.arch']) == 0; assert main(['summary', 'specs/lenet.arch']) == 0; "
            "bad = [m for m in ('torch', 'lightning', 'torchvision') if m in sys.modules]; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=QUIET_ENV, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


# ---- compiled to ONNX -----------------------------------------------------------------------

def test_a_trained_checkpoint_compiles_to_onnx_that_predicts_as_torch(run3: Path, tiny: Path, tmp_path: Path,
                                                                      capsys) -> None:
    import onnx
    import onnxruntime as ort

    assert main(["compile", "specs/lenet.arch", "--weights", str(run3 / "best.safetensors"), "-f", "onnx",
                          "-o", str(tmp_path)]) == 0
    capsys.readouterr()
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "lenet.onnx")).metadata_props}
    assert meta["archspec.preprocessing"] == "resize 28, scale to [0,1]" and "Ankle boot" in meta["archspec.classes"]
    spec = archspec.load("specs/lenet.arch")
    net = spec.to_torch().eval()
    net.load_state_dict(read_checkpoint(str(run3 / "best.safetensors"))[0])
    data = load(Source("fashion-mnist", str(tiny)), (1, 28, 28))
    x = torch.stack([data.val[i][0] for i in range(len(data.val))]).float() / 255
    session = ort.InferenceSession(str(tmp_path / "lenet.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.array_equal(got.argmax(1), want.argmax(1))
    assert np.allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", ["-1", "4294967296", "x"])
def test_a_seed_lightning_would_replace_is_a_usage_error(seed, capsys):
    from archspec.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "specs/lenet.arch", "--seed", seed])
    assert exc.value.code == 2 and "--seed" in capsys.readouterr().err


def test_a_run_on_a_relative_data_path_resumes_from_any_folder(run3: Path, tmp_path: Path, monkeypatch) -> None:
    tiny = Path(tiny_of(run3))
    monkeypatch.chdir(tiny.parent)
    out = tmp_path / "relative"
    assert main(["train", str(ROOT / "specs/lenet.arch"), "--data", f"fashion-mnist:{tiny.name}", "--epochs", "1",
                 "--batch-size", "16", "-o", str(out)]) == 0
    assert tiny_of(out) == str(tiny)  # recorded as an absolute path
    monkeypatch.chdir(tmp_path)  # where `tiny.name` means nothing
    assert main(["train", str(ROOT / "specs/lenet.arch"), "--resume", str(out), "--epochs", "2"]) == 0
    assert [r["epoch"] for r in rows(out)] == ["1", "2"]
